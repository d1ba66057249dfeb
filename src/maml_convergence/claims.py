"""Verdicts on the paper's claims, computed only from the workflow's result files.

Every number here is read off ``results/``; the verdict rules are stated next to
each claim in the generated table, so a reader can check them by hand.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import theory
from .config import paper_scale
from .stability import DEFINITIONS, DIVERGED_MULTIPLE, RISE, TRAINED_DROP, few_shot_outcomes, few_shot_stability, \
    stability_brackets

CONSISTENT_SHARE = 0.9  # beta_c 'holds' when theory lies inside the measured bracket in >= 90% of columns
FAIL_SHARE = 0.5        # and 'fails' below 50%
AGREE = 0.8             # over seeds (data draws): the verdict that at least 80% of them share, else inconclusive
UNIT = {"linear": "draws", "sinusoid": "seeds"}  # what the repetitions of a grid are called


def _seeds(grid: pd.DataFrame) -> int:
    return grid.seed.nunique() if "seed" in grid else 1


def _at_paper_scale(kind: str, grid: pd.DataFrame, iterations: int) -> bool:
    """The paper's scale is config/config.yaml's. The paper gives the image grids' ranges and
    iterations, not their resolution; that file uses {1..9} x 10^k over them, as for the sinusoid."""
    p = paper_scale()[kind]
    return ((grid.alpha.nunique(), grid.beta.nunique(), iterations) == (p["alphas"], p["betas"], p["iterations"])
            and _seeds(grid) >= p.get("seeds", 1))


def _scale_note(kind: str, grid: pd.DataFrame, iterations: int) -> str:
    p = paper_scale()[kind]
    repeats = lambda n: f" x {n} {UNIT[kind]}" if kind in UNIT else ""
    note = f"{grid.alpha.nunique()}x{grid.beta.nunique()} cells{repeats(_seeds(grid))}, {iterations} iterations"
    if not _at_paper_scale(kind, grid, iterations):
        note += (f" (LESS than the paper-scale run of config/config.yaml: {p['alphas']}x{p['betas']} cells"
                 f"{repeats(p.get('seeds'))}, {p['iterations']} iterations)")
    return note


def _overall(verdicts: list[str]) -> str:
    """The verdict that at least AGREE of the seeds (data draws) share, else inconclusive."""
    for v in ("holds", "fails"):
        if verdicts.count(v) >= AGREE * len(verdicts):
            return v
    return "inconclusive"


def _tally(verdicts: list[str]) -> str:
    return ", ".join(f"{v} in {verdicts.count(v)}" for v in ("holds", "fails", "inconclusive")
                     if verdicts.count(v)) + f" of {len(verdicts)}"


def _spread(values) -> str:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return f"{v.min():.3g}-{v.max():.3g} (median {np.median(v):.3g})" if len(v) else "n/a"


def _per_seed(unit: str, table: pd.DataFrame, claim_of_one, rests_on: str | None = None, spread_of=None) -> dict:
    """A claim judged on each seed (data draw) of a table on its own, then over all of them.

    ``claim_of_one(seed, rows of that seed)`` returns the claim's row for one seed; the result
    is the first seed's row with the verdict that AGREE of the seeds share, their tally, and the
    spread of ``spread_of = (name, measured -> number)`` over the seeds. ``rests_on`` defaults to
    the first seed's, with the number of seeds.
    """
    rows = [{**claim_of_one(seed, t), "seed": None if seed is None else int(seed)} for seed, t in
            (table.groupby("seed") if "seed" in table else [(None, table)])]
    rests_on = rests_on or rows[0]["rests_on"] + f", {len(rows)} {unit}s"
    first = {k: v for k, v in rows[0].items() if k != "seed"}
    if len(rows) == 1:
        return {**first, "rests_on": rests_on}
    verdicts = [r["verdict"] for r in rows]
    spread = f"; {spread_of[0]} over the {unit}s: {_spread(spread_of[1](r['measured']) for r in rows)}" \
        if spread_of else ""
    return {**first, "verdict": _overall(verdicts),
            "why": f"{_tally(verdicts)} {unit}s; {unit} {rows[0]['seed']}: {first['why']}",
            "summary": f"{unit} {rows[0]['seed']}: {first['summary']}; over {len(rows)} {unit}s: {_tally(verdicts)}"
                       + spread,
            "measured": {"per_seed": [{"seed": r["seed"], "verdict": r["verdict"], "summary": r["summary"],
                                       **r["measured"]} for r in rows]},
            "rule": f"{first['rule']}; judged on each {unit} on its own, then holds (fails) if at least {AGREE:.0%} "
                    f"of the {unit}s hold (fail), else inconclusive",
            "rests_on": rests_on}


def _inside_bracket(bound: float, r, beta_max: float) -> bool:
    """Does a predicted beta_c lie in a column's [last_ok, first_diverged] bracket? With no
    divergence in the column the boundary lies above the grid, so the prediction must too."""
    lo_ok = math.isnan(r.last_ok) or r.last_ok <= bound * (1 + 1e-9)
    hi_ok = (bound < r.first_diverged) if not math.isnan(r.first_diverged) else bound >= beta_max
    return lo_ok and hi_ok


def _share_verdict(inside: list[bool]) -> tuple[float, str]:
    """The share of columns where a prediction lies inside the measured bracket, and its verdict: holds from
    CONSISTENT_SHARE up, fails below FAIL_SHARE, else (or with no column) inconclusive."""
    if not len(inside):
        return math.nan, "inconclusive"
    share = float(np.mean(inside))
    return share, "holds" if share >= CONSISTENT_SHARE else "fails" if share < FAIL_SHARE else "inconclusive"


def _beta_c_claim(order: str, grid: pd.DataFrame, eig, iterations: int) -> dict:
    br = stability_brackets(grid)
    a_c = theory.paper_alpha_c(eig)
    cols = br[br.alpha < a_c].copy()
    cols["theory"] = theory.paper_beta_bound(cols.alpha.to_numpy(), eig)
    cols["exact"] = theory.exact_beta_bound(cols.alpha.to_numpy(), eig, order)
    beta_max = grid.beta.max()
    consistent = [_inside_bracket(r.theory, r, beta_max) for r in cols.itertuples()]
    exact_consistent = [_inside_bracket(r.exact, r, beta_max) for r in cols.itertuples()]
    measured = np.sqrt(cols.last_ok * cols.first_diverged)  # geometric centre of the bracket
    rel = (measured / cols.theory - 1).abs()
    share, verdict = _share_verdict(consistent)
    return {
        "id": f"C2-beta-{order}", "panel": f"{order}-order MAML",
        "claim": "beta_c(alpha) = min_i 2/(lambda_i - alpha lambda_i^2) on linear regression (Fig. 3)",
        "short": f"linear regression, {order} order: the paper's beta_c(alpha) is the boundary",
        "verdict": verdict, "why": f"theory inside the measured bracket in {sum(consistent)}/{len(cols)} columns",
        "measured": {"columns": len(cols), "theory_inside_bracket": int(sum(consistent)),
                     "share_inside": share,
                     "median_relative_error": float(np.nanmedian(rel)) if rel.notna().any() else None,
                     "max_relative_error": float(np.nanmax(rel)) if rel.notna().any() else None,
                     "exact_quadratic_inside_bracket": int(sum(exact_consistent)),
                     "brackets": cols.to_dict("records")},
        "summary": (f"theory inside measured bracket in {sum(consistent)}/{len(cols)} alpha columns; "
                    f"median |rel. error| {np.nanmedian(rel):.2f} (bracket centre vs theory); exact "
                    f"quadratic bound inside in {sum(exact_consistent)}/{len(cols)}"),
        "rule": f"holds if theory lies in [last trained beta, first diverged beta] in >= {CONSISTENT_SHARE:.0%} "
                f"of columns with alpha < alpha_c, fails below {FAIL_SHARE:.0%}",
        "rests_on": _scale_note("linear", grid, iterations),
    }


def _alpha_c_claim(order: str, grid: pd.DataFrame, eig, iterations: int, success_loss: float) -> dict:
    """Past alpha_c no beta should train: the black region of Fig. 3 ends at 1/lambda_max.

    'Trains' means final loss below the success threshold (black in Fig. 3). Divergence is not
    required: just past alpha_c first-order MAML grows too slowly to blow up in 500 iterations.
    """
    trains = (grid.status == "ok") & (grid.final_loss < success_loss)
    by_alpha = trains.groupby(grid.alpha).any().sort_index()
    a_c = theory.paper_alpha_c(eig)
    dead = by_alpha[~by_alpha]
    last_trained = by_alpha[by_alpha].index.max() if by_alpha.any() else math.nan
    if len(dead):
        first_dead = dead.index.min()
        before = by_alpha[by_alpha.index < first_dead]
        lo = before.index.max() if len(before) else math.nan
        trains_past = bool(by_alpha[by_alpha.index > first_dead].any())
        inside = (math.isnan(lo) or lo < a_c) and a_c <= first_dead and not trains_past
        verdict = "holds" if inside else "fails"
        measured = (f"no beta trains from alpha = {first_dead:g} (last alpha where one does: {last_trained:g})")
        why = f"none trains from alpha {first_dead:g}" + (", yet some do beyond" if trains_past else "")
        rel = abs(math.sqrt(lo * first_dead) / a_c - 1) if not math.isnan(lo) else None
    else:
        first_dead, lo, rel = math.nan, last_trained, None
        if a_c <= by_alpha.index.max():
            verdict = "fails"
            measured = f"some beta trains at every alpha up to {by_alpha.index.max():g}, past alpha_c"
            why = f"some beta trains up to alpha {by_alpha.index.max():g}"
        else:
            verdict = "inconclusive"
            measured = f"alpha_c lies beyond the grid's largest alpha {by_alpha.index.max():g}"
            why = "alpha_c lies beyond the grid"
    return {
        "id": f"C2-alpha-{order}", "panel": f"{order}-order MAML",
        "claim": "alpha_c = 1/lambda_max: past it no beta trains (linear regression, Fig. 3)",
        "short": f"linear regression, {order} order: past alpha_c = 1/lambda_max no beta trains",
        "verdict": verdict, "why": f"alpha_c = {a_c:.3g}; {why}",
        "measured": {"alpha_c_theory": a_c, "first_alpha_none_trains": first_dead,
                     "last_alpha_trained": last_trained, "relative_error": rel,
                     "exact_quadratic_alpha_c": theory.exact_alpha_c(eig, order)},
        "summary": f"alpha_c theory {a_c:.4g}; measured: {measured}",
        "rule": f"holds if 1/lambda_max lies between the last alpha where some beta reaches loss < {success_loss:g} "
                "and the first alpha where none does, with none training beyond",
        "rests_on": _scale_note("linear", grid, iterations),
    }


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


def _edge_verdict(e: dict, baseline: str = "alpha=0") -> str:
    return e["baselines"].get(baseline, {}).get("verdict", "inconclusive")


def _edge_text(e: dict, baseline: str) -> str:
    if baseline not in e["baselines"]:
        return "no alpha > 0 has a stable beta"
    b = e["baselines"][baseline]
    a, m = b["below_first_divergence"], b["largest_stable"]
    return (f"edge alpha {e['alpha_edge']:g}; below first divergence beta {a['beta']:g} at alpha={a['alpha']:g} vs "
            f"{a['base_beta']:g} at alpha={a['base_alpha']:g} (ratio {a['ratio']:.3g}); largest stable "
            f"{m['beta']:g} at alpha={m['alpha']:g} vs {m['base_beta']:g} (ratio {m['ratio']:.3g})")


def _edge_rule(unstable: str, near_edge_factor: float) -> str:
    return (f"unstable = {unstable}; edge = largest alpha > 0 where some beta is stable; ratio = (largest stable beta "
            f"over alpha in [edge/{near_edge_factor:g}, edge]) / (largest stable beta at alpha = 0; second reading: at "
            "the smallest alpha > 0), 'largest stable' read both below the column's first divergence and as the "
            "largest stable at all; holds if both ratios > 1, fails if both < 1, else inconclusive")


def _sinusoid_edge_claim(grid: pd.DataFrame, iterations: int, near_edge_factor: float) -> dict:
    """C3 on every seed of the sinusoid grid: against alpha = 0, and against the smallest alpha > 0."""
    seeds = grid.groupby("seed") if "seed" in grid else [(0, grid)]
    per_seed = {int(seed): edge_ratios(g, near_edge_factor) for seed, g in seeds}
    first = next(iter(per_seed))
    parts = []
    for baseline in BASELINES:
        verdicts = [_edge_verdict(e, baseline) for e in per_seed.values()]
        ratios = [[e["baselines"].get(baseline, {}).get(k, {}).get("ratio") for e in per_seed.values()]
                  for k in ("below_first_divergence", "largest_stable")]
        parts.append(f"vs {baseline.replace('=', ' = ')}: {_tally(verdicts)} seeds (ratio below first divergence "
                     f"{_spread(ratios[0])}, largest stable {_spread(ratios[1])})")
    verdicts = [_edge_verdict(e) for e in per_seed.values()]
    ratios = [e["baselines"].get("alpha=0", {}).get("largest_stable", {}).get("ratio") for e in per_seed.values()]
    return {"id": "C3", "claim": "sinusoid: near the divergence edge of alpha, a larger beta trains than at alpha = 0 "
                                 "(Fig. 4a)",
            "short": "sinusoid: near the alpha edge a larger beta trains than at alpha = 0",
            "verdict": _overall(verdicts),
            "why": f"{_tally(verdicts)} seeds; largest stable beta, edge / alpha = 0: {_spread(ratios)}",
            "summary": "; ".join(parts) + f"; seed {first} vs alpha = 0: {_edge_text(per_seed[first], 'alpha=0')}",
            "measured": {"per_seed": [{"seed": seed, "verdict": _edge_verdict(e), **{k: v for k, v in e.items()
                                       if k != "brackets" or seed == first}} for seed, e in per_seed.items()]},
            "rule": _edge_rule("diverged", near_edge_factor) + f"; judged on each seed, then holds (fails) if at "
                                                               f"least {AGREE:.0%} of the seeds hold (fail) against "
                                                               "alpha = 0, else inconclusive",
            "rests_on": _scale_note("sinusoid", grid, iterations)}


FEW_SHOT_CLAIMS = {"omniglot": ("C4", "Omniglot: near the divergence edge of alpha, a larger beta trains than at "
                                      "alpha = 0 (Fig. 4b)"),
                   "miniimagenet": ("C5", "MiniImagenet: near the divergence edge of alpha, a larger beta trains "
                                          "than at alpha = 0 (Fig. 4c)")}
GUIDELINE_CLAIMS = {"omniglot": "C7-omniglot", "miniimagenet": "C7-miniimagenet"}


def _definitions_text(n_way: int) -> str:
    return (f"(a) not diverged: unstable if diverged or its final loss > {DIVERGED_MULTIPLE:g} ln {n_way}; (b) not "
            f"unstable: also unstable if its loss ended > {RISE:.0%} above its start; (c) trained: stable only if "
            f"its loss ended >= {TRAINED_DROP:.0%} below its start (start and end on the same fixed task batch)")


def _few_shot_rests_on(dataset: str, grid: pd.DataFrame, prov: dict) -> str:
    note = _scale_note(dataset, grid, prov["iterations"]) + f", {prov['device']}"
    if not _at_paper_scale(dataset, grid, prov["iterations"]):
        note += (f"; the paper-scale grid: `snakemake --cores all results/{dataset}/grid.csv` "
                 "(with `--profile profiles/slurm` or `profiles/local-gpu`)")
    return note


def _few_shot_claim(dataset: str, grid_path, near_edge_factor: float) -> dict:
    """C4/C5 under each of the three definitions of a stable cell (stability.DEFINITIONS)."""
    prov = _provenance(grid_path)
    raw, n_way = pd.read_csv(grid_path), prov["config"][dataset]["n_way"]
    per_def = {d: edge_ratios(few_shot_stability(raw, n_way, d), near_edge_factor) for d in DEFINITIONS}
    verdicts = {d: _edge_verdict(e) for d, e in per_def.items()}
    agree = len(set(verdicts.values())) == 1
    cid, claim = FEW_SHOT_CLAIMS[dataset]
    summary = "; ".join(f"({d}) {DEFINITIONS[d][0]}: {verdicts[d]} vs alpha = 0 ({_edge_text(e, 'alpha=0')}), "
                        f"{_edge_verdict(e, 'smallest alpha')} vs the smallest alpha" for d, e in per_def.items())
    readings = ", ".join(f"({d}) {v}" for d, v in verdicts.items())
    return {"id": cid, "claim": claim, "verdict": verdicts["a"] if agree else "inconclusive",
            "short": f"{claim.split(':')[0]}: near the alpha edge a larger beta trains than at alpha = 0",
            "why": f"vs alpha = 0 by the three definitions of stable: {readings}"
                   + ("" if agree else "; they disagree"),
            "summary": summary + ("" if agree else "; the verdict DEPENDS ON THE DEFINITION of a stable cell"),
            "measured": {"definitions": {d: {"verdict": verdicts[d], **e} for d, e in per_def.items()}},
            "rule": _edge_rule(_definitions_text(n_way), near_edge_factor)
                    + "; judged under each definition: the claim's verdict if all three agree, else inconclusive",
            "rests_on": _few_shot_rests_on(dataset, raw, prov)}


def _guideline_claim(dataset: str, grid_path, near_edge_factor: float) -> dict:
    """The paper's guideline itself: is the best cell near the largest alpha that trains?"""
    prov = _provenance(grid_path)
    raw, n_way = pd.read_csv(grid_path), prov["config"][dataset]["n_way"]
    outcome = few_shot_outcomes(raw, n_way)
    accuracy = "heldout_accuracy" if raw.get("heldout_accuracy", pd.Series(dtype=float)).notna().any() \
        else "final_accuracy"
    name = "Omniglot" if dataset == "omniglot" else "MiniImagenet"
    base = {"id": GUIDELINE_CLAIMS[dataset], "short": f"{name}: the best cell lies near the largest alpha that trains",
            "claim": f"{'Omniglot' if dataset == 'omniglot' else 'MiniImagenet'}: the guideline (first the largest "
                     "alpha that trains, then beta): the best cell, by training loss and by accuracy, lies near that "
                     "alpha",
            "rule": f"edge = largest alpha where some beta trains ((c) above); near = alpha in "
                    f"[edge/{near_edge_factor:g}, edge]; best = lowest final training loss, and highest "
                    f"{accuracy.replace('_', ' ')}, over the cells that did not diverge ((a)); holds if both best "
                    "cells are near the edge, fails if neither is, else inconclusive",
            "rests_on": _few_shot_rests_on(dataset, raw, prov)}
    trains = raw[(outcome == "trained") & (raw.alpha > 0)]
    alive = raw[outcome != "diverged"]
    if not len(trains) or not len(alive) or alive.get(accuracy, pd.Series(dtype=float)).isna().all():
        return {**base, "verdict": "inconclusive", "why": "no cell with alpha > 0 trained",
                "summary": "no cell with alpha > 0 trained", "measured": {}}
    edge = trains.alpha.max()
    near = lambda a: edge / near_edge_factor <= a <= edge
    best = {"loss": alive.loc[alive.final_loss.idxmin()], "accuracy": alive.loc[alive[accuracy].idxmax()]}
    flags = [near(b.alpha) for b in best.values()]
    verdict = "holds" if all(flags) else "fails" if not any(flags) else "inconclusive"
    text = lambda b: (f"alpha={b.alpha:g}, beta={b.beta:g} (loss {b.final_loss:.3g}, {accuracy.replace('_', ' ')} "
                      f"{b[accuracy]:.3f})")
    return {**base, "verdict": verdict,
            "why": f"edge alpha {edge:g}; best by loss at alpha {best['loss'].alpha:g}, by accuracy at alpha "
                   f"{best['accuracy'].alpha:g}; near = within {near_edge_factor:g}x below the edge",
            "summary": f"edge alpha {edge:g}; best by loss {text(best['loss'])}; best by accuracy "
                       f"{text(best['accuracy'])}",
            "measured": {"alpha_edge": edge, "accuracy_column": accuracy,
                         **{k: {"alpha": b.alpha, "beta": b.beta, "final_loss": b.final_loss,
                                "accuracy": b[accuracy], "near_edge": bool(near(b.alpha))} for k, b in best.items()}}}


