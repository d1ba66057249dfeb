"""What ``suggest`` answers with: the ``Suggestion``, built from the probe with what the curvature predicts
at its answer, and what each of its numbers assumes."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field

from .. import sharpness, theory
from .ladder import ALPHA_SAFETY, BELOW_BEST, LANCZOS, RUNG
from .probe import _Probe
from .run import _Run


class NoRecommendation(RuntimeError):
    """No cell of the probe trained, so there is nothing to recommend (the report says what was tried)."""


@dataclass
class Suggestion:
    """What ``suggest`` found: the answer, the two cells it chooses from, the curvature's predictions and the
    probe itself. ``cells`` in ``assumptions`` says what each cell means."""

    alpha: float | None               # the answer: the recommended cell, or with rule="paper" the guideline's
    beta: float | None
    rule: str                         # "recommended" or "paper"
    recommended: dict | None          # alpha, beta, final_loss (mean over streams), final_losses, outcome
    guideline: dict | None            # alpha, beta, final_loss, outcome, beta_max (the largest stable rung), alpha_edge
    alpha_c: float                    # 1 / lambda_max (the paper's)
    lambda_max: float                 # top eigenvalue of the task-averaged loss Hessian at the start
    beta_bound_paper: float           # at the answer's alpha; see ``assumptions``
    beta_bound_exact: float
    alpha_edge: float | None          # the largest alpha at which some beta trained in the probe
    eigenvalues: list[float]          # top eigenvalues of the loss Hessian
    alpha_c_exact: float              # theory.exact_alpha_c (inf for second-order MAML)
    maml_lambda_max: float | None     # top eigenvalue of the MAML objective's Hessian at the answer's alpha
    beta_bound_maml_hessian: float | None
    probe: list[dict]                 # every cell the probe trained: alpha, beta, phase, round, outcome, ...
    columns: list[dict]               # per alpha: largest stable beta, first unstable beta, trained
    cut_short: bool                   # the time budget stopped the probe before it was done
    assumptions: dict
    settings: dict
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        """The numbers the command line prints last."""
        keys = ("alpha", "beta", "rule", "recommended", "guideline", "alpha_c", "lambda_max", "beta_bound_paper",
                "beta_bound_exact", "beta_bound_maml_hessian", "alpha_edge", "cut_short", "seconds")
        out = {k: getattr(self, k) for k in keys}
        for cell in ("recommended", "guideline"):
            if out[cell] is not None:
                out[cell] = {k: v for k, v in out[cell].items() if k != "final_losses"}
        return _json_safe(out)

    def to_json(self) -> str:
        return json.dumps(_json_safe(asdict(self)), indent=1)


def _report(run: _Run, probe: _Probe, eig, *, recommended: dict | None, guide: dict | None,
            edge: float | None) -> Suggestion:
    """The answer (the recommended cell, or with rule "paper" the guideline's) with what the curvature predicts
    there: the MAML Hessian at its alpha, the bounds."""
    setup, rule = run.setup, run.rule
    answer = recommended if rule == "recommended" else guide
    alpha, beta = (answer["alpha"], answer["beta"]) if answer else (None, None)
    maml_lam = None
    if alpha is not None and setup.order == "second":
        maml_lam = sharpness.maml_sharpness(setup.model, setup.params, setup.first, alpha, setup.inner_steps, k=1,
                                            iterations=LANCZOS, seed=setup.seed, task_chunk=setup.layout["task_chunk"],
                                            loss=setup.loss_fn)[0]
        run.say(f"the MAML objective's Hessian at alpha = {alpha:.4g}: lambda_max {maml_lam:.4g} "
                f"({time.monotonic() - run.started:.0f} s)")
    at = alpha if alpha is not None else 0.0
    return Suggestion(
        alpha=alpha, beta=beta, rule=rule, recommended=recommended, guideline=guide,
        alpha_c=theory.paper_alpha_c(eig), lambda_max=eig[0],
        beta_bound_paper=float(theory.paper_beta_bound(at, eig)),
        beta_bound_exact=float(theory.exact_beta_bound(at, eig, setup.order)[0]),
        alpha_edge=edge, eigenvalues=list(eig), alpha_c_exact=theory.exact_alpha_c(eig, setup.order),
        maml_lambda_max=maml_lam, beta_bound_maml_hessian=2 / maml_lam if maml_lam and maml_lam > 0 else None,
        probe=probe.rows, columns=[probe.columns[a].record() for a in sorted(probe.columns)],
        cut_short=probe.out_of_time, assumptions=dict(ASSUMPTIONS),
        settings={"budget_seconds": run.budget_seconds, "iterations": setup.iterations, "streams": setup.streams,
                  "inner_steps": setup.inner_steps, "order": setup.order, "loss": setup.loss_name,
                  "device": str(setup.device), "dtype": str(setup.dtype).replace("torch.", ""), "seed": setup.seed,
                  "parameters": sum(p.numel() for p in setup.params.values()), "tasks": int(setup.first.xs.shape[0]),
                  "classes": setup.classes, "rung": RUNG, "alpha_safety": ALPHA_SAFETY, "below_best": BELOW_BEST,
                  "seconds_per_meta_iteration": setup.seconds_per_meta_iteration, "slots": setup.layout["slots"],
                  "task_loop": setup.layout["task_loop"]},
        notes=run.notes, seconds=time.monotonic() - run.started)


ASSUMPTIONS = {
    "cells": {
        "recommended": "the probe's cell with the lowest final meta-loss on the fixed evaluation batch, averaged over "
                       "the task streams, among the cells that trained on every stream and whose next beta rung up "
                       "(x sqrt(10)) in the same alpha column is stable on every stream: what trains best in the "
                       "probe with a margin from instability",
        "guideline": "the paper's rule: the largest alpha that trained at least one rung below the largest alpha at "
                     "which any beta trained (the edge), and there the beta tuned as the recommended cell's is: the "
                     "lowest final meta-loss among the rungs with a stable rung above them",
    },
    "alpha_c": "1/lambda_max of the task-averaged loss Hessian at the starting parameters, on the first meta-batch "
               "(the paper's eq. 11: a fixed Hessian; for second-order MAML on a quadratic no alpha_c exists, "
               "see alpha_c_exact)",
    "beta_bound_paper": "the paper's min_i 2/(lambda_i - alpha lambda_i^2) at the answer's alpha over the top "
                        "eigenvalues of that Hessian (fixed Hessian, T g dropped; exact for first-order MAML on a "
                        "quadratic; NaN past alpha_c)",
    "beta_bound_exact": "theory.exact_beta_bound at the answer's alpha: the exact one-step bound of a quadratic "
                        "with that Hessian and the same data in both steps, 2/(lambda (1 - alpha lambda)^2) (second "
                        "order) or 2/(lambda (1 - alpha lambda)) (first order), over the top eigenvalues",
    "beta_bound_maml_hessian": "2/lambda_max of the Hessian of the MAML objective itself at the starting parameters "
                               "and the answer's alpha (second order only): gradient descent on it is stable near "
                               "that point below this beta, with no fixed-Hessian or T g assumption; it says nothing "
                               "of how the Hessian moves during training",
    "probe": "every cell trains settings.iterations meta-iterations on settings.streams task streams; a longer run "
             "may diverge where a short one did not",
}


def _json_safe(value):
    """NaN and infinity as null (JSON has neither); tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
