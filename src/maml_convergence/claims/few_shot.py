"""Few-shot classification (Omniglot, MiniImagenet): the edge claims under three definitions of a stable
cell, whether the best cell lies near the edge, and both at the paper's scale.
"""

from __future__ import annotations

import math

import pandas as pd

from .. import problems
from ..problems import FEW_SHOT, OMNIGLOT, PROBLEMS
from ..stability import (CHANCE_P, DEFINITIONS, DIVERGED_MULTIPLE, RISE, TRAINED_DROP, accuracy_measured,
                         few_shot_outcomes, few_shot_stability, learned)
from .edge import edge_ratios, edge_rule, edge_text, edge_verdict
from .results import Results, provenance_of
from .verdicts import at_paper_scale, per_seed, scale_note


EDGE_CLAIM = {p.name: f"{p.title}: near the divergence edge of alpha, a larger beta trains than at alpha = 0 "
                      f"(Fig. {p.figure.removeprefix('fig')})" for p in PROBLEMS if p.name in FEW_SHOT}
# Until 2026-12 a cell 'trained' when its loss fell 10 % from its start, whether or not it beat chance; the rows
# judged by that definition too, so that the verdict it gave stays visible beside the current one.
PREVIOUS = "previous"
PREVIOUS_DEFINITION = ("'trained' = a 10 % drop of the loss alone, every cell judged whether or not it beat chance "
                       "(until 2026-12; docs/results.md says why it changed)")


def learned_text(section: dict, grid: pd.DataFrame) -> str:
    column, n = accuracy_measured(grid, section)
    return (f"learned = {column.replace('_', ' ')} above chance 1/{section['n_way']} with p < {CHANCE_P:g} (one-sided "
            f"binomial test on its {n} predictions) and final loss below ln {section['n_way']}")


def definitions_text(section: dict, grid: pd.DataFrame) -> str:
    n_way = section["n_way"]
    return (f"(a) not diverged: unstable if diverged or its final loss > {DIVERGED_MULTIPLE:g} ln {n_way}; (b) not "
            f"unstable: also unstable if its loss ended > {RISE:.0%} above its start; (c) trained: stable only if "
            f"its loss ended >= {TRAINED_DROP:.0%} below its start (start and end on the same fixed task batch) "
            f"and it learned; {learned_text(section, grid)}")


def few_shot_rests_on(dataset: str, grid: pd.DataFrame, prov: dict) -> str:
    note = scale_note(dataset, grid, prov["iterations"]) + f", {prov['device']}"
    if not at_paper_scale(dataset, grid, prov["iterations"]):
        note += (f"; the paper-scale grid: `snakemake --cores all results/{dataset}/grid.csv` "
                 "(with `--profile profiles/slurm` or `profiles/local-gpu`)")
    return note


def _too_few_learned(grid: pd.DataFrame, section: dict) -> str:
    column, _ = accuracy_measured(grid, section)
    alive = grid[(grid.status == "ok") & (grid.alpha > 0)]
    best = alive[column].max() if column in alive and alive[column].notna().any() else float("nan")
    return (f"too few cells learned at this scale (best {column.replace('_', ' ')} {best:.3f} vs chance "
            f"{1 / section['n_way']:.3f})")


def _learned_cells(grid: pd.DataFrame, section: dict) -> set[tuple[float, float]]:
    """The (alpha, beta) of the cells with alpha > 0 that learned (stability.learned)."""
    mask = learned(grid, section) & (grid.alpha > 0)
    return set(zip(grid.alpha[mask], grid.beta[mask]))


def _with_previous(row: dict, previous: dict) -> dict:
    return {**row, "previous": {"definition": PREVIOUS_DEFINITION, "verdict": previous["verdict"],
                                "why": previous["why"]}}


def _over_seeds(grid_path, dataset: str, judge, definition: str, again) -> dict:
    """A few-shot claim judged on each seed of its grid on its own, then over the seeds (``verdicts.per_seed``);
    with the verdict of the previous definition beside it (``again(PREVIOUS)``)."""
    prov = provenance_of(grid_path)
    raw, section = pd.read_csv(grid_path), prov["config"][dataset]
    row = per_seed("seed", raw, lambda seed, grid: judge(grid, section, prov), few_shot_rests_on(dataset, raw, prov))
    return row if definition == PREVIOUS else _with_previous(row, again(PREVIOUS))


