"""Which inner rate alpha and meta rate beta to use for any PyTorch model: the cell of a short probe over
(alpha, beta) that trains best with a margin from instability, beside the paper's guideline (first the
largest alpha that trains, then tune beta there) and what the curvature at the starting point predicts.

    result = suggest(model, sample_tasks)
    result.alpha, result.beta        # the recommended cell (rule="paper": the guideline's cell)
    result.guideline                 # the paper's rule, measured by the same probe
    print(result.to_json())

``model`` is any ``nn.Module`` (its current parameters are the starting point); ``sample_tasks(i)``
returns the i-th meta-batch as a ``tasks.Batch`` or four tensors (xs, ys, xq, yq) with the task axis
first (a list of meta-batches works too; ``tasks_from`` turns a learn2learn TaskDataset, a
meta-dataloader or an (x, y) dataset into such a function: ``task_sources``). Every probe cell
trains on STREAMS task streams, disjoint ranges of the sampler's batches (stream s reads batches
s * 2^20 + 0, 1, 2, ...), and is measured on one fixed batch, ``sample_tasks(tasks.EVAL_STREAM)``. In order:

1. Protocol: the model and the sampler are checked once, on the first meta-batch; what breaks the
   protocol stops with one ``ProtocolError`` saying what was expected. Batch norms that normalise by
   the batch are run written out (``models.with_task_batch_norm``), exact to every order.
2. Curvature at the starting parameters, matrix-free (Lanczos on Hessian-vector products, never a
   dense Hessian): the top eigenvalues of the task-averaged loss Hessian H on the first meta-batch, so
   alpha_c = 1/lambda_max and the bounds of ``theory``; and, for second-order MAML, the top eigenvalue
   of the Hessian of the MAML objective itself at the answer's alpha.
3. Probe (with the grid runner): alpha on the half-decade ladder 10^(j/2) around alpha_c, and
   alpha = 0; in every alpha column beta starts at the half-decade nearest the plain gradient-descent
   bound 2/lambda_max and steps by sqrt(10) up while the cell is stable and down while it is not. The
   columns run together, one cell each per round. A cell's outcome on one stream (diverged, rose,
   trained, flat) follows ``stability``: start and end are its meta-loss on the fixed batch; stable =
   neither diverged nor rose (definition (b)); trained also means ending 10 % below the start of the
   model as given (alpha = 0), since a large inner step wrecks the start and a fall from there is no
   learning. Over the streams a cell takes its worst outcome: diverged or rose on any stream makes it
   unstable, trained means trained on every one. While the top alpha still trains, rungs are added
   above it. Every cell trains ``iterations`` meta-iterations (a setting, not the clock); the time
   budget only stops the probe early, and the report then says it was cut short (``cut_short``).
4. The recommended cell: among the ladder's cells that trained on every stream and whose next beta
   rung up in the same alpha column is stable on every stream too (the margin), the one with the lowest
   final meta-loss averaged over the streams. A column whose top stable cell has no stable rung below
   it trains that rung; the alpha ladder is extended downwards until it reaches BELOW_BEST rungs below
   the recommended alpha, so the report shows the loss no longer improving there.
5. The guideline's cell (the paper's rule, "first the largest alpha that trains, then tune beta"):
   edge = the largest alpha at which some beta trained; alpha = the largest alpha that trained at least
   ALPHA_SAFETY (one rung) below the edge; there, beta = the rung with the lowest final meta-loss among
   those with the recommended cell's margin. The two cells differ only in how alpha is chosen: the paper's
   way, or the lowest loss over every alpha.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.func import functional_call

from .. import maml, models, sharpness, theory
from ..checkpoint import Checkpoint
from ..grid import GridSpec, eval_batch, run_grid
from ..stability import DEFINITIONS, DIVERGED_MULTIPLE, outcomes
from ..task_sources import tasks_from  # noqa: F401  (guideline.tasks_from: a user's task source as a sampler)
from ..tasks import Batch, ProtocolError, SampledTasks

RUNG = math.sqrt(10)        # the probe's ladders step by half a decade
ALPHA_SAFETY = RUNG         # the guideline's alpha lies at least one rung below the edge
ALPHA_RUNGS = 3             # alpha ladder: alpha_c x 10^(j/2) for j in [-3, 3], rounded to half-decades
BETA_RUNGS = (-4, 6)        # a column's search may go this many rungs below / above its start
EXTEND = 3                  # at most this many rungs added above (below) the ladder while its top alpha trains
                            # (while the recommended alpha is too near its bottom)
BELOW_BEST = 2              # the ladder reaches at least this many rungs below the recommended alpha
STREAMS = 2                 # task streams every probe cell trains on
ITERATIONS = 100            # meta-iterations per probe cell: on a small model, 5 recommend cells that end at twice
                            # the best loss, 25-50 sometimes one that diverges later, 100 none that does
                            # (benchmarks/probe_length.py); an expensive model passes fewer (the Omniglot probe: 5)
BUDGET_SECONDS = 600.0      # what stops a probe early unless told otherwise
RULES = ("recommended", "paper")  # which cell suggest answers with
CELLS = ("recommended", "guideline")  # the two cells a report holds (rule "paper" answers with "guideline")
LANCZOS = 20                # Hessian-vector products per top-eigenvalue estimate
MAML_HESSIAN_COST = 3.0     # the MAML Hessian's Lanczos against the loss Hessian's, in time (measured ~2-3x)
STABLE = DEFINITIONS["b"][1]

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


@dataclass(frozen=True)
class ProbeSettings:
    """What every probe cell shares: the model as given, its tasks, and how a cell trains and is measured."""

    model: torch.nn.Module
    params: dict                # the starting parameters (the model's own)
    tasks: SampledTasks
    first: Batch                # the first meta-batch: the protocol checks and the curvature read it
    evaluation: Batch           # the fixed batch every cell's start and end are measured on
    loss_fn: Callable
    loss_name: str
    inner_steps: int
    order: str
    dtype: torch.dtype
    device: torch.device
    layout: dict                # slots, task_loop, task_chunk (``_layout``)
    classes: int                # 0: regression
    ceiling: float              # a loss above it counts as diverged (cross-entropy: a multiple of log(classes))
    iterations: int
    streams: int
    seed: int
    seconds_per_meta_iteration: float

    def fingerprint(self) -> str:
        """Identifies a probe's inputs: the starting parameters, the first meta-batch and the settings."""
        settings = {"inner_steps": self.inner_steps, "order": self.order, "seed": self.seed,
                    "iterations": self.iterations, "streams": self.streams,
                    "loss": getattr(self.loss_fn, "__qualname__", self.loss_name), "device": self.device.type,
                    "dtype": self.dtype}
        h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
        for t in [*self.params.values(), self.first.xs, self.first.ys, self.first.xq, self.first.yq]:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