def paper_scale_claims(grid_path, near_edge_factor: float) -> list[dict]:
    """C4 and C7-omniglot on the paper-scale Fig. 4b (paper_grid.py), by their rules unchanged, once every
    chunk is in; until then each row is 'pending' and says how many chunks are."""
    prov = _provenance(grid_path)
    done, n = len(prov["chunks_done"]), prov["chunks"]
    rows = [_few_shot_claim("omniglot", grid_path, near_edge_factor),
            _guideline_claim("omniglot", grid_path, near_edge_factor)] if done == n else [
        {"id": FEW_SHOT_CLAIMS["omniglot"][0], "claim": FEW_SHOT_CLAIMS["omniglot"][1],
         "short": "Omniglot: near the alpha edge a larger beta trains than at alpha = 0", "rule": "C4's"},
        {"id": GUIDELINE_CLAIMS["omniglot"], "claim": "Omniglot: the guideline's best cell lies near the largest "
         "alpha that trains", "short": "Omniglot: the best cell lies near the largest alpha that trains",
         "rule": "C7-omniglot's"}]
    out = []
    for row in rows:
        row = {**row, "id": f"{row['id'].removesuffix('-omniglot')}-omniglot-paper",
               "claim": f"At the paper's scale (Fig. 4b-paper): {row['claim']}",
               "short": f"{row['short']}, at the paper's scale"}
        if done < n:
            row.update(verdict="pending", why=f"{done} of {n} chunks of the paper-scale grid computed",
                       summary=f"{done} of {n} chunks computed (maml-convergence paper-grid); judged once all are in",
                       measured={"chunks_done": done, "chunks": n},
                       rule=f"{row['rule']} rule, unchanged, on the paper-scale grid once every chunk is in",
                       rests_on=f"{prov['cells']} of {prov['cells_in_grid']} cells ({done} of {n} chunks, computed on "
                                f"{prov['device']}): LESS than the paper-scale run of config/config.yaml")
        out.append(row)
    return out