def larger_beta_near_the_edge(cid: str, dataset: str, grid_path, near_edge_factor: float,
                              definition: str = "learned") -> dict:
    """C4/C5 under each of the three definitions of a stable cell (stability.DEFINITIONS), per seed of the grid: a
    verdict that rests on a near-edge cell that did not learn is inconclusive; the row also gives the verdict of
    the previous definition."""
    return _over_seeds(grid_path, dataset,
                       lambda raw, section, prov: _edge_row(cid, dataset, raw, section, prov, near_edge_factor,
                                                            definition), definition,
                       lambda d: larger_beta_near_the_edge(cid, dataset, grid_path, near_edge_factor, d))


def _at_chance(edge: dict, learned_cells: set) -> tuple[float, float] | None:
    """The first near-edge cell (alpha > 0) that the verdict against alpha = 0 rests on and that did not learn."""
    readings = edge["baselines"].get("alpha=0", {})
    chosen = [(r["alpha"], r["beta"]) for k, r in readings.items() if k != "verdict" and math.isfinite(r["beta"])]
    return next((c for c in chosen if c not in learned_cells), None)


def _edge_row(cid: str, dataset: str, raw: pd.DataFrame, section: dict, prov: dict, near_edge_factor: float,
              definition: str) -> dict:
    per_def = {d: edge_ratios(few_shot_stability(raw, section, d, definition), near_edge_factor)
               for d in DEFINITIONS}
    verdicts = {d: edge_verdict(e) for d, e in per_def.items()}
    learned_cells = _learned_cells(raw, section)
    at_chance = {}
    if definition != PREVIOUS:
        for d, e in per_def.items():
            cell = _at_chance(e, learned_cells)
            if cell is not None and verdicts[d] != "inconclusive":
                verdicts[d], at_chance[d] = "inconclusive", cell
    agree = len(set(verdicts.values())) == 1
    claim = EDGE_CLAIM[dataset]
    chance_text = lambda d: (f" (its near-edge cell alpha={at_chance[d][0]:g}, beta={at_chance[d][1]:g} did not "
                             "learn)" if d in at_chance else "")
    summary = "; ".join(f"({d}) {DEFINITIONS[d][0]}: {verdicts[d]}{chance_text(d)} vs alpha = 0 "
                        f"({edge_text(e, 'alpha=0')}), {edge_verdict(e, 'smallest alpha')} vs the smallest alpha"
                        for d, e in per_def.items())
    readings = ", ".join(f"({d}) {v}" for d, v in verdicts.items())
    why = (f"vs alpha = 0 by the three definitions of stable: {readings}" + ("" if agree else "; they disagree")
           + (f"; near-edge cells at chance in {', '.join(f'({d})' for d in at_chance)}" if at_chance else ""))
    none_learned = definition != PREVIOUS and not learned_cells
    if none_learned:
        why = summary = f"inconclusive: {_too_few_learned(raw, section)}"
    return {"id": cid, "claim": claim, "verdict": "inconclusive" if none_learned or not agree else verdicts["a"],
            "short": f"{claim.split(':')[0]}: near the alpha edge a larger beta trains than at alpha = 0",
            "why": why,
            "summary": summary + ("" if agree or none_learned else
                                  "; the verdict DEPENDS ON THE DEFINITION of a stable cell"),
            "measured": {"definitions": {d: {"verdict": verdicts[d], **e} for d, e in per_def.items()},
                         "cells_learned": len(learned_cells), "cells": int((raw.alpha > 0).sum())},
            "rule": edge_rule(definitions_text(section, raw), near_edge_factor)
                    + "; judged under each definition, the claim's verdict if all three agree, else inconclusive; "
                      "under a definition, a verdict resting on a near-edge cell (alpha > 0) that did not learn is "
                      "inconclusive (alpha = 0, joint training, scores chance by construction and is judged on its "
                      "stability alone); inconclusive too when no cell with alpha > 0 learned",
            "rests_on": few_shot_rests_on(dataset, raw, prov)}


