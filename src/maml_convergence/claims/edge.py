"""Near the edge of alpha, does a larger beta train than at alpha = 0? The reading C3, C4 and C5 share.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..stability import stability_brackets


BASELINES = ("alpha=0", "smallest alpha")  # the paper's reading first; the smallest alpha > 0 as a second


def edge_ratios(grid: pd.DataFrame, near_edge_factor: float) -> dict:
    """How much larger a beta trains near the alpha edge than at a baseline alpha, in one grid.

    edge = the largest alpha > 0 where some beta is stable; window = alphas in [edge /
    near_edge_factor, edge]. 'Largest stable beta' is read two ways, since single late blow-ups
    make the edge ragged: the largest beta below the column's first divergence, and the largest
    beta that is stable at all. For each baseline (alpha = 0, the paper's; the smallest alpha > 0)
    and each reading: ratio = (largest over the window) / (at the baseline); the baseline's verdict
    holds if both ratios > 1, fails if both < 1, and is inconclusive otherwise or when a beta is
    missing.
    """
    br = stability_brackets(grid)
    br["max_ok"] = br.alpha.map(grid[grid.status == "ok"].groupby("alpha").beta.max())
    stable = br[br.any_ok & (br.alpha > 0)]
    out = {"alpha_edge": math.nan, "baselines": {}, "brackets": br.to_dict("records")}
    if not len(stable):
        return out
    edge = stable.alpha.max()
    window = stable[stable.alpha >= edge / near_edge_factor]
    out["alpha_edge"] = edge
    for name, base in zip(BASELINES, (br[br.alpha == 0], br[br.alpha > 0])):
        if not len(base):
            continue
        base = base.iloc[0]
        readings = {}
        for reading, label in (("last_ok", "below_first_divergence"), ("max_ok", "largest_stable")):
            best = window.loc[window[reading].idxmax()] if window[reading].notna().any() else None
            beta = best[reading] if best is not None else math.nan
            readings[label] = {"alpha": best.alpha if best is not None else math.nan, "beta": beta,
                               "base_alpha": base.alpha, "base_beta": base[reading], "ratio": beta / base[reading]}
        r = [v["ratio"] for v in readings.values()]
        verdict = ("inconclusive" if not all(np.isfinite(r)) else "holds" if min(r) > 1 + 1e-9
                   else "fails" if max(r) < 1 - 1e-9 else "inconclusive")
        out["baselines"][name] = {"verdict": verdict, **readings}
    return out


def edge_verdict(e: dict, baseline: str = "alpha=0") -> str:
    return e["baselines"].get(baseline, {}).get("verdict", "inconclusive")


def edge_text(e: dict, baseline: str) -> str:
    if baseline not in e["baselines"]:
        return "no alpha > 0 has a stable beta"
    b = e["baselines"][baseline]
    a, m = b["below_first_divergence"], b["largest_stable"]
    return (f"edge alpha {e['alpha_edge']:g}; below first divergence beta {a['beta']:g} at alpha={a['alpha']:g} vs "
            f"{a['base_beta']:g} at alpha={a['base_alpha']:g} (ratio {a['ratio']:.3g}); largest stable "
            f"{m['beta']:g} at alpha={m['alpha']:g} vs {m['base_beta']:g} (ratio {m['ratio']:.3g})")


def edge_rule(unstable: str, near_edge_factor: float) -> str:
    return (f"unstable = {unstable}; edge = largest alpha > 0 where some beta is stable; ratio = (largest stable beta "
            f"over alpha in [edge/{near_edge_factor:g}, edge]) / (largest stable beta at alpha = 0; second reading: at "
            "the smallest alpha > 0), 'largest stable' read both below the column's first divergence and as the "
            "largest stable at all; holds if both ratios > 1, fails if both < 1, else inconclusive")