def suggest(model: torch.nn.Module, sample_tasks: Callable, *, loss="auto", inner_steps: int = 1,
            order: str = "second", budget_seconds: float = BUDGET_SECONDS, device=None, seed: int = 0,
            iterations: int = ITERATIONS, streams: int = STREAMS, rule: str = "recommended", checkpoint=None,
            verbose: bool = True) -> Suggestion:
    """The probe on ``model`` and its tasks, and the cell it recommends: see the module's docstring.
    ``loss``: "auto" (cross-entropy for integer labels, else mean squared error), "cross_entropy", "mse" or
    a function (prediction, target) -> scalar. ``seed`` fixes the Lanczos start vectors; the starting
    parameters are the model's own and the tasks the sampler's. ``iterations``: meta-iterations per probe
    cell; ``streams``: task streams per cell. The same model, sampler, seed and settings give the same report
    on a CPU, unless the budget cuts the probe short (``cut_short``). ``rule``: "recommended" answers with the
    cell that trains best with a margin, "paper" with the paper's guideline. ``checkpoint``: a file written
    after every round; a run interrupted (Ctrl-C, kill -9) and started again with the same arguments resumes
    from it and ends with the report an uninterrupted run gives."""
    started = time.monotonic()
    say = (lambda text: print(f"[suggest] {text}", file=sys.stderr, flush=True)) if verbose else (lambda text: None)
    _check_arguments(order=order, rule=rule, budget_seconds=budget_seconds, inner_steps=inner_steps,
                     iterations=iterations, streams=streams)
    setup = _protocol(model, sample_tasks, loss, device, inner_steps, order, iterations, streams, seed, say)
    resume = _Checkpoint(checkpoint, setup.fingerprint(), started)
    started -= resume.file.earlier_seconds  # the budget counts earlier parts too
    eig, curvature_seconds = _curvature(setup, resume, say, started)
    probe = _Probe(setup, resume, say, verbose)
    # The probe's rounds end in time for the MAML Hessian at the answer: its Hessian-vector products, through
    # the inner steps, took about twice the loss Hessian's on Omniglot and more on small batches.
    budget_end = started + budget_seconds - (MAML_HESSIAN_COST * curvature_seconds if order == "second" else 0.0)
    beta_start = _search_ladder(probe, eig, budget_end)
    notes = []
    trained = sorted(a for a, c in probe.columns.items() if c.trained and a > 0)
    edge = trained[-1] if trained else None
    alpha = _guideline_alpha(probe, trained, edge, beta_start, budget_end, notes)
    recommended = probe.recommend(beta_start, budget_end)
    if recommended is None:
        notes.append("no cell trained on every stream with a stable beta rung above it: no recommended cell")
    else:
        notes += unseparated(probe.candidates(), streams)
    guide = _guideline_cell(probe, alpha, edge, budget_end, notes)
    if probe.out_of_time:
        notes.append(f"the time budget ({budget_seconds:g} s) cut the probe short: some cells were not trained; a "
                     f"larger --budget-seconds gives the full probe")
    result = _report(setup, probe, eig, rule, recommended, guide, edge, budget_seconds, notes, say, started)
    say(f"recommended: alpha {_fmt(recommended and recommended['alpha'])}, beta "
        f"{_fmt(recommended and recommended['beta'])}; the paper's guideline: alpha {_fmt(guide and guide['alpha'])}, "
        f"beta {_fmt(guide and guide['beta'])} (edge alpha {_fmt(edge)}); answer ({rule}): alpha "
        f"{_fmt(result.alpha)}, beta {_fmt(result.beta)} in {result.seconds:.0f} s")
    return result


