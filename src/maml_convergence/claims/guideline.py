"""G1 and G2: the two cells of ``maml-convergence suggest`` (the paper's guideline, the recommended cell)
against the workflow's own grids.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..config import paper_scale
from ..problems import SINUSOID
from ..stability import DEFINITIONS, few_shot_outcomes, few_shot_stability, stability_brackets
from .few_shot import few_shot_rests_on
from .results import FEW_SHOT, Results, provenance_of
from .verdicts import scale_note, spread

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


BETWEEN = "between rungs"


def _placement(brackets: pd.DataFrame, alpha: float, beta: float) -> str:
    """Where ``beta`` lies in the grid columns on both sides of ``alpha``: 'inside' (at or below every column's
    largest stable beta below its first unstable one), 'between rungs' (above that in some column, but below
    every column's first unstable beta: a bracket the grid did not measure) or 'outside'."""
    cols = _bracketing_columns(brackets, alpha)
    if not len(cols) or cols.last_ok.isna().any():
        return "outside"
    if (cols.last_ok >= beta * (1 - 1e-9)).all():
        return "inside"
    return BETWEEN if (cols.first_diverged.isna() | (cols.first_diverged > beta * (1 + 1e-9))).all() else "outside"


def _suggested_cell(problem: str, grid_path, suggestion_path, check_path, name: str) -> dict:
    """What G1 and G2 read of one of suggest's cells (``name``: "guideline" or "recommended"): the report, the
    grid (the report's seed, and every seed), the cell's own run with the grid's settings, its place among the
    grid's stable cells (inside the stable region; between the grid's rungs, where its own run decides; outside).
    Stable: definition (b) of C4/C5 on a few-shot grid, not diverged otherwise."""
    prov, sugg, check = provenance_of(grid_path), json.loads(Path(suggestion_path).read_text()), pd.read_csv(check_path)
    whole = pd.read_csv(grid_path)
    seed = sugg["settings"]["seed"]
    few_shot = problem in FEW_SHOT
    if few_shot:
        section = prov["config"][problem]
        region_of = lambda rows: few_shot_stability(rows, section, "b")
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
           "rests_on": (few_shot_rests_on(problem, whole, prov) if few_shot
                        else scale_note(problem, whole, prov["iterations"]) + f", read on seed {seed}") + probe}
    if cell is None or out["region"] is None:
        return out
    alpha, beta = cell["alpha"], cell["beta"]
    own_row = check[check.suggested == name] if "suggested" in check else check
    if few_shot:
        own = str(few_shot_outcomes(own_row, section).iloc[0])
        own_stable = own in DEFINITIONS["b"][1]
    else:
        own = str(own_row.status.iloc[0])
        own_stable = own == "ok"
    region = out["region"]
    cols = _bracketing_columns(stability_brackets(region), alpha)
    stable = region[region.status == "ok"]
    best = stable.loc[stable.final_loss.idxmin()] if len(stable) else None
    loss = float(own_row.final_loss.iloc[0])
    placement = {s: _placement(stability_brackets(rows), alpha, beta) for s, rows in seeds.items()}
    inside_per_seed = {s: p == "inside" or (p == BETWEEN and own_stable) for s, p in placement.items()}
    out.update(alpha=alpha, beta=beta, own=own, own_stable=own_stable, own_row=own_row, cols=cols,
               placement=placement[int(seed)], placement_per_seed=placement,
               inside=inside_per_seed[int(seed)], inside_per_seed=inside_per_seed, best=best, loss=loss,
               ratio=loss / best.final_loss if best is not None and math.isfinite(loss) else math.nan,
               where=", ".join(f"alpha={r.alpha:g}: largest stable beta {r.last_ok:g}" for r in cols.itertuples())
               or "outside the grid's alphas")
    return out


def _placement_text(read: dict) -> str:
    if read["placement"] == BETWEEN:
        return (f"BETWEEN RUNGS of the grid (not measured there; its own run: {read['own']}, so "
                f"{'inside' if read['own_stable'] else 'outside'})")
    return "inside the stable region" if read["placement"] == "inside" else "OUTSIDE the stable region"


