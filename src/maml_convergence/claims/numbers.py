"""The numbers the README and the docs quote, computed from the data (or the rules' code), never by hand.

A page marks each number it quotes, ``<!-- n: name -->value<!-- /n -->`` (the markers do not show once
rendered), and ``maml-convergence update-docs`` writes every marked value from ``Data`` (claims.json and the
provenance of the figures' source data), as it writes the README's verdict table; a test holds each page to
them, so a regenerated figure cannot leave a stale number in the prose, and a number edited by hand fails. A
name is one of ``NUMBERS`` or 'family:argument' of ``FAMILIES`` (``verdict:C3``, ``minutes:fig4a/grid``, ...).
A figure's caption marks numbers the same way, but only the rules' constants (``CONSTANTS``): those come from the
code, not the data.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..captions import MARK
from ..config import grid_values
from ..stability import CHANCE_P, DIVERGED_MULTIPLE, RISE, TRAINED_DROP
from .guideline import G2_LOSS_FACTOR
from .sinusoid import EOS_BAND, EOS_BELOW
from .verdicts import AGREE


# The pages that mark numbers, which ``maml-convergence update-docs`` writes and the tests hold to the data.
PAGES = ("README.md", "docs/results.md", "docs/running.md", "docs/gpu-and-cluster.md", "docs/image-experiments.md",
         "docs/guideline.md")


class Data:
    """What the pages quote: claims.json (``claims``) and the provenance of each figure's source data
    (``figures/data/<figure>/provenance.json``: the steps behind its tables, their device and wall time)."""

    def __init__(self, claims: dict, figures: str | Path = "figures"):
        self.claims, self.figures = claims, Path(figures)

    def claim(self, cid: str) -> dict:
        found = [c for c in self.claims["claims"] if c["id"] == cid]
        if not found:
            raise KeyError(f"claims.json has no claim {cid}")
        return found[0]

    def per_seed(self, cid: str) -> list[dict]:
        """A row's measurements per seed (data draw), or its one measurement."""
        measured = self.claim(cid)["measured"]
        return measured.get("per_seed", [measured])

    def steps(self) -> list[dict]:
        """The provenance of every step behind the figures' source data, each once (suggest's reports too)."""
        found = {}
        for folder in sorted((self.figures / "data").glob("*/")):
            if not (folder / "provenance.json").is_file():
                continue
            steps = list(json.loads((folder / "provenance.json").read_text())["steps"].values())
            steps += [json.loads(p.read_text())["provenance"] for p in folder.glob("suggestion_*.json")]
            found.update({step.get("command", str(step)): step for step in steps})
        return list(found.values())

    def table(self, figure: str, name: str) -> pd.DataFrame:
        """A table of ``figure``'s source data."""
        return pd.read_csv(self.figures / "data" / figure / f"{name}.csv.gz")

    def chunks(self) -> list[dict]:
        """The records of the paper-scale Fig. 4b's chunks kept so far (figures/data/omniglot-paper), read once:
        several numbers quote them."""
        if not hasattr(self, "_chunks"):
            self._chunks = [json.loads(p.read_text()) for p in sorted((self.figures / "data" / "omniglot-paper")
                                                                      .glob("chunk-*.json"))]
        return self._chunks

    def step(self, figure: str, table: str) -> dict:
        """The provenance of the step that computed ``table`` of ``figure``'s source data (a JSON record, such as
        suggest's report, carries its own)."""
        folder = self.figures / "data" / figure
        steps = json.loads((folder / "provenance.json").read_text())["steps"]
        return steps[table] if table in steps else json.loads((folder / f"{table}.json").read_text())["provenance"]


def _pct(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.0%}" if x >= 0.1 else f"{x:.1%}" if x >= 0.001 else f"{x:.2%}"


def _g(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.3g}"


def _finite(values) -> list[float]:
    return [x for x in values if x is not None and math.isfinite(x)]


def _range(values) -> str:
    v = _finite(values)
    return _g(v[0]) if min(v) == max(v) else f"{_g(min(v))}-{_g(max(v))}"


def _median(values) -> str:
    return _g(float(np.median(_finite(values))))


def _count(d: Data, cid: str, verdict: str) -> str:
    seeds = d.per_seed(cid)
    return f"{sum(s['verdict'] == verdict for s in seeds)} of {len(seeds)}"


def _worst_error(d: Data, *cids: str) -> float:
    return max(s["max_relative_error"] for cid in cids for s in d.per_seed(cid))