def _check_arguments(*, order, rule, budget_seconds, **counts) -> None:
    if order not in maml.ORDERS:
        raise ValueError(f"order must be one of {maml.ORDERS}, got {order!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if not (budget_seconds > 0 and math.isfinite(budget_seconds)):
        raise ValueError(f"budget_seconds must be a positive number, got {budget_seconds!r}")
    for name, value in counts.items():
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _protocol(model, sample_tasks, loss, device, inner_steps, order, iterations, streams, seed, say) -> ProbeSettings:
    """Phase 1: the model and the sampler checked once, on the first meta-batch, and what the probe shares."""
    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    model, params = _functional_model(model, device)
    loss_fn = maml.resolve_loss(loss)
    tasks = _checked_sampler(sample_tasks)
    dtype = next(iter(params.values())).dtype
    first = tasks.sample(0, dtype=dtype, device=device)
    layout = _layout(model, device)
    classes = _check_model(model, params, first, loss_fn, inner_steps, order, layout["task_loop"])
    seconds = _time_meta_step(model, params, first, inner_steps, order, layout["task_loop"], loss_fn)
    say(f"{sum(p.numel() for p in params.values()):,} parameters, {first.xs.shape[0]} tasks per meta-batch, "
        + (f"classification ({classes} classes)" if classes else "regression")
        + f"; one meta-iteration {seconds:.3g} s on {device.type}")
    return ProbeSettings(
        model=model, params=params, tasks=tasks, first=first, evaluation=eval_batch(tasks, dtype, device),
        loss_fn=loss_fn, loss_name=loss if isinstance(loss, str) else getattr(loss, "__name__", "custom"),
        inner_steps=inner_steps, order=order, dtype=dtype, device=device, layout=layout, classes=classes,
        ceiling=DIVERGED_MULTIPLE * math.log(classes) if classes else math.inf, iterations=iterations,
        streams=streams, seed=seed, seconds_per_meta_iteration=seconds)


def _curvature(setup: ProbeSettings, resume: "_Checkpoint", say, started: float) -> tuple[list[float], float]:
    """Phase 2: the loss Hessian's top eigenvalues at the start (or the checkpoint's), and the seconds they took."""
    eig, seconds = resume.state.get("eigenvalues"), resume.state.get("curvature_seconds", 0.0)
    if eig is None:
        lanczos_start = time.monotonic()
        eig = sharpness.loss_sharpness(setup.model, setup.params, setup.first, k=3, iterations=LANCZOS,
                                       seed=setup.seed, task_chunk=setup.layout["task_chunk"], loss=setup.loss_fn)
        seconds = time.monotonic() - lanczos_start
    say(f"curvature at the start: lambda_max {eig[0]:.4g}, alpha_c = 1/lambda_max {theory.paper_alpha_c(eig):.4g} "
        f"({time.monotonic() - started:.0f} s)")
    resume.save(eigenvalues=list(eig), curvature_seconds=seconds)
    return list(eig), seconds


def _search_ladder(probe: "_Probe", eig, budget_end: float) -> float:
    """Phase 3: every column of the alpha ladder (and alpha = 0) searched for its largest stable beta, rungs
    added above while the top alpha trains; the beta every column started from."""
    lam = eig[0]
    probe.say(f"probe: {probe.setup.iterations} meta-iterations per cell on {probe.setup.streams} task streams")
    beta_start = _half_decade(2 / lam) if lam > 0 else 1.0
    probe.search([0.0] + _ladder(theory.paper_alpha_c(eig)), beta_start, budget_end)
    extended = 0
    while extended < EXTEND and probe.columns[max(probe.columns)].trained and not probe.out_of_time:
        top = max(probe.columns)
        probe.search([_half_decade(top * RUNG)], probe.columns[top].last_stable_beta() or beta_start, budget_end)
        extended += 1
    return beta_start


def _report(setup: ProbeSettings, probe: "_Probe", eig, rule, recommended, guide, edge, budget_seconds, notes, say,
            started: float) -> Suggestion:
    """Phase 4's answer with what the curvature predicts there: the MAML Hessian at its alpha, the bounds."""
    answer = recommended if rule == "recommended" else guide
    alpha, beta = (answer["alpha"], answer["beta"]) if answer else (None, None)
    maml_lam = None
    if alpha is not None and setup.order == "second":
        maml_lam = sharpness.maml_sharpness(setup.model, setup.params, setup.first, alpha, setup.inner_steps, k=1,
                                            iterations=LANCZOS, seed=setup.seed, task_chunk=setup.layout["task_chunk"],
                                            loss=setup.loss_fn)[0]
        say(f"the MAML objective's Hessian at alpha = {alpha:.4g}: lambda_max {maml_lam:.4g} "
            f"({time.monotonic() - started:.0f} s)")
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
        settings={"budget_seconds": budget_seconds, "iterations": setup.iterations, "streams": setup.streams,
                  "inner_steps": setup.inner_steps, "order": setup.order, "loss": setup.loss_name,
                  "device": str(setup.device), "dtype": str(setup.dtype).replace("torch.", ""), "seed": setup.seed,
                  "parameters": sum(p.numel() for p in setup.params.values()), "tasks": int(setup.first.xs.shape[0]),
                  "classes": setup.classes, "rung": RUNG, "alpha_safety": ALPHA_SAFETY, "below_best": BELOW_BEST,
                  "seconds_per_meta_iteration": setup.seconds_per_meta_iteration, "slots": setup.layout["slots"],
                  "task_loop": setup.layout["task_loop"]},
        notes=notes, seconds=time.monotonic() - started)


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