def _without_a_cell(read: dict, none: str, because: str) -> dict | None:
    """The verdict of G1 or G2 when there is nothing to judge: the grid lacks the report's seed (inconclusive),
    or suggest gave no such cell (fails); None when there is."""
    if read["region"] is None:
        return {"verdict": "inconclusive", "why": f"the grid has no seed {read['seed']}",
                "summary": f"the grid has no seed {read['seed']}", "measured": {}}
    if read["cell"] is None:
        return {"verdict": "fails", "why": none, "summary": f"{none}: {because}",
                "measured": {"notes": read["sugg"]["notes"]}}
    return None


def _own_measures(read: dict) -> dict:
    measured = {"alpha": read["alpha"], "beta": read["beta"], "inside_stable_region": read["inside"],
                "placement": read["placement"],
                "columns": read["cols"].to_dict("records"), "own_outcome": read["own"], "final_loss": read["loss"],
                "loss_ratio": read["ratio"],
                "best": None if read["best"] is None else {"alpha": read["best"].alpha, "beta": read["best"].beta,
                                                           "final_loss": read["best"].final_loss}}
    for column in ("heldout_accuracy", "final_accuracy"):
        if column in read["own_row"] and read["own_row"][column].notna().any():
            measured[column] = float(read["own_row"][column].iloc[0])
    return measured