AUDIT_SLACK, AUDIT_FAILS = 0.001, 0.10  # formula vs bisected boundary: bracket slack, failure threshold


def _audit_note(audit_cfg: dict, n_alphas: int) -> str:
    """Bisection has no counterpart in the paper: compare with this repository's default audit."""
    default = paper_scale()["audit"]
    note = (f"bisection at {n_alphas} alphas, {audit_cfg['iterations']} iterations per run, "
            f"{audit_cfg['rounds']} rounds x {audit_cfg['points']} betas")
    if any(audit_cfg[k] < default[k] for k in ("iterations", "rounds", "points")):
        note += (f" (LESS than the default audit: {default['iterations']} iterations, {default['rounds']} rounds x "
                 f"{default['points']} betas)")
    return note


def _audit_formula(table: pd.DataFrame, order: str, formula: str, eig, audit_cfg: dict) -> dict:
    """One formula (paper or exact) against the bisected boundary of one MAML order."""
    a_c = theory.paper_alpha_c(eig)
    t = table[table.order == order]
    if formula == "paper":
        t = t[t.alpha < a_c]  # the paper's beta_c is defined below alpha_c only
    t = t[np.isfinite(t[formula]) & np.isfinite(t.beta_measured)]
    rel = (t.beta_measured / t[formula] - 1).abs()
    precision = float((t.beta_unstable / t.beta_stable - 1).max()) if len(t) else math.nan
    worst = t.loc[rel.idxmax()] if len(t) else None
    off = t[rel > AUDIT_FAILS]
    slack = 1 + AUDIT_SLACK
    inside = (t.beta_stable <= t[formula] * slack) & (t[formula] <= t.beta_unstable * slack)
    verdict = ("inconclusive" if not len(t) else "holds" if inside.all()
               else "fails" if rel.max() > AUDIT_FAILS else "inconclusive")
    name = "2/(lambda - alpha lambda^2) (paper)" if formula == "paper" else (
        "2/(lambda (1 - alpha lambda)^2) (exact)" if order == "second" else "2/(lambda (1 - alpha lambda)) (exact)")
    summary = why = "no comparable alpha"
    if len(t):
        why = (f"inside {int(inside.sum())}/{len(t)} bisection brackets; max |rel. error| {rel.max():.3g} at alpha "
               f"{worst.alpha:.3g}")
        summary = (f"{len(t)} alphas; |rel. error| median {rel.median():.3g}, max {rel.max():.3g} at "
                   f"alpha={worst.alpha:.3g}" + (f"; > {AUDIT_FAILS:.0%} from alpha = {off.alpha.min():.3g}"
                                                 if len(off) else "")
                   + f"; inside the bisection bracket (width <= {precision:.2%}) at {int(inside.sum())}/{len(t)}")
    return {"id": f"A-{formula}-{order}", "claim": f"{order}-order MAML on linear regression: beta_c = {name}",
            "short": f"linear regression, {order} order: beta_c = {name}",
            "verdict": verdict, "why": why, "summary": summary,
            "measured": {"median_relative_error": float(rel.median()) if len(t) else None,
                         "max_relative_error": float(rel.max()) if len(t) else None,
                         "bracket_precision": precision, "rows": t.to_dict("records")},
            "rule": f"holds if the formula lies inside every bisection bracket (+-{AUDIT_SLACK:.1%}), fails if its "
                    f"|rel. error| to the bracket centre exceeds {AUDIT_FAILS:.0%} anywhere",
            "rests_on": _audit_note(audit_cfg, table[table.order == order].alpha.nunique())}