class _Column:
    """The search for the largest stable beta at one alpha: rungs are beta = 10^(rung / 2)."""

    def __init__(self, alpha: float, start: int):
        self.alpha, self.next = alpha, start
        self.lo, self.hi = start + BETA_RUNGS[0], start + BETA_RUNGS[1]
        self.last_stable: int | None = None    # the largest stable rung below the first unstable one
        self.first_unstable: int | None = None
        self.trained = False
        self.rungs: dict[int, tuple[str, float]] = {}  # every rung trained: (outcome, mean final loss)

    def update(self, rung: int, outcome: str) -> None:
        stable = outcome in STABLE
        if stable and (self.first_unstable is None or rung < self.first_unstable):
            self.last_stable = rung if self.last_stable is None else max(self.last_stable, rung)
            self.trained |= outcome == "trained"
            step = rung + 1
        elif not stable:
            self.first_unstable = rung if self.first_unstable is None else min(self.first_unstable, rung)
            step = rung - 1
        else:
            step = None
        bracketed = lambda r: (self.last_stable is not None and r <= self.last_stable) or (
            self.first_unstable is not None and r >= self.first_unstable)
        self.next = step if step is not None and self.lo <= step <= self.hi and not bracketed(step) else None

    def with_margin(self) -> list[int]:
        """The rungs that trained and whose next rung up is stable: the recommended cell's candidates."""
        return [r for r, (o, _) in self.rungs.items() if o == "trained" and self.rungs.get(r + 1, ("",))[0] in STABLE]

    def last_stable_beta(self) -> float | None:
        return None if self.last_stable is None else _rung_value(self.last_stable)

    def record(self) -> dict:
        return {"alpha": self.alpha, "largest_stable_beta": self.last_stable_beta(),
                "first_unstable_beta": None if self.first_unstable is None else _rung_value(self.first_unstable),
                "trained": self.trained}