def guideline_cell_is_good(cid: str, problem: str, grid_path, suggestion_path, check_path) -> dict:
    """G1: is the paper's guideline, as ``maml-convergence suggest`` measures it, stable and good on the workflow's
    own grid?"""
    read = _suggested_cell(problem, grid_path, suggestion_path, check_path, "guideline")
    sugg, seed = read["sugg"], read["seed"]
    base = {"id": cid,
            "short": f"{problem}: the paper's guideline cell is stable and within {G1_LOSS_FACTOR:g}x the grid's best "
                     f"loss",
            "claim": f"{problem}: the paper's guideline (the largest alpha that trains, less one rung, then beta tuned "
                     f"there: the probe's lowest loss among the betas stable with a rung to spare), measured by "
                     f"maml-convergence suggest, lies in the stable region of the workflow's grid, and trains to "
                     f"within {G1_LOSS_FACTOR:g}x the grid's best loss",
            "rule": "stable = " + ("neither diverged nor rose, definition (b) of C4/C5" if read["few_shot"]
                                   else "not diverged")
                    + "; holds if (i) in the grid columns on both sides of the guideline's alpha, its beta is "
                      "at or below the largest stable beta below the column's first unstable one (where it lies "
                      "between that beta and the first unstable one, a bracket the grid did not measure, its own run "
                      "in (ii) decides), (ii) the guideline's "
                      "cell trained with the grid's settings (same seed, iterations, evaluation) is stable, and (iii) "
                      f"its final loss is at most {G1_LOSS_FACTOR:g}x the lowest final loss of the grid's stable "
                      "cells; fails otherwise",
            "rests_on": read["rests_on"]}
    unjudged = _without_a_cell(read, "suggest found no guideline cell", "no probe cell trained")
    if unjudged:
        return {**base, **unjudged}
    alpha, beta, best, ratio = read["alpha"], read["beta"], read["best"], read["ratio"]
    inside, own = read["inside"], read["own"]
    verdict = "holds" if inside and read["own_stable"] and ratio <= G1_LOSS_FACTOR else "fails"
    summary = (f"guideline alpha={alpha:.3g}, beta={beta:.3g} (probe edge alpha {read['cell']['alpha_edge']:.3g}); "
               f"grid columns {read['where']}: {_placement_text(read)}; its own run: {own}, final loss "
               f"{read['loss']:.3g}"
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
            summary += (f"; over the grid's {len(reach_per_seed)} seeds, that ratio is {spread(ratios)}, "
                        f"above {G1_LOSS_FACTOR:g} in {sum(r > G1_LOSS_FACTOR for r in ratios)}")
    measured = {**_own_measures(read), "alpha_edge": read["cell"]["alpha_edge"], "beta_max": read["cell"]["beta_max"],
                "best_at_suggested_alpha": reach, "best_at_suggested_alpha_per_seed": reach_per_seed,
                "curvature": {k: sugg[k] for k in ("alpha_c", "lambda_max", "beta_bound_paper", "beta_bound_exact",
                                                   "beta_bound_maml_hessian")}}
    why = (f"alpha={alpha:.3g}, beta={beta:.3g}: {_placement_text(read).lower()}, own run {own}, loss {ratio:.3g}x "
           f"the grid's best")
    summary += f" (1 seed: judged on seed {seed} of the grid, its own run at that seed)"
    return {**base, "verdict": verdict, "why": why, "summary": summary, "measured": measured}


G2_LOSS_FACTOR = 1.5      # G2: the recommended cell's final loss is at most this many times the grid's best
G2_ACCURACY_GAP = 0.05    # G2, few-shot: its held-out accuracy at most this far below the grid's best stable cell's
G2_SEED_SHARE = 0.8       # G2: inside the stable region on at least this share of the grid's seeds (4 of 5)


def recommended_cell_is_good(cid: str, problem: str, grid_path, suggestion_path, check_path) -> dict:
    """G2: is the cell ``maml-convergence suggest`` recommends stable over the grid's seeds and near its best?"""
    read = _suggested_cell(problem, grid_path, suggestion_path, check_path, "recommended")
    few_shot = read["few_shot"]
    base = {"id": cid,
            "short": f"{problem}: suggest's recommended cell is stable and within {G2_LOSS_FACTOR:g}x the grid's "
                     f"best loss",
            "claim": f"{problem}: the cell maml-convergence suggest recommends (the probe's lowest loss over its task "
                     f"streams, with a stable beta rung above it) lies in the stable region of the workflow's grid on "
                     f"its seeds, and trains to within {G2_LOSS_FACTOR:g}x the grid's best loss"
                     + (f" and {G2_ACCURACY_GAP:g} of its best held-out accuracy" if few_shot else ""),
            "rule": "stable = " + ("neither diverged nor rose, definition (b) of C4/C5" if few_shot else "not diverged")
                    + f"; holds if (i) on at least {G2_SEED_SHARE:.0%} of the grid's seeds, in the grid columns on "
                      "both sides of the recommended alpha, its beta is at or below the largest stable beta below "
                      "the column's first unstable one (between that beta and the first unstable one, a bracket the "
                      "grid did not measure, its own run in (ii) decides), (ii) the recommended cell trained with the "
                      "grid's settings "
                      "(same seed, iterations, evaluation) is stable, and (iii) its final loss is at most "
                      f"{G2_LOSS_FACTOR:g}x the lowest final loss of the grid's stable cells (on the report's seed)"
                    + (f", and its held-out accuracy at most {G2_ACCURACY_GAP:g} below the best held-out accuracy "
                       "of those cells" if few_shot else "") + "; fails otherwise",
            "rests_on": read["rests_on"]}
    unjudged = _without_a_cell(read, "suggest recommended no cell",
                               "none trained on every stream with a stable rung above it")
    if unjudged:
        return {**base, **unjudged}
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
               f"{read['where']}: {_placement_text(read)}); its own run: {own}, final loss {read['loss']:.3g}"
               + (f" vs the grid's best {best.final_loss:.3g} at alpha={best.alpha:g}, beta={best.beta:g} (ratio "
                  f"{ratio:.3g})" if best is not None else "") + accuracy_text)
    why = (f"alpha={alpha:.3g}, beta={beta:.3g}: stable on {inside_seeds}/{len(read['inside_per_seed'])} seeds, own "
           f"run {own}, loss {ratio:.3g}x the grid's best" + (accuracy_text.replace("; ", ", ") if few_shot else ""))
    return {**base, "verdict": verdict, "why": why, "summary": summary, "measured": measured}


def both_cells(ids, results: Results) -> list[dict]:
    """G1 and G2 of every problem suggest ran on, each against that problem's grid (``ids``: "{problem}" left to
    fill)."""
    grids = {SINUSOID: results.paths.get("sinusoid_grid"), **{d: results.path(d) for d in results.few_shot()}}
    return [judge(cid.format(problem=problem), problem, grids[problem], suggestion, check)
            for problem, (suggestion, check) in results.path("guideline").items()
            for cid, judge in zip(ids, (guideline_cell_is_good, recommended_cell_is_good))]