def _audit_past_alpha_c(table: pd.DataFrame, order: str, eig, audit_cfg: dict) -> dict:
    a_c = theory.paper_alpha_c(eig)
    past = table[(table.order == order) & (table.alpha > a_c)]
    trains = past[past.beta_stable.notna()]
    predicted = np.isfinite(theory.exact_alpha_c(eig, order))
    verdict = "holds" if len(past) and not len(trains) else "fails" if len(trains) else "inconclusive"
    return {"id": f"A-alpha_c-{order}", "claim": f"{order}-order MAML: every beta diverges past alpha_c = 1/lambda_max",
            "short": f"linear regression, {order} order: every beta diverges past alpha_c",
            "verdict": verdict,
            "why": f"{len(trains)}/{len(past)} alphas past alpha_c still converge (exact theory: "
                   f"{'none' if predicted else 'all'})",
            "summary": (f"{len(trains)}/{len(past)} alphas in (alpha_c, 2 alpha_c) still have a converging beta "
                        f"(exact theory predicts {'none' if predicted else 'all'})"),
            "measured": {"alpha_c": a_c, "alphas_past": past.alpha.tolist(),
                         "largest_stable_beta": past.beta_stable.tolist()},
            "rule": "holds if no alpha beyond 1/lambda_max has a beta whose run converges",
            "rests_on": _audit_note(audit_cfg, len(past)) + ", alphas up to 1.9 alpha_c"}


def _sinusoid_theory(grid: pd.DataFrame, ref: dict, iterations: int) -> dict:
    """The paper's bound from the Hessian at a meta-trained point, against the Fig. 4a grid of the
    seed whose task stream trained that point (the grid's other seeds have other task streams)."""
    eig = np.asarray(ref["eigenvalues"])
    seed_grid = grid[grid.seed == ref["seed"]] if "seed" in grid else grid
    br = stability_brackets(seed_grid)
    a_c = theory.paper_alpha_c(eig)
    cols = br[br.alpha < a_c].copy()
    cols["theory"] = theory.paper_beta_bound(cols.alpha.to_numpy(), eig)
    inside = [_inside_bracket(r.theory, r, grid.beta.max()) for r in cols.itertuples()]
    edge = br[br.any_ok].alpha.max()
    share, verdict = _share_verdict(inside)
    return {"id": "A-sinusoid", "claim": "sinusoid: beta_c(alpha) and alpha_c from the Hessian at a meta-trained "
                                         "point predict the Fig. 4a boundary",
            "short": "sinusoid: the paper's bound at a trained point predicts the boundary",
            "verdict": verdict,
            "why": f"inside the measured bracket in {sum(inside)}/{len(cols)} columns; alpha_c {a_c:.3g}, but alpha "
                   f"{edge:g} trains",
            "summary": (f"lambda_max {eig.max():.4g} at (alpha, beta) = ({ref['alpha']:g}, {ref['beta']:g}); theory "
                        f"inside the measured bracket in {sum(inside)}/{len(cols)} alpha columns; alpha_c theory "
                        f"{a_c:.3g} vs largest alpha that trains {edge:g}"),
            "measured": {"lambda_max": float(eig.max()), "alpha_c": a_c, "alpha_edge": edge, "share_inside": share,
                         "columns": cols.to_dict("records")},
            "rule": f"as C2-beta: holds if theory lies in the measured bracket in >= {CONSISTENT_SHARE:.0%} of the "
                    f"alpha columns below alpha_c, fails below {FAIL_SHARE:.0%}",
            "rests_on": _scale_note("sinusoid", grid, iterations)
                        + f", read on seed {ref['seed']}; Hessian after {ref['iterations']} iterations at one point"}


