"""What every claim's verdict is built from: the shares and tallies its rule uses, over columns and over
seeds (data draws), the settings a result was computed with, and how far it falls short of the paper's scale.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..config import paper_scale
from ..problems import PROBLEMS


CONSISTENT_SHARE = 0.9  # beta_c 'holds' when theory lies inside the measured bracket in >= 90% of columns
FAIL_SHARE = 0.5        # and 'fails' below 50%
AGREE = 0.8             # over seeds (data draws): the verdict that at least 80% of them share, else inconclusive
UNIT = {p.name: p.repeats for p in PROBLEMS}  # a grid's repetitions


def seeds_of(grid: pd.DataFrame) -> int:
    return grid.seed.nunique() if "seed" in grid else 1


def at_paper_scale(kind: str, grid: pd.DataFrame, iterations: int) -> bool:
    """The paper's scale is config/config.yaml's. The paper gives the image grids' ranges and
    iterations, not their resolution; that file uses {1..9} x 10^k over them, as for the sinusoid."""
    p = paper_scale()[kind]
    return ((grid.alpha.nunique(), grid.beta.nunique(), iterations) == (p["alphas"], p["betas"], p["iterations"])
            and seeds_of(grid) >= p.get("seeds", 1))


def scale_note(kind: str, grid: pd.DataFrame, iterations: int) -> str:
    p = paper_scale()[kind]
    repeats = lambda n: f" x {n} {UNIT[kind]}{'s' if n != 1 else ''}" if kind in UNIT and n else ""
    note = f"{grid.alpha.nunique()}x{grid.beta.nunique()} cells{repeats(seeds_of(grid))}, {iterations} iterations"
    if not at_paper_scale(kind, grid, iterations):
        note += (f" (LESS than the paper-scale run of config/config.yaml: {p['alphas']}x{p['betas']} cells"
                 f"{repeats(p.get('seeds'))}, {p['iterations']} iterations)")
    return note


def overall(verdicts: list[str]) -> str:
    """The verdict that at least AGREE of the seeds (data draws) share, else inconclusive."""
    for v in ("holds", "fails"):
        if verdicts.count(v) >= AGREE * len(verdicts):
            return v
    return "inconclusive"


def tally(verdicts: list[str]) -> str:
    return ", ".join(f"{v} in {verdicts.count(v)}" for v in ("holds", "fails", "inconclusive")
                     if verdicts.count(v)) + f" of {len(verdicts)}"


def spread(values) -> str:
    """min-max (median) of the finite values ("min to max" when min is negative, so that no minus sign reads as
    the dash); the others (infinite, NaN, none) are counted, never dropped."""
    given = list(values)
    v = np.asarray([x for x in given if x is not None and np.isfinite(x)], dtype=float)
    dash = " to " if len(v) and v.min() < 0 else "-"
    text = f"{v.min():.3g}{dash}{v.max():.3g} (median {np.median(v):.3g})" if len(v) else "n/a"
    others = sorted({"none" if x is None else f"{x:g}" for x in given if x is None or not np.isfinite(x)})
    return text + (f", and {len(given) - len(v)} of {len(given)} {'/'.join(others)}" if len(v) < len(given) else "")


def per_seed(unit: str, table: pd.DataFrame, claim_of_one, rests_on: str | None = None, spread_of=None) -> dict:
    """A claim judged on each seed (data draw) of a table on its own, then over all of them.

    ``claim_of_one(seed, rows of that seed)`` returns the claim's row for one seed; the result
    is the first seed's row with the verdict that AGREE of the seeds share, their tally, the reason of every
    seed that does not hold (the why names them, unless all share one verdict, and quotes the first; the summary
    quotes each), and the
    spread of ``spread_of = (name, measured -> number)`` over the seeds. ``rests_on`` defaults to the first
    seed's, with the number of seeds.
    """
    rows = [{**claim_of_one(seed, t), "seed": None if seed is None else int(seed)} for seed, t in
            (table.groupby("seed") if "seed" in table else [(None, table)])]
    rests_on = rests_on or rows[0]["rests_on"] + f", {len(rows)} {unit}s"
    first = {k: v for k, v in rows[0].items() if k != "seed"}
    if len(rows) == 1:  # one seed: the row says so
        one = f"1 {unit}" + ("" if rows[0]["seed"] is None else f": {unit} {rows[0]['seed']}")
        return {**first, "summary": f"{first['summary']} ({one})", "rests_on": rests_on}
    verdicts = [r["verdict"] for r in rows]
    spread_text = f"; {spread_of[0]} over the {unit}s: {spread(spread_of[1](r['measured']) for r in rows)}" \
        if spread_of else ""
    others = [r for r in rows if r["verdict"] != "holds"]
    named = [f"{v} in {unit}s {', '.join(str(r['seed']) for r in rows if r['verdict'] == v)}"
             for v in ("fails", "inconclusive") if 0 < verdicts.count(v) < len(verdicts)]
    why = "; ".join(named) + (f" ({unit} {others[0]['seed']}: {others[0]['why']})" if named else "")
    quoted = others or rows[:1]
    return {**first, "verdict": overall(verdicts),
            "why": f"{tally(verdicts)} {unit}s; " + (why or f"{unit} {rows[0]['seed']}: {first['why']}"),
            "summary": "; ".join(f"{unit} {r['seed']} ({r['verdict']}): {r['summary']}" for r in quoted)
                       + f"; over {len(rows)} {unit}s: {tally(verdicts)}" + spread_text,
            "measured": {"per_seed": [{"seed": r["seed"], "verdict": r["verdict"], "summary": r["summary"],
                                       **r["measured"]} for r in rows]},
            "rule": f"{first['rule']}; judged on each {unit} on its own, then holds (fails) if at least {AGREE:.0%} "
                    f"of the {unit}s hold (fail), else inconclusive",
            "rests_on": rests_on}


def inside_bracket(bound: float, r, beta_max: float) -> bool:
    """Does a predicted beta_c lie in a column's [last_ok, first_diverged] bracket? With no
    divergence in the column the boundary lies above the grid, so the prediction must too."""
    lo_ok = math.isnan(r.last_ok) or r.last_ok <= bound * (1 + 1e-9)
    hi_ok = (bound < r.first_diverged) if not math.isnan(r.first_diverged) else bound >= beta_max
    return lo_ok and hi_ok


def share_verdict(inside: list[bool]) -> tuple[float, str]:
    """The share of columns where a prediction lies inside the measured bracket, and its verdict: holds from
    CONSISTENT_SHARE up, fails below FAIL_SHARE, else (or with no column) inconclusive."""
    if not len(inside):
        return math.nan, "inconclusive"
    share = float(np.mean(inside))
    return share, "holds" if share >= CONSISTENT_SHARE else "fails" if share < FAIL_SHARE else "inconclusive"