def cells_inside_the_exact_region(cid: str, table: pd.DataFrame, prov: dict) -> dict:
    """G-exact: on linear regression, whose stable region is known exactly, do suggest's two cells (and the rung
    above each, its margin) lie inside it, for every data draw, MAML order and number of inner steps?"""
    sec = prov["config"]["guideline_exact"]
    t = table.assign(ratio=table.beta / table.exact_bound, margin_ratio=table.margin_beta / table.exact_bound)
    found = t[t.alpha.notna()]
    outside, margin_out = found[~(found.ratio < 1)], found[(found.ratio < 1) & ~(found.margin_ratio < 1)]
    missing = t[t.alpha.isna()]
    runs = t[["seed", "order", "inner_steps"]].drop_duplicates()
    verdict = "fails" if len(outside) or len(missing) else "inconclusive" if len(margin_out) else "holds"
    first = lambda rows: (f"; e.g. draw {rows.seed.iloc[0]}, {rows.order.iloc[0]} order, N = "
                          f"{rows.inner_steps.iloc[0]}, {rows.cell.iloc[0]}: alpha {rows.alpha.iloc[0]:.3g}, beta "
                          f"{rows.beta.iloc[0]:.3g}, margin {rows.margin_beta.iloc[0]:.3g} vs the exact bound "
                          f"{rows.exact_bound.iloc[0]:.3g}") if len(rows) else ""
    why = (f"{int((found.ratio < 1).sum())}/{len(t)} cells inside the exact stable region, "
           f"{int(((found.ratio < 1) & (found.margin_ratio < 1)).sum())} with their margin rung too"
           + (f"; {len(missing)} cells missing" if len(missing) else "") + (first(outside) or first(margin_out)))
    per = lambda name: found[found.cell == name]
    listed = lambda column: ", ".join(str(v) for v in sorted(runs[column].unique()))
    summary = (f"{len(runs)} runs of suggest (draws {listed('seed')}; orders {listed('order')}; inner steps "
               f"{listed('inner_steps')}); beta / exact bound: recommended "
               f"{spread(per('recommended').ratio)}, guideline {spread(per('guideline').ratio)}; margin rung / exact "
               f"bound: recommended {spread(per('recommended').margin_ratio)}, guideline "
               f"{spread(per('guideline').margin_ratio)}"
               + (f"; the spectral radius of the cells' iterations {spread(found.rho)} (inside converges; a radius "
                  "near 1 all but stands still)" if "rho" in found else "") + "; " + why)
    return {"id": cid, "short": "linear regression: suggest's two cells lie inside the exact stable region",
            "claim": "the guideline tool (maml-convergence suggest) held to an exact answer: on linear regression, "
                     "whose stable region theory gives exactly, its recommended and guideline cells lie inside that "
                     "region with a beta rung to spare, for both MAML orders and 1 and 2 inner steps",
            "verdict": verdict, "why": why, "summary": summary,
            "measured": {"runs": len(runs), "cells": len(t), "inside": int((found.ratio < 1).sum()),
                         "inside_with_margin": int(((found.ratio < 1) & (found.margin_ratio < 1)).sum()),
                         "missing": len(missing), "rows": t.to_dict("records")},
            "rule": "every cell suggest returns (recommended and guideline) on every data draw, MAML order and number "
                    "of inner steps: holds if each cell and its margin rung (the next beta rung up, x sqrt(10), which "
                    "the probe found stable) lie below the exact bound theory.exact_beta_bound at its alpha (the "
                    "Hessian in closed form from the draw's points), so that it converges with a rung to spare; "
                    "fails if a cell lies at or above the bound or suggest returned no cell; else (a margin rung at or "
                    "above the bound, every cell below it) inconclusive",
            "rests_on": _exact_note(len(runs), sec, prov)}


def _exact_note(runs: int, sec: dict, prov: dict) -> str:
    """What G-exact rests on; says LESS where its runs or probes are smaller than config/config.yaml's."""
    paper = paper_scale()["guideline_exact"]
    note = (f"{runs} runs of suggest, {sec['iterations']} iterations x {sec['streams']} task streams per probe cell "
            f"(budget {sec['budget_seconds']:g} s a run), {prov['device']}")
    if runs < paper["runs"] or sec["iterations"] < paper["iterations"] or sec["streams"] < paper["streams"]:
        note += (f" (LESS than config/config.yaml's {paper['runs']} runs, {paper['iterations']} iterations x "
                 f"{paper['streams']} streams)")
    return note


def exact_region(ids, results: Results) -> list[dict]:
    path = results.path("guideline_exact")
    return [cells_inside_the_exact_region(ids[0], results.table(path), results.provenance(path))]