def best_cell_near_the_edge(cid: str, dataset: str, grid_path, near_edge_factor: float,
                            definition: str = "learned") -> dict:
    """The paper's guideline itself: is the best cell near the largest alpha that trains? Per seed of the grid; a
    best cell that did not learn makes it inconclusive; the row also gives the verdict of the previous
    definition."""
    return _over_seeds(grid_path, dataset,
                       lambda raw, section, prov: _best_row(cid, dataset, raw, section, prov, near_edge_factor,
                                                            definition), definition,
                       lambda d: best_cell_near_the_edge(cid, dataset, grid_path, near_edge_factor, d))


def _best_row(cid: str, dataset: str, raw: pd.DataFrame, section: dict, prov: dict, near_edge_factor: float,
              definition: str) -> dict:
    outcome = few_shot_outcomes(raw, section, definition)
    accuracy, _ = accuracy_measured(raw, section)
    name = problems.get(dataset).title
    base = {"id": cid, "short": f"{name}: the best cell lies near the largest alpha that trains",
            "claim": f"{name}: the guideline (first the largest "
                     "alpha that trains, then beta): the best cell, by training loss and by accuracy, lies near that "
                     "alpha",
            "rule": f"edge = largest alpha > 0 where some beta trains ((c) above: {learned_text(section, raw)}); "
                    f"near = alpha in [edge/{near_edge_factor:g}, edge]; best = lowest final training loss, and "
                    f"highest {accuracy.replace('_', ' ')}, over the cells that did not diverge ((a)); holds if both "
                    "best cells are near the edge, fails if neither is, else inconclusive; inconclusive too when a "
                    "best cell did not learn (too few cells learned at this scale) or no cell with alpha > 0 trained",
            "rests_on": few_shot_rests_on(dataset, raw, prov)}
    trains = raw[(outcome == "trained") & (raw.alpha > 0)]
    alive = raw[outcome != "diverged"]
    learned_cells = _learned_cells(raw, section)
    if definition != PREVIOUS and not learned_cells:
        because = f"inconclusive: {_too_few_learned(raw, section)}"
        return {**base, "verdict": "inconclusive", "why": because, "summary": because, "measured": {}}
    if not len(trains) or not len(alive) or alive.get(accuracy, pd.Series(dtype=float)).isna().all():
        because = "no cell with alpha > 0 trained" + ("" if definition == PREVIOUS else
                                                      f" (fell {TRAINED_DROP:.0%} below its start and learned)")
        return {**base, "verdict": "inconclusive", "why": because, "summary": because, "measured": {}}
    edge = trains.alpha.max()
    near = lambda a: edge / near_edge_factor <= a <= edge
    best = {"loss": alive.loc[alive.final_loss.idxmin()], "accuracy": alive.loc[alive[accuracy].idxmax()]}
    flags = [near(b.alpha) for b in best.values()]
    verdict = "holds" if all(flags) else "fails" if not any(flags) else "inconclusive"
    text = lambda b: (f"alpha={b.alpha:g}, beta={b.beta:g} (loss {b.final_loss:.3g}, "
                      f"{accuracy.replace('_', ' ')} {b[accuracy]:.3f})")
    why = (f"edge alpha {edge:g}; best by loss at alpha {best['loss'].alpha:g}, by accuracy at alpha "
           f"{best['accuracy'].alpha:g}; near = within {near_edge_factor:g}x below the edge")
    unlearned = [k for k, b in best.items() if definition != PREVIOUS and (b.alpha, b.beta) not in learned_cells]
    if unlearned:
        verdict, b = "inconclusive", best[unlearned[0]]
        why = (f"inconclusive: the best cell by {unlearned[0]} (alpha={b.alpha:g}, beta={b.beta:g}: "
               f"{accuracy.replace('_', ' ')} {b[accuracy]:.3f}, loss {b.final_loss:.3g}) did not learn: too few cells "
               "learned at this scale")
    return {**base, "verdict": verdict, "why": why,
            "summary": f"edge alpha {edge:g}; best by loss {text(best['loss'])}; best by accuracy "
                       f"{text(best['accuracy'])}" + (f"; did not learn: best by {', '.join(unlearned)}"
                                                       if unlearned else ""),
            "measured": {"alpha_edge": edge, "accuracy_column": accuracy, "cells_learned": len(learned_cells),
                         **{k: {"alpha": b.alpha, "beta": b.beta, "final_loss": b.final_loss,
                                "accuracy": b[accuracy], "near_edge": bool(near(b.alpha)),
                                "learned": (b.alpha, b.beta) in learned_cells} for k, b in best.items()}}}