class _Probe:
    """Rounds of cells trained by the grid runner on every task stream, and what they say per alpha column."""

    def __init__(self, setup: ProbeSettings, resume: "_Checkpoint", say, verbose: bool):
        self.setup, self.resume, self.say, self.verbose = setup, resume, say, verbose
        self.columns: dict[float, _Column] = {}
        self.rows: list[dict] = []
        self.rounds, self.out_of_time = 0, False
        self.seconds_per_cell = resume.state.get("seconds_per_cell", math.inf)  # measured by each round
        self._start: dict[float, float] = {}

    def start_loss(self, alpha: float) -> float:
        """The meta-loss of the starting parameters on the fixed batch: what a cell's end is compared with."""
        if alpha not in self._start:
            with torch.no_grad():
                s = self.setup
                self._start[alpha] = float(maml.meta_loss(s.model, s.params, s.evaluation, alpha, s.inner_steps,
                                                          s.layout["task_loop"], loss=s.loss_fn))
        return self._start[alpha]

    def train(self, cells: list[tuple[float, float]], phase: str, budget_end: float):
        """Train ``cells`` for ``iterations`` each on every stream; their outcomes over the streams, or None
        if the budget has no room for them (the first round always runs: without it there is nothing to
        recommend from). The cost of a cell-iteration is what the last round took, training and evaluation
        together. Cells the checkpoint holds are read from it, not trained again."""
        s, trained = self.setup, self.resume.cells
        todo = [c for c in cells if c not in trained]
        runs = len(todo) * s.streams * s.iterations
        if todo and self.rounds and time.monotonic() + runs * self.seconds_per_cell > budget_end:
            self.out_of_time = True
            return None
        self.rounds += 1
        self.say(f"round {self.rounds} ({phase}): {len(todo)} cells x {s.streams} streams" +
                 (f" (and {len(cells) - len(todo)} from the checkpoint)" if len(todo) < len(cells) else ""))
        if todo:
            started = time.monotonic()
            spec = GridSpec(model=s.model, problem=s.tasks, alphas=[], betas=[], pairs=todo,
                            seeds=list(range(s.streams)), iterations=s.iterations, inner_steps=s.inner_steps,
                            order=s.order, optimizer="sgd", dtype=str(s.dtype).replace("torch.", ""),
                            device=str(s.device), slots=s.layout["slots"], task_loop=s.layout["task_loop"],
                            loss=s.loss_fn, init_params=s.params)
            for r in run_grid(spec, progress=self.verbose):
                per_stream = trained.setdefault((r["alpha"], r["beta"]), [None] * s.streams)
                per_stream[r["seed"]] = {k: r[k] for k in ("status", "final_loss", "diverged_at")}
            self.seconds_per_cell = (time.monotonic() - started) / runs
            self.resume.save(seconds_per_cell=self.seconds_per_cell)
        found = []
        for a, b in cells:
            streams = trained[(a, b)]
            start, end = self.start_loss(a), [r["final_loss"] for r in streams]
            each = outcomes([r["status"] for r in streams], [start] * len(streams), end, s.ceiling)
            # An inner step large enough to wreck the model starts a cell far above the model as given
            # (alpha = 0): falling from there is not training. Trained = also 10 % below the unadapted start.
            below_given = outcomes(["ok"] * len(streams), [self.start_loss(0.0)] * len(streams), end) == "trained"
            each = [str(o) for o in np.where((each == "trained") & ~below_given, "flat", each)]
            outcome = _worst(each)
            self.rows.append({"alpha": a, "beta": b, "phase": phase, "round": self.rounds, "outcome": outcome,
                              "stream_outcomes": each, "start_loss": start, "final_loss": float(np.mean(end)),
                              "final_losses": end, "diverged_at": [r["diverged_at"] for r in streams],
                              "iterations": s.iterations})
            column = self.columns.get(a)
            if column is not None and b == _rung_value(_rung(b)):
                column.rungs[_rung(b)] = (outcome, float(np.mean(end)))
            found.append(outcome)
        return found

    def search(self, alphas, beta_start: float, budget_end: float) -> None:
        """Find each alpha column's largest stable rung, the columns together."""
        for a in alphas:
            self.columns.setdefault(a, _Column(a, _rung(beta_start)))
        while True:
            active = [self.columns[a] for a in alphas if self.columns[a].next is not None]
            if not active:
                return
            cells = [(c.alpha, _rung_value(c.next)) for c in active]
            found = self.train(cells, "search", budget_end)
            if found is None:
                return
            for c, o in zip(active, found):
                c.update(c.next, o)

    def recommend(self, beta_start: float, budget_end: float) -> dict | None:
        """The recommended cell (the module's docstring, step 5), after training the margin rungs it needs and
        extending the alpha ladder downwards while the best cell lies fewer than BELOW_BEST rungs above its
        bottom; None if no cell has the margin."""
        for extended in range(EXTEND + 1):
            self.train_margins(budget_end)
            best = self.best()
            below = [a for a in self.columns if 0 < a < (best["alpha"] if best else math.inf)]
            if best is None or len(below) >= BELOW_BEST or extended == EXTEND or self.out_of_time:
                return best
            lowest = min(below + [best["alpha"]])
            self.search([_half_decade(lowest / RUNG)], self.columns[lowest].last_stable_beta() or beta_start,
                        budget_end)
        return None  # not reached: the last pass returns

    def train_margins(self, budget_end: float) -> None:
        """In each column (alpha > 0) whose top stable rung trained but that has no rung with the margin yet,
        train the rung below it."""
        cells = [(a, _rung_value(c.last_stable - 1)) for a, c in sorted(self.columns.items())
                 if a > 0 and c.last_stable is not None and c.rungs.get(c.last_stable, ("",))[0] == "trained"
                 and not c.with_margin() and c.last_stable - 1 not in c.rungs]
        if cells:
            self.train(cells, "margin", budget_end)

    def candidates(self) -> list[dict]:
        """Every cell with the margin (alpha > 0): alpha, beta and its final loss on each stream."""
        last = {(row["alpha"], row["beta"]): row["final_losses"] for row in self.rows}  # a cell's latest row
        return [{"alpha": a, "beta": _rung_value(r), "final_losses": last[(a, _rung_value(r))]}
                for a, c in self.columns.items() if a > 0 for r in c.with_margin()]

    def best(self, alpha: float | None = None) -> dict | None:
        """The cell with the margin and the lowest mean final loss, over every alpha > 0 or at ``alpha``."""
        candidates = [(c.rungs[r][1], a, r) for a, c in self.columns.items() if (a > 0 if alpha is None else a == alpha)
                      for r in c.with_margin()]
        if not candidates:
            return None
        loss, alpha, rung = min(candidates)
        row = next(r for r in reversed(self.rows) if r["alpha"] == alpha and r["beta"] == _rung_value(rung))
        return {"alpha": alpha, "beta": _rung_value(rung), "final_loss": loss, "final_losses": row["final_losses"],
                "outcome": row["outcome"], "margin_beta": _rung_value(rung + 1),
                "margin_outcome": self.columns[alpha].rungs[rung + 1][0]}