def _local_sinusoid(grid: pd.DataFrame, sharp: pd.DataFrame, ref: dict, iterations: int) -> dict:
    """Where the local theory applies: per seed and alpha column, 2/lambda_max of the MAML objective's own
    Hessian at the seed's initial parameters (``sharpness``) against the measured bracket; the paper's
    curve from the Hessian at a meta-trained point (row A-sinusoid) beside it, on the same columns."""
    beta_max = grid.beta.max()
    eig = np.asarray(ref["eigenvalues"])

    def one(seed, g):
        s = sharp[sharp.seed == seed] if "seed" in sharp else sharp
        cols = stability_brackets(g).merge(s[["alpha", "beta_predicted"]], on="alpha")
        inside = [_inside_bracket(r.beta_predicted, r, beta_max) for r in cols.itertuples()]
        above = [not i and (math.isnan(r.last_ok) or r.beta_predicted > r.last_ok)
                 for i, r in zip(inside, cols.itertuples())]
        rel = (np.sqrt(cols.last_ok * cols.first_diverged) / cols.beta_predicted - 1).abs()
        share, verdict = _share_verdict(inside)
        paper = cols[cols.alpha < theory.paper_alpha_c(eig)]
        paper_inside = [_inside_bracket(float(theory.paper_beta_bound(r.alpha, eig)), r, beta_max)
                        for r in paper.itertuples()]
        return {"id": "A-local-sinusoid",
                "claim": "sinusoid: 2/lambda_max of the MAML objective's Hessian at the initial parameters predicts "
                         "the Fig. 4a boundary, per alpha (the local theory, no fixed-Hessian assumption)",
                "short": "sinusoid: 2/lambda_max of the MAML Hessian at the start predicts the boundary",
                "verdict": verdict,
                "why": f"inside the measured bracket in {sum(inside)}/{len(cols)} columns, below it in "
                       f"{len(cols) - sum(inside) - sum(above)}",
                "summary": (f"prediction inside the measured bracket in {sum(inside)}/{len(cols)} alpha columns "
                            f"(above it in {sum(above)}, below in {len(cols) - sum(inside) - sum(above)}); median "
                            f"|rel. error| {np.nanmedian(rel) if rel.notna().any() else math.nan:.2f} (bracket centre "
                            f"vs prediction); the paper's beta_c from the Hessian at a meta-trained point: inside in "
                            f"{sum(paper_inside)}/{len(paper)} columns below its alpha_c"),
                "measured": {"columns": len(cols), "inside": int(sum(inside)), "above": int(sum(above)),
                             "share_inside": share,
                             "median_relative_error": float(np.nanmedian(rel)) if rel.notna().any() else None,
                             "paper_columns": len(paper), "paper_inside": int(sum(paper_inside)),
                             "brackets": cols.to_dict("records")},
                "rule": f"as C2-beta: holds if the prediction lies in [last stable beta, first diverged beta] in "
                        f">= {CONSISTENT_SHARE:.0%} of the alpha columns (alpha = 0 included), fails below "
                        f"{FAIL_SHARE:.0%}",
                "rests_on": ""}

    note = (_scale_note("sinusoid", grid, iterations)
            + "; lambda_max at each seed's initial parameters, first meta-batch")
    return _per_seed("seed", grid, one, note, ("share of columns inside", lambda m: m["share_inside"]))


G1_LOSS_FACTOR = 2.0  # G1: the suggested cell's final loss is at most this many times the grid's best