def paper_scale_claims(ids: dict, grid_path, near_edge_factor: float) -> list[dict]:
    """Omniglot's edge claim and its best-cell claim on the paper-scale Fig. 4b (paper_grid.py), by their rules
    unchanged, once every chunk is in. Until then each row is 'pending', says how many chunks are in and quotes
    the reading of the same rules on the cells present (the chunks spread over the whole grid): a preliminary
    reading, never the verdict. ``ids``: each claim's id at the reduced scale -> its id here, in that order."""
    prov = provenance_of(grid_path)
    done, n = len(prov["chunks_done"]), prov["chunks"]
    (edge_id, paper_edge_id), (best_id, paper_best_id) = ids.items()
    judged = [larger_beta_near_the_edge(paper_edge_id, OMNIGLOT, grid_path, near_edge_factor),
              best_cell_near_the_edge(paper_best_id, OMNIGLOT, grid_path, near_edge_factor)] if done else [{}, {}]
    if done == n:
        rows = judged
    else:
        rows = [{"id": paper_edge_id, "claim": EDGE_CLAIM[OMNIGLOT],
                 "short": "Omniglot: near the alpha edge a larger beta trains than at alpha = 0",
                 "rule": f"{edge_id}'s"},
                {"id": paper_best_id, "claim": "Omniglot: the guideline's best cell lies near the largest "
                 "alpha that trains", "short": "Omniglot: the best cell lies near the largest alpha that trains",
                 "rule": f"{best_id}'s"}]
    out = []
    for row, reading in zip(rows, judged):
        row = {**row, "claim": f"At the paper's scale (Fig. 4b-paper): {row['claim']}",
               "short": f"{row['short']}, at the paper's scale"}
        if done < n:
            why = (f"preliminary, on {done} of {n} chunks spread over the grid: {reading['verdict']} ({reading['why']})"
                   if done else f"0 of {n} chunks of the paper-scale grid computed")  # short: the table's column
            row.update(verdict="pending", why=why,
                       summary=f"{done} of {n} chunks computed (maml-convergence paper-grid); judged once all are in"
                               + (f"; preliminary reading on the cells present: {reading['summary']}" if done else ""),
                       measured={"chunks_done": done, "chunks": n,
                                 **({"preliminary": {"verdict": reading["verdict"], **reading["measured"]}}
                                    if done else {})},
                       rule=f"{row['rule']} rule, unchanged, on the paper-scale grid once every chunk is in",
                       rests_on=f"{prov['cells']} of {prov['cells_in_grid']} cells ({done} of {n} chunks, computed on "
                                f"{prov['device']}): LESS than the paper-scale run of config/config.yaml")
        out.append(row)
    return out


def edge(ids: dict, results: Results) -> list[dict]:
    """``ids``: dataset -> id, for each few-shot grid given."""
    return [larger_beta_near_the_edge(ids[d], d, results.path(d), results.near_edge_factor)
            for d in results.few_shot()]


def best_cell(ids: dict, results: Results) -> list[dict]:
    return [best_cell_near_the_edge(ids[d], d, results.path(d), results.near_edge_factor) for d in results.few_shot()]


def paper_scale(ids: dict, results: Results) -> list[dict]:
    return paper_scale_claims(ids, results.path("omniglot_paper"), results.near_edge_factor)
