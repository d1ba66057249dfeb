"""Training curves: the task-gradient norm and inner products (Fig. 1), T g against H^2 (Fig. 5) and Fig. 2's
numbers.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from ..config import paper_scale
from .results import Results
from .verdicts import spread


def gradient_norm_grows(cid: str, table: pd.DataFrame) -> dict:
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
    return {"id": cid, "claim": f"the mean task-gradient norm grows under MAML (alpha={maml_alpha:g}) more than "
                                 f"under joint training (alpha={joint_alpha:g}) (Fig. 1)",
            "short": "MAML's task-gradient norm grows more than joint training's",
            "verdict": verdict,
            "why": f"||g|| MAML/joint at the end {spread(ratio)} over {seeds} seeds and both splits",
            "summary": summary, "measured": {"per_seed": per_seed},
            "rule": "holds if, for every seed and both splits, the end-of-training norm ratio MAML/joint > 1 and "
                    "MAML's norm grew by more than joint training's; fails if the median ratio < 1",
            "rests_on": note}


INNER_PRODUCT = ("the mean over the ordered pairs of distinct tasks i != j of a meta-batch of <grad L_i, grad L_j>, "
                 "each the gradient of one task's loss on its support set with respect to every parameter of the "
                 "network, at the meta-parameters theta (no inner step); on the meta-batch of that iteration "
                 "(train) and on one fixed batch of held-out tasks (heldout)")


def inner_products_grow(cid: str, table: pd.DataFrame) -> dict:
    """Fig. 1's second claim: 'the gradient norm becomes larger during training, as do the gradient inner
    products'. Judged on the task-gradient inner product under MAML against joint training."""
    maml_alpha, joint_alpha = table.alpha.max(), table.alpha.min()
    start, end = table.iteration.min(), table.iteration.max()
    per_seed = []
    for (seed, split), t in table.groupby(["seed", "split"]):
        inner = lambda a, it: float(t[(t.alpha == a) & (t.iteration == it)].grad_inner_product.iloc[0])
        per_seed.append({"seed": int(seed), "split": split, "maml_start": inner(maml_alpha, start),
                         "maml_end": inner(maml_alpha, end), "joint_start": inner(joint_alpha, start),
                         "joint_end": inner(joint_alpha, end)})
    ps = pd.DataFrame(per_seed)
    ps["maml_growth"], ps["joint_growth"] = ps.maml_end - ps.maml_start, ps.joint_end - ps.joint_start
    holds = bool(((ps.maml_growth > 0) & (ps.maml_growth > ps.joint_growth)).all())
    verdict = "holds" if holds else "fails" if ps.maml_growth.median() < 0 else "inconclusive"
    seeds, paper = table.seed.nunique(), paper_scale()["fig1"]
    note = f"{seeds} seeds x {int(end)} iterations"
    if seeds < paper["seeds"] or end < paper["iterations"]:
        note += f" (LESS than {paper['seeds']} seeds x {paper['iterations']} iterations)"
    summary = "; ".join(f"{split}: MAML {g.maml_start.median():.3g} at the start -> {g.maml_end.median():.3g} at the "
                        f"end (median over seeds; ends {g.maml_end.min():.3g} to {g.maml_end.max():.3g}), joint "
                        f"{g.joint_start.median():.3g} -> {g.joint_end.median():.3g}"
                        for split, g in ps.groupby("split"))
    return {"id": cid, "claim": f"the task-gradient inner products grow during training under MAML (alpha="
                                 f"{maml_alpha:g}), more than under joint training (alpha={joint_alpha:g}) (Fig. 1)",
            "short": "MAML's task-gradient inner products grow, more than joint training's",
            "verdict": verdict,
            "why": f"MAML's inner product, end minus start: {spread(ps.maml_growth)} over {seeds} seeds and both "
                   f"splits (joint training: {spread(ps.joint_growth)})",
            "summary": summary + f"; inner product = {INNER_PRODUCT}",
            "measured": {"per_seed": per_seed, "definition": INNER_PRODUCT},
            "rule": "holds if, for every seed and both splits, MAML's mean task-gradient inner product at the end "
                    "exceeds its value at the start and grew by more than joint training's; fails if the median over "
                    "seeds and splits of MAML's end minus start is negative; else inconclusive (inner product: "
                    f"{INNER_PRODUCT})",
            "rests_on": note}


TG_NEGLIGIBLE, TG_NOT = 0.1, 0.5  # C6: ratio of T g to H^2 (largest eigenvalue, Frobenius norm)


def tg_is_negligible(cid: str, curv: pd.DataFrame, cfg: dict) -> dict:
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
    return {"id": cid, "claim": "T g is negligible next to H^2 at the trained point: lambda_max(T g + H^2) ~ "
                                 "lambda_max(H^2) and ||T g||_F << ||H^2||_F (Fig. 5)",
            "short": "T g is negligible next to H^2 at the trained point",
            "verdict": verdict,
            "why": f"largest ratio T g / H^2 at the end {worst:.3g} (holds <= {TG_NEGLIGIBLE:g}, fails >= {TG_NOT:g})",
            "summary": "; ".join(
                f"{scope}: lambda_max(Tg)/lambda_max(H^2) = {r.eig_ratio:.3g}, ||Tg||F/||H^2||F = {r.fro_ratio:.3g} "
                f"at iteration {int(r.iteration)} (over training {over.loc[scope, ('eig_ratio', 'min')]:.3g}-"
                f"{over.loc[scope, ('eig_ratio', 'max')]:.3g} and {over.loc[scope, ('fro_ratio', 'min')]:.3g}-"
                f"{over.loc[scope, ('fro_ratio', 'max')]:.3g})" for scope, r in last.iterrows())
                       + f" (1 seed: the run of seed {cfg['seed']})",
            "measured": {"final": last.reset_index().to_dict("records"), "over_training": curv.to_dict("records")},
            "rule": f"at the last snapshot, for the batch loss and per task: holds if both ratios <= "
                    f"{TG_NEGLIGIBLE:g}, "
                    f"fails if either >= {TG_NOT:g}",
            "rests_on": note}


def fig2_numbers(curves: pd.DataFrame) -> dict:
    """What Fig. 2 shows, as numbers: beta_c at alpha = 0 for each eigenvalue, and the table's sha256
    (pure float64 arithmetic: the same bytes on any machine)."""
    at_zero = curves[curves.alpha == 0].set_index("lambda").beta_c
    return {"beta_c_at_alpha_0": {f"{lam:g}": float(b) for lam, b in at_zero.items()},
            "curves_sha256": hashlib.sha256(curves.to_csv(index=False).encode()).hexdigest()}


def gradient_norm(ids, results: Results) -> list[dict]:
    return [gradient_norm_grows(ids[0], results.table(results.path("fig1")))]


def inner_products(ids, results: Results) -> list[dict]:
    return [inner_products_grow(ids[0], results.table(results.path("fig1")))]


def tg_against_h2(ids, results: Results) -> list[dict]:
    path = results.path("fig5")
    return [tg_is_negligible(ids[0], results.table(path), results.provenance(path)["config"])]