def unseparated(candidates: list[dict], streams: int) -> list[str]:
    """A note when the probe cannot tell its best cell from the runner-up: their mean final losses differ by
    less than either cell's spread over the task streams (max - min), so another task stream could swap them."""
    if len(candidates) < 2:
        return []
    best, runner = sorted(candidates, key=lambda c: (float(np.mean(c["final_losses"])), c["alpha"], c["beta"]))[:2]
    gap = float(np.mean(runner["final_losses"]) - np.mean(best["final_losses"]))
    spread = max(float(np.ptp(c["final_losses"])) for c in (best, runner))
    if gap >= spread:
        return []
    return [f"the probe could not separate its best cells: alpha {_fmt(best['alpha'])}, beta {_fmt(best['beta'])} and "
            f"alpha {_fmt(runner['alpha'])}, beta {_fmt(runner['beta'])} differ by {gap:.3g} in mean final loss, less "
            f"than their spread over the {streams} task streams ({spread:.3g}); more iterations (--iterations) or "
            "streams (--streams) would tell them apart"]


def _worst(each: list[str]) -> str:
    """A cell's outcome over its streams: unstable on any stream is unstable; trained only if trained on all."""
    for bad in ("diverged", "rose"):
        if bad in each:
            return bad
    return "trained" if all(o == "trained" for o in each) else "flat"