def _sum(d: Data, cid: str, key: str) -> str:
    return str(sum(s[key] for s in d.per_seed(cid)))


def _minutes(d: Data, step: str) -> str:
    """``step`` = '<figure>/<table>': the wall time of the step behind that table, in minutes."""
    figure, table = step.split("/")
    return f"{d.step(figure, table)['wall_seconds'] / 60:.0f}"


def _chunk_minutes(d: Data) -> str:
    """The kept chunks' wall times in minutes ('none yet' before the first)."""
    return _range(c["provenance"]["wall_seconds"] / 60 for c in d.chunks()) if d.chunks() else "none yet"


def _chunk_projected_minutes(d: Data) -> str:
    """A paper-grid chunk's time alone on one core, projected from the pace of the reduced Omniglot grid's
    steps (the same cells: tasks, inner steps and order are the paper's), each on one torch thread: its wall
    seconds per cell-iteration (an upper bound's pace: a diverged cell stops early but counts whole), times the
    largest chunk's cells x the paper's iterations."""
    grid = d.step("fig4b", "grid")
    parts = grid.get("chunks") or [grid]
    if any(p["torch_threads"] != 1 for p in parts):
        raise ValueError("fig4b's grid steps did not run on one thread each: no one-core pace to project from")
    pace = sum(p["wall_seconds"] for p in parts) / sum(p["cells"] * p["iterations"] for p in parts)  # a row a seed
    paper = d.step("fig4b-paper", "grid")
    cells = -(-paper["cells_in_grid"] // paper["chunks"])
    return f"{pace * cells * paper['iterations'] / 60:.0f}"


def _cells(d: Data, section: str) -> str:
    """An image grid's cells beside alpha = 0 as 'a x b', from the settings claims.json records."""
    sec = d.claims["settings"][section]
    alphas, betas = grid_values(sec)
    return f"{len(alphas) - 1} × {len(betas)}"


FAMILIES: dict[str, Callable[[Data, str], str]] = {  # name 'family:argument'
    "verdict": lambda d, cid: d.claim(cid)["verdict"],
    "minutes": _minutes,
    "iterations": lambda d, section: str(d.claims["settings"][section]["iterations"]),
    "seeds": lambda d, section: str(len(d.claims["settings"][section].get("seeds") or [0])),
    "holding": lambda d, cid: _count(d, cid, "holds"),  # 'k of n' seeds (data draws) that hold
    "failing": lambda d, cid: _count(d, cid, "fails"),
    "previous": lambda d, cid: d.claim(cid)["previous"]["verdict"],  # under the definition before 2026-12
    "learned": lambda d, cid: _range(s["cells_learned"] for s in d.per_seed(cid)),  # few-shot cells that learned
    "cells": _cells,
}


# The rules' constants: numbers from the code, not the data, the only ones a figure's caption (its notebook's
# first cell) may mark, since a notebook that changed with the data would have the workflow redraw its figures.
CONSTANT_NUMBERS: dict[str, Callable[[Data], str]] = {
    "agree_share": lambda d: f"{AGREE:.0%}",
    "chance_p": lambda d: f"{CHANCE_P:g}",
    "trained_drop": lambda d: f"{TRAINED_DROP:.0%}",
    "rise": lambda d: f"{RISE:.0%}",
    "diverged_multiple": lambda d: f"{DIVERGED_MULTIPLE:g}",
    "diverged_loss_5way": lambda d: f"{DIVERGED_MULTIPLE * math.log(5):.2f}",  # the diverged loss of 5-way tasks
    "e1_band": lambda d: f"[{EOS_BAND[0]:g}, {EOS_BAND[1]:g}]",
    "e1_below": lambda d: f"{EOS_BELOW:g}",
    "g2_loss_factor": lambda d: f"{G2_LOSS_FACTOR:g}x",
}

NUMBERS: dict[str, Callable[[Data], str]] = {
    # linear regression: the audit (rows A-*)
    "a_exact_error": lambda d: _pct(_worst_error(d, "A-exact-first", "A-exact-second")),
    "a_paper_first_error": lambda d: _pct(_worst_error(d, "A-paper-first")),
    "a_paper_second_error": lambda d: _pct(_worst_error(d, "A-paper-second")),
    "a_paper_n2_factor": lambda d: f"{1 + _worst_error(d, 'A-paper-n2-first', 'A-paper-n2-second'):.2g}",
    "a_exact_n2_error": lambda d: _pct(_worst_error(d, "A-exact-n2-first", "A-exact-n2-second")),
    # Fig. 1
    "c1_end_ratio": lambda d: _range(s["end_ratio"] for s in d.per_seed("C1")),
    "c1_growth_maml": lambda d: _median(s["growth_maml"] for s in d.per_seed("C1")),
    "c1_inner_maml_start": lambda d: _range(s["maml_start"] for s in d.per_seed("C1-inner")),
    "c1_inner_maml_end": lambda d: _range(s["maml_end"] for s in d.per_seed("C1-inner")),
    "c1_inner_joint_end": lambda d: _range(s["joint_end"] for s in d.per_seed("C1-inner")),
    # the sinusoid
    "c3_holds": lambda d: _count(d, "C3", "holds"),
    "a_sinusoid_alpha_c": lambda d: _range(s["alpha_c"] for s in d.per_seed("A-sinusoid")),
    "a_sinusoid_edge": lambda d: _range(s["alpha_edge"] for s in d.per_seed("A-sinusoid")),
    "e1_columns_at_edge": lambda d: _sum(d, "E1", "at_edge"),
    "e1_columns": lambda d: _sum(d, "E1", "columns"),
    "e1_seeds_holding": lambda d: _count(d, "E1", "holds"),
    "e1_median_ratio": lambda d: _range(s["median_ratio"] for s in d.per_seed("E1")),
    "e1_stable_cells": lambda d: _sum(d, "E1", "stable_cells"),
    "e1_share_in_band": lambda d: _range(100 * s["share_in_band"] for s in d.per_seed("E1")) + " %",
    "e1_top_below_band": lambda d: _sum(d, "E1", "top_below_band"),
    "e1_tenth_not_below": lambda d: _sum(d, "E1", "tenth_not_below"),
    # the guideline
    "g_exact_inside": lambda d: f"{d.claim('G-exact')['measured']['inside_with_margin']} of "
                                f"{d.claim('G-exact')['measured']['cells']}",
    "g_exact_runs": lambda d: str(d.claim("G-exact")["measured"]["runs"]),
    **CONSTANT_NUMBERS,
    # the few-shot grids
    "fig4c_top_start": lambda d: (lambda t: f"{t.initial_eval_loss.max():.0f} at α = "
                                            f"{t.alpha[t.initial_eval_loss.idxmax()]:g}")(d.table("fig4c", "grid")),
    # the workflow's steps
    "step_hours": lambda d: f"{sum(s['wall_seconds'] for s in d.steps()) / 3600:.1f}",
    # the paper-scale Fig. 4b, from its chunks
    "paper_chunks_done": lambda d: str(len(d.chunks())),
    "paper_chunk_minutes": _chunk_minutes,
    "paper_chunk_cells": lambda d: _range(c["cells"] for c in d.chunks()) if d.chunks() else "none yet",
    "paper_chunk_projected_minutes": _chunk_projected_minutes,
    "paper_chunks": lambda d: str(d.step("fig4b-paper", "grid")["chunks"]),
    "paper_chunk_devices": lambda d: "; ".join(sorted({c["provenance"]["device"] for c in d.chunks()})) or "none yet",
    # Fig. 5
    "c6_ratio": lambda d: _g(max(max(abs(f["eig_Tg_1"] / f["eig_H2_1"]), f["fro_Tg"] / f["fro_H2"])
                                 for f in d.claim("C6")["measured"]["final"])),
}


CONSTANTS = frozenset(CONSTANT_NUMBERS)


def value(name: str, data: Data) -> str:
    """The text of the number ``name``: one of NUMBERS, or 'family:argument' of FAMILIES."""
    family, _, argument = name.partition(":")
    if argument and family in FAMILIES:
        return FAMILIES[family](data, argument)
    if name not in NUMBERS:
        raise KeyError(f"unknown number '{name}'; known: {', '.join(f + ':...' for f in FAMILIES)}, "
                       f"{', '.join(sorted(NUMBERS))}")
    return NUMBERS[name](data)


def with_numbers(text: str, data: Data) -> str:
    """``text`` with every marked number written from ``data``."""
    return MARK.sub(lambda m: f"<!-- n: {m['name']} -->{value(m['name'], data)}<!-- /n -->", text)


def stale(text: str, data: Data) -> list[str]:
    """The marked numbers of ``text`` that are not what ``data`` gives, as 'name: the page says x, the data y'."""
    return [f"{m['name']}: the page says {m['value']!r}, the data {value(m['name'], data)!r}"
            for m in MARK.finditer(text) if m["value"] != value(m["name"], data)]
