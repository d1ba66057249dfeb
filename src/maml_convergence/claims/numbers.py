"""The numbers the README and docs/results.md quote, computed from claims.json, never typed by hand.

A page marks each number it quotes, ``<!-- n: name -->value<!-- /n -->`` (the markers do not show once
rendered), and ``maml-convergence update-docs`` writes every marked value from ``NUMBERS``, as it writes the
README's verdict table; a test holds each page to them, so a regenerated figure cannot leave a stale number in
the prose, and a number edited by hand fails. A name is either one of ``NUMBERS`` or ``verdict:<claim id>``.
"""

from __future__ import annotations

import math
import re
from typing import Callable

import numpy as np

MARK = re.compile(r"<!-- n: (?P<name>[\w:.-]+) -->(?P<value>.*?)<!-- /n -->", re.S)


def claim(result: dict, cid: str) -> dict:
    found = [c for c in result["claims"] if c["id"] == cid]
    if not found:
        raise KeyError(f"claims.json has no claim {cid}")
    return found[0]


def per_seed(result: dict, cid: str) -> list[dict]:
    """A row's measurements per seed (data draw), or its one measurement."""
    measured = claim(result, cid)["measured"]
    return measured.get("per_seed", [measured])


def _pct(x: float) -> str:
    return f"{x:.0%}" if x >= 0.1 else f"{x:.1%}" if x >= 0.001 else f"{x:.2%}"


def _g(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.3g}"


def _range(values) -> str:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return f"{_g(min(v))}-{_g(max(v))}"


def _audit_error(result: dict, cid: str) -> float:
    return max(s["max_relative_error"] for s in per_seed(result, cid))


def _median(values) -> float:
    return float(np.median([x for x in values if x is not None and math.isfinite(x)]))


def _tally(result: dict, cid: str, verdict: str) -> str:
    seeds = per_seed(result, cid)
    return f"{sum(s['verdict'] == verdict for s in seeds)} of {len(seeds)}"


def _e1(result: dict, key: str) -> str:
    seeds = per_seed(result, "E1")
    return f"{sum(s[key] for s in seeds)}"


NUMBERS: dict[str, Callable[[dict], str]] = {
    # linear regression: the audit (rows A-*)
    "a_exact_error": lambda r: _pct(max(_audit_error(r, f"A-exact-{o}") for o in ("first", "second"))),
    "a_paper_first_error": lambda r: _pct(_audit_error(r, "A-paper-first")),
    "a_paper_second_error": lambda r: _pct(_audit_error(r, "A-paper-second")),
    "a_paper_n2_factor": lambda r: f"{1 + max(_audit_error(r, f'A-paper-n2-{o}') for o in ('first', 'second')):.2g}",
    "a_exact_n2_error": lambda r: _pct(max(_audit_error(r, f"A-exact-n2-{o}") for o in ("first", "second"))),
    # Fig. 1
    "c1_end_ratio": lambda r: _range(s["end_ratio"] for s in per_seed(r, "C1")),
    "c1_growth_maml": lambda r: _g(_median(s["growth_maml"] for s in per_seed(r, "C1"))),
    "c1_inner_maml_start": lambda r: _range(s["maml_start"] for s in per_seed(r, "C1-inner")),
    "c1_inner_maml_end": lambda r: _range(s["maml_end"] for s in per_seed(r, "C1-inner")),
    "c1_inner_joint_end": lambda r: _range(s["joint_end"] for s in per_seed(r, "C1-inner")),
    # the sinusoid
    "c3_holds": lambda r: _tally(r, "C3", "holds"),
    "a_sinusoid_holds": lambda r: _tally(r, "A-sinusoid", "holds"),
    "a_sinusoid_alpha_c": lambda r: _range(s["alpha_c"] for s in per_seed(r, "A-sinusoid")),
    "a_sinusoid_edge": lambda r: _range(s["alpha_edge"] for s in per_seed(r, "A-sinusoid")),
    "e1_columns_at_edge": lambda r: _e1(r, "at_edge"),
    "e1_columns": lambda r: _e1(r, "columns"),
    "e1_seeds_hold": lambda r: _tally(r, "E1", "holds"),
    # the guideline
    "g_exact_inside": lambda r: f"{claim(r, 'G-exact')['measured']['inside_with_margin']} of "
                                f"{claim(r, 'G-exact')['measured']['cells']}",
    "c6_ratio": lambda r: _g(max(max(abs(f["eig_Tg_1"] / f["eig_H2_1"]), f["fro_Tg"] / f["fro_H2"])
                                 for f in claim(r, "C6")["measured"]["final"])),
}


def value(name: str, result: dict) -> str:
    """The text of the number ``name`` (one of NUMBERS, or ``verdict:<claim id>``) in ``result`` (claims.json)."""
    if name.startswith("verdict:"):
        return claim(result, name.removeprefix("verdict:"))["verdict"]
    if name not in NUMBERS:
        raise KeyError(f"unknown number '{name}'; known: verdict:<claim id>, {', '.join(sorted(NUMBERS))}")
    return NUMBERS[name](result)


def with_numbers(text: str, result: dict) -> str:
    """``text`` with every marked number written from ``result``."""
    return MARK.sub(lambda m: f"<!-- n: {m['name']} -->{value(m['name'], result)}<!-- /n -->", text)


def stale(text: str, result: dict) -> list[str]:
    """The marked numbers of ``text`` that are not what ``result`` gives, as 'name: page says x, data y'."""
    return [f"{m['name']}: the page says {m['value']!r}, the data {value(m['name'], result)!r}"
            for m in MARK.finditer(text) if m["value"] != value(m["name"], result)]