def _bracketing_columns(brackets: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """The grid columns on both sides of ``alpha`` (one column when alpha is one of them); none when
    alpha lies outside the grid's alphas."""
    alphas = brackets.alpha.to_numpy()
    lower, upper = alphas[alphas <= alpha * (1 + 1e-9)], alphas[alphas >= alpha * (1 - 1e-9)]
    if not len(lower) or not len(upper):
        return brackets.iloc[:0]
    return brackets[brackets.alpha.isin({lower.max(), upper.min()})]


def _best_at(region: pd.DataFrame, alpha: float) -> dict | None:
    """The lowest final loss of the stable cells in the grid columns on both sides of ``alpha``, beside the
    grid's lowest: whether any beta at the suggested alpha could have met G1's loss bound (iii)."""
    stable = region[region.status == "ok"]
    near = stable[stable.alpha.isin(_bracketing_columns(stability_brackets(region), alpha).alpha)]
    if not len(near):
        return None
    cell = near.loc[near.final_loss.idxmin()]
    return {"alpha": float(cell.alpha), "beta": float(cell.beta), "final_loss": float(cell.final_loss),
            "ratio": float(cell.final_loss / stable.final_loss.min())}


def _suggested_cell(problem: str, grid_path, suggestion_path, check_path, name: str) -> dict:
    """What G1 and G2 read of one of suggest's cells (``name``: "guideline" or "recommended"): the report, the
    grid (the report's seed, and every seed), the cell's own run with the grid's settings, its place among the
    grid's stable cells. Stable: definition (b) of C4/C5 on a few-shot grid, not diverged otherwise."""
    prov, sugg, check = _provenance(grid_path), json.loads(Path(suggestion_path).read_text()), pd.read_csv(check_path)
    whole = pd.read_csv(grid_path)
    seed = sugg["settings"]["seed"]
    few_shot = problem in FEW_SHOT_CLAIMS
    if few_shot:
        n_way = prov["config"][problem]["n_way"]
        region_of = lambda rows: few_shot_stability(rows, n_way, "b")
    else:
        region_of = lambda rows: rows
    if "seed" in whole:
        seeds = {int(s): region_of(rows) for s, rows in whole.groupby("seed")}
    else:
        seeds = {int(seed): region_of(whole)}
    cell, settings = sugg.get(name), sugg["settings"]
    probe = (f"; suggest: {len(sugg['probe'])} probe cells x {settings.get('streams', 1)} task streams x "
             f"{settings['iterations']} iterations, took {sugg['seconds']:.0f} s on {settings['device']}"
             + (" (cut short by its budget)" if sugg.get("cut_short") else ""))
    out = {"sugg": sugg, "prov": prov, "whole": whole, "seed": seed, "few_shot": few_shot, "seeds": seeds,
           "region": seeds.get(int(seed)), "cell": cell,
           "rests_on": (_few_shot_rests_on(problem, whole, prov) if few_shot
                        else _scale_note(problem, whole, prov["iterations"]) + f", read on seed {seed}") + probe}
    if cell is None or out["region"] is None:
        return out
    alpha, beta = cell["alpha"], cell["beta"]
    own_row = check[check.suggested == name] if "suggested" in check else check
    if few_shot:
        own = str(few_shot_outcomes(own_row, n_way).iloc[0])
        own_stable = own in DEFINITIONS["b"][1]
    else:
        own = str(own_row.status.iloc[0])
        own_stable = own == "ok"
    region = out["region"]
    cols = _bracketing_columns(stability_brackets(region), alpha)
    stable = region[region.status == "ok"]
    best = stable.loc[stable.final_loss.idxmin()] if len(stable) else None
    loss = float(own_row.final_loss.iloc[0])
    inside_per_seed = {}
    for s, rows in seeds.items():
        seed_cols = _bracketing_columns(stability_brackets(rows), alpha)
        inside_per_seed[s] = bool(len(seed_cols)) and bool((seed_cols.last_ok >= beta * (1 - 1e-9)).all())
    out.update(alpha=alpha, beta=beta, own=own, own_stable=own_stable, own_row=own_row, cols=cols,
               inside=inside_per_seed[int(seed)], inside_per_seed=inside_per_seed, best=best, loss=loss,
               ratio=loss / best.final_loss if best is not None and math.isfinite(loss) else math.nan,
               where=", ".join(f"alpha={r.alpha:g}: largest stable beta {r.last_ok:g}" for r in cols.itertuples())
               or "outside the grid's alphas")
    return out


def _own_measures(read: dict) -> dict:
    measured = {"alpha": read["alpha"], "beta": read["beta"], "inside_stable_region": read["inside"],
                "columns": read["cols"].to_dict("records"), "own_outcome": read["own"], "final_loss": read["loss"],
                "loss_ratio": read["ratio"],
                "best": None if read["best"] is None else {"alpha": read["best"].alpha, "beta": read["best"].beta,
                                                           "final_loss": read["best"].final_loss}}
    for column in ("heldout_accuracy", "final_accuracy"):
        if column in read["own_row"] and read["own_row"][column].notna().any():
            measured[column] = float(read["own_row"][column].iloc[0])
    return measured


def _suggest_claim(problem: str, grid_path, suggestion_path, check_path) -> dict:
    """G1: is the paper's guideline, as ``maml-convergence suggest`` measures it, stable and good on the workflow's
    own grid?"""
    read = _suggested_cell(problem, grid_path, suggestion_path, check_path, "guideline")
    sugg, seed = read["sugg"], read["seed"]
    base = {"id": f"G1-{problem}",
            "short": f"{problem}: the paper's guideline cell is stable and within {G1_LOSS_FACTOR:g}x the grid's best "
                     f"loss",
            "claim": f"{problem}: the paper's guideline (the largest alpha that trains, less one rung, and half the "
                     f"largest stable beta there), measured by maml-convergence suggest, lies in the stable region of "
                     f"the workflow's grid, and trains to within {G1_LOSS_FACTOR:g}x the grid's best loss",
            "rule": "stable = " + ("neither diverged nor rose, definition (b) of C4/C5" if read["few_shot"]
                                   else "not diverged")
                    + "; holds if (i) in the grid columns on both sides of the guideline's alpha, its beta is "
                      "at or below the largest stable beta below the column's first unstable one, (ii) the guideline's "
                      "cell trained with the grid's settings (same seed, iterations, evaluation) is stable, and (iii) "
                      f"its final loss is at most {G1_LOSS_FACTOR:g}x the lowest final loss of the grid's stable "
                      "cells; fails otherwise",
            "rests_on": read["rests_on"]}
    if read["region"] is None:
        return {**base, "verdict": "inconclusive", "why": f"the grid has no seed {seed}",
                "summary": f"the grid has no seed {seed}", "measured": {}}
    if read["cell"] is None:
        return {**base, "verdict": "fails", "why": "suggest found no guideline cell",
                "summary": "suggest found no guideline cell: no probe cell trained",
                "measured": {"notes": sugg["notes"]}}
    alpha, beta, best, ratio = read["alpha"], read["beta"], read["best"], read["ratio"]
    inside, own = read["inside"], read["own"]
    verdict = "holds" if inside and read["own_stable"] and ratio <= G1_LOSS_FACTOR else "fails"
    summary = (f"guideline alpha={alpha:.3g}, beta={beta:.3g} (probe edge alpha {read['cell']['alpha_edge']:.3g}); "
               f"grid columns {read['where']}: {'inside' if inside else 'OUTSIDE'} the stable region; its own run: "
               f"{own}, final loss {read['loss']:.3g}"
               + (f" vs the grid's best {best.final_loss:.3g} at alpha={best.alpha:g}, beta={best.beta:g} (ratio "
                  f"{ratio:.3g})" if best is not None else ""))
    # Not part of the rule: says whether (iii) was within reach of any beta at the guideline's alpha, on this
    # seed and on every seed of the grid, so a failure can be put on the alpha or on the beta.
    reach_per_seed = {s: _best_at(rows, alpha) for s, rows in read["seeds"].items()}
    reach = reach_per_seed[int(seed)]
    if reach is not None:
        summary += (f"; the best stable cell in those columns: loss {reach['final_loss']:.3g} at "
                    f"alpha={reach['alpha']:g}, beta={reach['beta']:g} (ratio {reach['ratio']:.3g}), so "
                    + ("some" if reach["ratio"] <= G1_LOSS_FACTOR else "no") + " beta there meets (iii)")
        if len(reach_per_seed) > 1:
            ratios = [r["ratio"] for r in reach_per_seed.values() if r is not None]
            summary += (f"; over the grid's {len(reach_per_seed)} seeds, that ratio is {_spread(ratios)}, "
                        f"above {G1_LOSS_FACTOR:g} in {sum(r > G1_LOSS_FACTOR for r in ratios)}")
    measured = {**_own_measures(read), "alpha_edge": read["cell"]["alpha_edge"], "beta_max": read["cell"]["beta_max"],
                "best_at_suggested_alpha": reach, "best_at_suggested_alpha_per_seed": reach_per_seed,
                "curvature": {k: sugg[k] for k in ("alpha_c", "lambda_max", "beta_bound_paper", "beta_bound_exact",
                                                   "beta_bound_maml_hessian")}}
    why = (f"alpha={alpha:.3g}, beta={beta:.3g}: {'inside' if inside else 'outside'} the stable region, own run "
           f"{own}, loss {ratio:.3g}x the grid's best")
    return {**base, "verdict": verdict, "why": why, "summary": summary, "measured": measured}


G2_LOSS_FACTOR = 1.5      # G2: the recommended cell's final loss is at most this many times the grid's best
G2_ACCURACY_GAP = 0.05    # G2, few-shot: its held-out accuracy at most this far below the grid's best stable cell's
G2_SEED_SHARE = 0.8       # G2: inside the stable region on at least this share of the grid's seeds (4 of 5)


def _recommended_claim(problem: str, grid_path, suggestion_path, check_path) -> dict:
    """G2: is the cell ``maml-convergence suggest`` recommends stable over the grid's seeds and near its best?"""
    read = _suggested_cell(problem, grid_path, suggestion_path, check_path, "recommended")
    few_shot = read["few_shot"]
    base = {"id": f"G2-{problem}",
            "short": f"{problem}: suggest's recommended cell is stable and within {G2_LOSS_FACTOR:g}x the grid's "
                     f"best loss",
            "claim": f"{problem}: the cell maml-convergence suggest recommends (the probe's lowest loss over its task "
                     f"streams, with a stable beta rung above it) lies in the stable region of the workflow's grid on "
                     f"its seeds, and trains to within {G2_LOSS_FACTOR:g}x the grid's best loss"
                     + (f" and {G2_ACCURACY_GAP:g} of its best held-out accuracy" if few_shot else ""),
            "rule": "stable = " + ("neither diverged nor rose, definition (b) of C4/C5" if few_shot else "not diverged")
                    + f"; holds if (i) on at least {G2_SEED_SHARE:.0%} of the grid's seeds, in the grid columns on "
                      "both sides of the recommended alpha, its beta is at or below the largest stable beta below "
                      "the column's first unstable one, (ii) the recommended cell trained with the grid's settings "
                      "(same seed, iterations, evaluation) is stable, and (iii) its final loss is at most "
                      f"{G2_LOSS_FACTOR:g}x the lowest final loss of the grid's stable cells (on the report's seed)"
                    + (f", and its held-out accuracy at most {G2_ACCURACY_GAP:g} below the best held-out accuracy "
                       "of those cells" if few_shot else "") + "; fails otherwise",
            "rests_on": read["rests_on"]}
    if read["region"] is None:
        return {**base, "verdict": "inconclusive", "why": f"the grid has no seed {read['seed']}",
                "summary": f"the grid has no seed {read['seed']}", "measured": {}}
    if read["cell"] is None:
        return {**base, "verdict": "fails", "why": "suggest recommended no cell",
                "summary": "suggest recommended no cell: none trained on every stream with a stable rung above it",
                "measured": {"notes": read["sugg"]["notes"]}}
    alpha, beta, best, ratio, own = read["alpha"], read["beta"], read["best"], read["ratio"], read["own"]
    inside_seeds = sum(read["inside_per_seed"].values())
    seeds_needed = math.ceil(G2_SEED_SHARE * len(read["inside_per_seed"]) - 1e-9)
    measured = {**_own_measures(read), "inside_per_seed": read["inside_per_seed"], "seeds_inside": inside_seeds,
                "seeds_needed": seeds_needed}
    accuracy_ok, accuracy_text = True, ""
    if few_shot:
        stable = read["region"][read["region"].status == "ok"]
        grid_best = float(stable.heldout_accuracy.max()) if "heldout_accuracy" in stable and len(stable) else math.nan
        own_acc = measured.get("heldout_accuracy", math.nan)
        accuracy_ok = math.isfinite(grid_best) and math.isfinite(own_acc) and own_acc >= grid_best - G2_ACCURACY_GAP
        measured["grid_best_heldout_accuracy"] = grid_best
        accuracy_text = f"; held-out accuracy {own_acc:.3f} vs the grid's best {grid_best:.3f}"
    verdict = "holds" if (inside_seeds >= seeds_needed and read["own_stable"] and ratio <= G2_LOSS_FACTOR
                          and accuracy_ok) else "fails"
    summary = (f"recommended alpha={alpha:.3g}, beta={beta:.3g}: inside the stable region on {inside_seeds} of "
               f"{len(read['inside_per_seed'])} seeds (needed {seeds_needed}; seed {read['seed']}: columns "
               f"{read['where']}); its own run: {own}, final loss {read['loss']:.3g}"
               + (f" vs the grid's best {best.final_loss:.3g} at alpha={best.alpha:g}, beta={best.beta:g} (ratio "
                  f"{ratio:.3g})" if best is not None else "") + accuracy_text)
    why = (f"alpha={alpha:.3g}, beta={beta:.3g}: stable on {inside_seeds}/{len(read['inside_per_seed'])} seeds, own "
           f"run {own}, loss {ratio:.3g}x the grid's best" + (accuracy_text.replace("; ", ", ") if few_shot else ""))
    return {**base, "verdict": verdict, "why": why, "summary": summary, "measured": measured}


def _gradient_norm_claim(table: pd.DataFrame) -> dict:
    """MAML's task-gradient norm grows more than joint training's (Fig. 1)."""
    maml_alpha, joint_alpha = table.alpha.max(), table.alpha.min()
    end = table.iteration.max()
    per_seed = []
    for (seed, split), t in table.groupby(["seed", "split"]):
        norm = lambda a, it: float(t[(t.alpha == a) & (t.iteration == it)].grad_norm.iloc[0])
        per_seed.append({"seed": seed, "split": split,
                         "end_ratio": norm(maml_alpha, end) / norm(joint_alpha, end),
                         "growth_maml": norm(maml_alpha, end) / norm(maml_alpha, 0),
                         "growth_joint": norm(joint_alpha, end) / norm(joint_alpha, 0)})
    ps = pd.DataFrame(per_seed)
    ratio = ps.end_ratio
    holds = (ratio > 1).all() and (ps.growth_maml > ps.growth_joint).all()
    verdict = "holds" if holds else "fails" if ratio.median() < 1 else "inconclusive"
    seeds, paper = table.seed.nunique(), paper_scale()["fig1"]
    note = f"{seeds} seeds x {int(end)} iterations"
    if seeds < paper["seeds"] or end < paper["iterations"]:
        note += f" (LESS than {paper['seeds']} seeds x {paper['iterations']} iterations)"
    summary = "; ".join(f"{split}: ||g|| MAML/joint at the end {g.end_ratio.mean():.3g} +- "
                        f"{g.end_ratio.std(ddof=0):.2g}"
                        f" (growth over training: MAML x{g.growth_maml.mean():.3g}, joint x{g.growth_joint.mean():.3g})"
                        for split, g in ps.groupby("split"))
    return {"id": "C1", "claim": f"the mean task-gradient norm grows under MAML (alpha={maml_alpha:g}) more than "
                                 f"under joint training (alpha={joint_alpha:g}) (Fig. 1)",
            "short": "MAML's task-gradient norm grows more than joint training's",
            "verdict": verdict,
            "why": f"||g|| MAML/joint at the end {_spread(ratio)} over {seeds} seeds and both splits",
            "summary": summary, "measured": {"per_seed": per_seed},
            "rule": "holds if, for every seed and both splits, the end-of-training norm ratio MAML/joint > 1 and "
                    "MAML's norm grew by more than joint training's; fails if the median ratio < 1",
            "rests_on": note}


TG_NEGLIGIBLE, TG_NOT = 0.1, 0.5  # C6: ratio of T g to H^2 (largest eigenvalue, Frobenius norm)


def _tg_negligible_claim(curv: pd.DataFrame, cfg: dict) -> dict:
    """Is T g negligible next to H^2 at the trained point (the paper's Appendix B)? ``cfg``: the configuration
    the curvature analysis ran with (its provenance)."""
    curv = curv.assign(eig_ratio=curv.eig_Tg_1 / curv.eig_H2_1, fro_ratio=curv.fro_Tg / curv.fro_H2)
    last = curv[curv.iteration == curv.iteration.max()].set_index("scope")
    worst = max(float(last.eig_ratio.abs().max()), float(last.fro_ratio.max()))
    verdict = "holds" if worst <= TG_NEGLIGIBLE else "fails" if worst >= TG_NOT else "inconclusive"
    over = curv.groupby("scope")[["eig_ratio", "fro_ratio"]].agg(["min", "max"])
    iterations, tasks, paper = cfg["fig5"]["iterations"], cfg["sinusoid"]["tasks"], paper_scale()["fig5"]
    note = f"{iterations} iterations, {curv.iteration.nunique()} snapshots, {tasks} tasks"
    if iterations < paper["iterations"] or tasks < paper["tasks"]:
        note += f" (LESS than the paper's {paper['iterations']} iterations, {paper['tasks']} tasks)"
    return {"id": "C6", "claim": "T g is negligible next to H^2 at the trained point: lambda_max(T g + H^2) ~ "
                                 "lambda_max(H^2) and ||T g||_F << ||H^2||_F (Fig. 5)",
            "short": "T g is negligible next to H^2 at the trained point",
            "verdict": verdict,
            "why": f"largest ratio T g / H^2 at the end {worst:.3g} (holds <= {TG_NEGLIGIBLE:g}, fails >= {TG_NOT:g})",
            "summary": "; ".join(
                f"{scope}: lambda_max(Tg)/lambda_max(H^2) = {r.eig_ratio:.3g}, ||Tg||F/||H^2||F = {r.fro_ratio:.3g} "
                f"at iteration {int(r.iteration)} (over training {over.loc[scope, ('eig_ratio', 'min')]:.3g}-"
                f"{over.loc[scope, ('eig_ratio', 'max')]:.3g} and {over.loc[scope, ('fro_ratio', 'min')]:.3g}-"
                f"{over.loc[scope, ('fro_ratio', 'max')]:.3g})" for scope, r in last.iterrows()),
            "measured": {"final": last.reset_index().to_dict("records"), "over_training": curv.to_dict("records")},
            "rule": f"at the last snapshot, for the batch loss and per task: holds if both ratios <= "
                    f"{TG_NEGLIGIBLE:g}, "
                    f"fails if either >= {TG_NOT:g}",
            "rests_on": note}


def _provenance(result_path) -> dict:
    """The provenance.json beside a result file: the settings it was computed with."""
    return json.loads((Path(result_path).parent / "provenance.json").read_text())


def linear_claims(grid: pd.DataFrame, order: str, iterations: int, success_loss: float, eig: dict) -> list[dict]:
    """C2-alpha and C2-beta of one MAML order, on every data draw (``eig``: each draw's spectrum)."""
    note = _scale_note("linear", grid, iterations)
    return [_per_seed("draw", grid, lambda s, g: _alpha_c_claim(order, g, eig[s], iterations, success_loss), note),
            _per_seed("draw", grid, lambda s, g: _beta_c_claim(order, g, eig[s], iterations), note,
                      ("share of columns inside", lambda m: m["share_inside"]))]


def audit_claims(table: pd.DataFrame, eig: dict, audit_cfg: dict) -> list[dict]:
    """The audit's rows (each formula against the bisected boundary, and past alpha_c), per order."""
    rows = []
    for order in table.order.unique():
        t = table[table.order == order]
        for formula in ("paper", "exact"):
            rows.append(_per_seed("draw", t, lambda s, d: _audit_formula(d, order, formula, eig[s], audit_cfg),
                                  spread_of=("max |rel. error|", lambda m: m["max_relative_error"])))
        rows.append(_per_seed("draw", t, lambda s, d: _audit_past_alpha_c(d, order, eig[s], audit_cfg)))
    return rows


def fig2_numbers(curves: pd.DataFrame) -> dict:
    """What Fig. 2 shows, as numbers: beta_c at alpha = 0 for each eigenvalue, and the table's sha256
    (pure float64 arithmetic: the same bytes on any machine)."""
    at_zero = curves[curves.alpha == 0].set_index("lambda").beta_c
    return {"beta_c_at_alpha_0": {f"{lam:g}": float(b) for lam, b in at_zero.items()},
            "curves_sha256": hashlib.sha256(curves.to_csv(index=False).encode()).hexdigest()}


def evaluate(cfg: dict, reference_path, linear_grid_paths, sinusoid_grid_path, audit_path=None,
             sinusoid_reference_path=None, fig5_path=None, fig1_path=None, few_shot_grid_paths=None,
             fig2_path=None, sinusoid_local_bound_path=None, guideline_paths=None, paper_grid_path=None) -> dict:
    """Every claim, from the result files. ``cfg`` needs only its ``claims`` section: every other
    setting is read from the provenance of the result it belongs to, so a verdict always uses the
    settings its numbers were computed with."""
    near_edge_factor = cfg["claims"]["near_edge_factor"]
    reference = json.loads(Path(reference_path).read_text())
    eig = {d["seed"]: np.asarray(d["eigenvalues"]) for d in reference["draws"]}
    claims, settings = [], {"claims": cfg["claims"]}
    for path in linear_grid_paths:
        prov = _provenance(path)
        settings["linear"] = prov["config"]["linear"]
        claims += linear_claims(pd.read_csv(path), prov["order"], prov["iterations"],
                                settings["linear"]["success_loss"], eig)
    sin_prov = _provenance(sinusoid_grid_path)
    sin_grid = pd.read_csv(sinusoid_grid_path)
    settings["sinusoid"] = sin_prov["config"]["sinusoid"]
    claims.append(_sinusoid_edge_claim(sin_grid, sin_prov["iterations"], near_edge_factor))
    few_shot = (few_shot_grid_paths or {}).items()
    claims += [_few_shot_claim(dataset, path, near_edge_factor) for dataset, path in few_shot]
    claims += [_guideline_claim(dataset, path, near_edge_factor) for dataset, path in few_shot]
    settings.update({dataset: _provenance(path)["config"][dataset] for dataset, path in few_shot})
    if paper_grid_path is not None:
        claims += paper_scale_claims(paper_grid_path, near_edge_factor)
    if audit_path is not None:
        table, audit_cfg = pd.read_csv(audit_path), _provenance(audit_path)["config"]["audit"]
        settings["audit"] = audit_cfg
        claims += audit_claims(table, eig, audit_cfg)
    if sinusoid_reference_path is not None:
        ref = json.loads(Path(sinusoid_reference_path).read_text())
        claims.append(_sinusoid_theory(sin_grid, ref, sin_prov["iterations"]))
        if sinusoid_local_bound_path is not None:
            claims.append(_local_sinusoid(sin_grid, pd.read_csv(sinusoid_local_bound_path), ref,
                                          sin_prov["iterations"]))
    grids = {"sinusoid": sinusoid_grid_path, **(few_shot_grid_paths or {})}
    claims += [judge(problem, grids[problem], suggestion, check)
               for problem, (suggestion, check) in (guideline_paths or {}).items()
               for judge in (_suggest_claim, _recommended_claim)]
    if fig1_path is not None:
        claims.insert(0, _gradient_norm_claim(pd.read_csv(fig1_path)))
    if fig5_path is not None:
        claims.append(_tg_negligible_claim(pd.read_csv(fig5_path), _provenance(fig5_path)["config"]))
    if fig2_path is not None:
        settings["fig2"] = _provenance(fig2_path)["config"]["fig2"]
    return {"eigenvalues": {int(s): e.tolist() for s, e in eig.items()}, "claims": claims, "settings": settings,
            "fig2": fig2_numbers(pd.read_csv(fig2_path)) if fig2_path is not None else None,
            "sources": {"linear_reference": str(reference_path), "linear_grids": list(map(str, linear_grid_paths)),
                        "sinusoid_grid": str(sinusoid_grid_path), "linear_audit": str(audit_path),
                        "sinusoid_reference": str(sinusoid_reference_path), "fig5": str(fig5_path),
                        "fig1": str(fig1_path), "omniglot_paper": str(paper_grid_path),
                        **{k: str(v) for k, v in (few_shot_grid_paths or {}).items()},
                        "sinusoid_local_bound": str(sinusoid_local_bound_path),
                        "guideline": {k: list(map(str, v)) for k, v in (guideline_paths or {}).items()}}}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # ||g||: not a column


def has_verdict_table(result: dict) -> bool:
    """Whether every row of ``result`` (claims.json) has the short claim and why the verdict table shows;
    rows written by an older version lack them."""
    return all("short" in c and "why" in c for c in result["claims"])


def verdict_table(result: dict, link: str = "") -> str:
    """One row per claim: id, the claim in short, verdict, one line of why. ``link``: where each id's section is
    (``figures/CLAIMS.md`` from the README; empty within CLAIMS.md itself)."""
    lines = ["| id | claim | verdict | why |", "|---|---|---|---|"]
    for c in result["claims"]:
        anchor = c["id"].lower()  # GitHub's anchor of the section "## <id>"
        lines.append(f"| [{c['id']}]({link}#{anchor}) | {_cell(c['short'])} | **{c['verdict']}** | {_cell(c['why'])} |")
    return "\n".join(lines)


README_BEGIN = ("<!-- verdicts: generated from figures/claims.json by "
                "`maml-convergence verdict-table --update README.md` -->")
README_END = "<!-- verdicts: end -->"


def with_verdict_table(readme: str, result: dict) -> str:
    """``readme`` with the block between README_BEGIN and README_END replaced by the verdict table."""
    if README_BEGIN not in readme or README_END not in readme:
        raise ValueError(f"no verdict table block ({README_BEGIN} ... {README_END})")
    head, rest = readme.split(README_BEGIN, 1)
    return head + README_BEGIN + "\n" + verdict_table(result, "figures/CLAIMS.md") + "\n" + README_END + \
        rest.split(README_END, 1)[1]


def to_markdown(result: dict) -> str:
    lines = ["# Claims: verdicts from this repository's own results",
             "",
             "Generated by the workflow (`snakemake --cores all`, rule `claims`) from `results/`; "
             "never edited by hand; `figures/claims.json` holds the same with every number, and a test "
             "recomputes the cheap ones. Each verdict follows a rule fixed before the data it judges; the "
             "sections below give, per claim, what was measured, the rule and what the numbers rest on.",
             "",
             verdict_table(result),
             "",
             "Hessian eigenvalues at the linear-regression reference point, per data draw: "
             + "; ".join(f"draw {s}: " + ", ".join(f"{e:.4g}" for e in eig) for s, eig in result["eigenvalues"].items())
             + "."]
    for c in result["claims"]:
        lines += ["", f"## {c['id']}", "", f"**{c['verdict']}**: {c['claim']}", "",
                  f"- **measured**: {c['summary']}", f"- **rule**: {c['rule']}", f"- **rests on**: {c['rests_on']}"]
    return "\n".join(lines) + "\n"