class _Checkpoint:
    """What an interrupted ``suggest`` had done: the curvature, the probe's iterations and every cell it
    trained, with the time spent; written after each round, read back when the model's parameters, the first
    meta-batch and the settings are the same (``checkpoint.Checkpoint``). The search is a function of the
    cells' outcomes, so a resumed run takes the same steps and ends with the same report."""

    def __init__(self, path, fingerprint: str, started: float):
        self.file = Checkpoint(path, fingerprint, "suggest", started)
        saved = self.file.load() or {"state": {}, "cells": {}}
        self.state, self.cells = saved["state"], saved["cells"]

    def save(self, **state) -> None:
        self.state.update(state)
        self.file.save({"state": self.state, "cells": self.cells})


def _guideline_cell(probe: _Probe, alpha: float | None, edge, budget_end, notes) -> dict | None:
    """The paper's rule (the module's docstring, step 5) at ``alpha`` (``_guideline_alpha``): the beta tuned there
    as the recommended cell's is, after training the rung its margin needs."""
    if alpha is None:
        notes.append("no cell of the probe trained: the paper's guideline has no cell")
        return None
    probe.train_margins(budget_end)
    cell = probe.best(alpha)
    beta_max = probe.columns[alpha].last_stable_beta()
    if cell is None:
        notes.append(f"no beta at the guideline's alpha = {alpha:.3g} trained with a stable rung above it: the "
                     "paper's guideline has no cell")
        return None
    return {"alpha": alpha, "beta": cell["beta"], "final_loss": cell["final_loss"], "outcome": cell["outcome"],
            "margin_beta": cell["margin_beta"], "beta_max": beta_max, "alpha_edge": edge}


def _guideline_alpha(probe: _Probe, trained, edge, beta_start, budget_end, notes) -> float | None:
    """The largest alpha that trained at least ALPHA_SAFETY below the edge (searched if the ladder has none)."""
    if edge is None:
        if 0.0 in probe.columns and probe.columns[0.0].trained:
            notes.append("no alpha > 0 trained in the probe; only joint training (alpha = 0) did")
            return 0.0
        return None
    below = [a for a in trained if a <= edge / ALPHA_SAFETY * (1 + 1e-9)]
    if below:
        return below[-1]
    lower = _half_decade(edge / RUNG)
    probe.search([lower], probe.columns[edge].last_stable_beta() or beta_start, budget_end)
    if probe.columns[lower].trained:
        return lower
    notes.append(f"no alpha one rung below the edge trained: the recommendation sits at the edge, alpha = {edge:.3g}")
    return edge


def _functional_model(model, device) -> tuple[torch.nn.Module, dict]:
    """A copy of ``model`` whose batch norms are written out, on ``device``, and its trainable parameters."""
    if not isinstance(model, torch.nn.Module):
        raise ProtocolError(f"model must be a torch.nn.Module (the network itself, not model.parameters() or a state "
                            f"dict); got {type(model).__name__}")
    model = models.with_task_batch_norm(model).to(device)
    params = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise ProtocolError("model has no trainable parameters (none with requires_grad=True)")
    bad = [k for k, v in params.items() if not v.is_floating_point()]
    if bad or len({v.dtype for v in params.values()}) > 1:
        raise ProtocolError(f"model's trainable parameters must share one floating-point dtype; found "
                            f"{sorted({str(v.dtype) for v in params.values()})}")
    return model, params


def _checked_sampler(sample_tasks) -> SampledTasks:
    if isinstance(sample_tasks, SampledTasks):
        return sample_tasks
    try:  # a sequence of meta-batches needs nothing more; other sources say what tasks_from needs
        return SampledTasks(tasks_from(sample_tasks))
    except ProtocolError as error:
        raise ProtocolError(f"sample_tasks: {error} (guideline.tasks_from turns a TaskDataset, a meta-dataloader or "
                            "an (x, y) dataset into a sampler)") from None


def _layout(model, device) -> dict:
    """How the probe runs on this device: a CNN on a CPU one cell at a time with its query passes task
    by task (as the image grids do), anything else vectorised over cells."""
    convolutional = any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())
    if device.type == "cpu" and convolutional:
        return {"slots": 1, "task_loop": True, "task_chunk": 4}
    return {"slots": 8 if device.type == "cpu" else 32, "task_loop": False,
            "task_chunk": 8 if convolutional else None}


def _check_model(model, params, batch: Batch, loss_fn, inner_steps, order, task_loop) -> int:
    """Run the model on the first meta-batch as the probe will; the number of classes (0: regression)."""
    x, y = batch.xs[0], batch.ys[0]
    try:
        with torch.no_grad():
            out = functional_call(model, params, (x,))
    except Exception as e:  # noqa: BLE001 - any failure of the user's forward is reported in one line
        raise ProtocolError(f"model(x) failed on one task's support inputs of shape {tuple(x.shape)}: "
                            f"{type(e).__name__}: {e}") from None
    if not isinstance(out, torch.Tensor):
        raise ProtocolError(f"model(x) must return one tensor of predictions; it returned {type(out).__name__}")
    classes = 0
    if not y.is_floating_point():
        if out.dim() != 2 or out.shape[0] != y.shape[0]:
            raise ProtocolError(f"with integer class labels of shape {tuple(y.shape)}, model(x) must return logits "
                                f"of shape ({y.shape[0]}, classes); it returned {tuple(out.shape)}")
        classes = out.shape[1]
        if int(y.min()) < 0 or int(y.max()) >= classes:
            raise ProtocolError(f"class labels must lie in [0, {classes}) for a model with {classes} outputs; the "
                                f"first task's lie in [{int(y.min())}, {int(y.max())}]")
    elif loss_fn is maml.loss_fn and out.shape != y.shape:
        raise ProtocolError(f"for regression, model(x) must return predictions shaped like the targets "
                            f"{tuple(y.shape)}; it returned {tuple(out.shape)}")
    two = Batch(*(t[:2] for t in (batch.xs, batch.ys, batch.xq, batch.yq)))
    try:
        _, value = maml.meta_gradient(model, params, two, 1e-3, inner_steps, order, task_loop, loss_fn)
    except Exception as e:  # noqa: BLE001
        raise ProtocolError(f"the MAML meta-gradient through the model failed under torch.func (grad through the "
                            f"inner steps, vmap over tasks): {type(e).__name__}: {e}. The model's forward must be a "
                            "pure function of its input and parameters: no in-place updates of buffers, no .item() "
                            "or Python branches on tensor values") from None
    if not torch.isfinite(value):
        raise ProtocolError(f"the meta-loss at the starting parameters is {float(value)}: the model or its data "
                            "give a non-finite loss before any training")
    return classes


def _time_meta_step(model, params, batch, inner_steps, order, task_loop, loss_fn) -> float:
    """Seconds of one meta-gradient on a whole meta-batch (``_check_model`` has run one on two tasks: the
    first call's one-time costs are paid)."""
    start = time.perf_counter()
    maml.meta_gradient(model, params, batch, 1e-3, inner_steps, order, task_loop, loss_fn)
    return time.perf_counter() - start


def _half_decade(value: float) -> float:
    return _rung_value(_rung(value))


def _rung(value: float) -> int:
    return int(round(2 * math.log10(value)))


def _rung_value(rung: int) -> float:
    """10^(rung/2), written as the decimal it is (1, 3.16..., 10): the same float whatever rounding led there."""
    return float(f"{10 ** (rung / 2):.12g}")


def _ladder(alpha_c: float) -> list[float]:
    center = _rung(alpha_c) if math.isfinite(alpha_c) and alpha_c > 0 else 0
    return [_rung_value(center + j) for j in range(-ALPHA_RUNGS, ALPHA_RUNGS + 1)]


def _fmt(value) -> str:
    return "none" if value is None else f"{value:.4g}"


def _json_safe(value):
    """NaN and infinity as null (JSON has neither); tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
