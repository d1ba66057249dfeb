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

The package, bottom up: ``ladder`` (the tool's defaults, the half-decade rungs), ``protocol`` (step 1),
``run`` (what one call's phases share, and its resume file), ``probe`` (steps 2 to 5) and ``report``
(the ``Suggestion``, with the MAML Hessian at its answer); ``suggest`` here runs them in order.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

import torch

from ..task_sources import tasks_from
from .ladder import (ALPHA_RUNGS, ALPHA_SAFETY, BELOW_BEST, BETA_RUNGS, BUDGET_SECONDS, CELLS, EXTEND, ITERATIONS,
                     LANCZOS, MAML_HESSIAN_COST, RULES, RUNG, STABLE, STREAMS, _fmt)
from .ladder import _rung, _rung_value  # noqa: F401  (the tests read the probe's insides as guideline.<name>)
from .probe import _curvature, _guideline_alpha, _guideline_cell, _Probe, _search_ladder, unseparated
from .protocol import ProbeSettings, _check_arguments, _protocol
from .protocol import _checked_sampler  # noqa: F401  (likewise)
from .report import ASSUMPTIONS, NoRecommendation, Suggestion, _report
from .run import _Checkpoint, _Run

# What ``guideline.py`` exported before it became this package: the tool, its report, its settings and
# defaults, and ``tasks_from`` (a user's task source as a sampler).
__all__ = ["suggest", "Suggestion", "NoRecommendation", "ProbeSettings", "ASSUMPTIONS", "unseparated", "tasks_from",
           "ALPHA_RUNGS", "ALPHA_SAFETY", "BELOW_BEST", "BETA_RUNGS", "BUDGET_SECONDS", "CELLS", "EXTEND",
           "ITERATIONS", "LANCZOS", "MAML_HESSIAN_COST", "RULES", "RUNG", "STABLE", "STREAMS"]


def suggest(model: torch.nn.Module, sample_tasks: Callable, *, loss="auto", inner_steps: int = 1,
            order: str = "second", budget_seconds: float = BUDGET_SECONDS, device=None, seed: int = 0,
            iterations: int = ITERATIONS, streams: int = STREAMS, rule: str = "recommended", checkpoint=None,
            verbose: bool = True) -> Suggestion:
    """The probe on ``model`` and its tasks, and the cell it recommends: see the package's docstring.
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
    setup = _protocol(model, sample_tasks, loss=loss, device=device, inner_steps=inner_steps, order=order,
                      iterations=iterations, streams=streams, seed=seed, say=say)
    resume = _Checkpoint(checkpoint, setup.fingerprint(), started=started)
    run = _Run(setup=setup, resume=resume, say=say, verbose=verbose, rule=rule, budget_seconds=budget_seconds,
               started=started - resume.file.earlier_seconds)  # the budget counts earlier parts too
    eig, curvature_seconds = _curvature(run)
    # The probe's rounds end in time for the MAML Hessian at the answer: its Hessian-vector products, through
    # the inner steps, took about twice the loss Hessian's on Omniglot and more on small batches.
    run.budget_end = run.started + budget_seconds - (MAML_HESSIAN_COST * curvature_seconds if order == "second"
                                                     else 0.0)
    probe = _Probe(run)
    beta_start = _search_ladder(probe, eig)
    trained = sorted(a for a, c in probe.columns.items() if c.trained and a > 0)
    edge = trained[-1] if trained else None
    alpha = _guideline_alpha(probe, trained=trained, edge=edge, beta_start=beta_start)
    recommended = probe.recommend(beta_start)
    if recommended is None:
        run.notes.append("no cell trained on every stream with a stable beta rung above it: no recommended cell")
    else:
        run.notes += unseparated(probe.candidates(), streams)
    guide = _guideline_cell(probe, alpha, edge=edge)
    if probe.out_of_time:
        run.notes.append(f"the time budget ({budget_seconds:g} s) cut the probe short: some cells were not trained; "
                         f"a larger --budget-seconds gives the full probe")
    result = _report(run, probe, eig, recommended=recommended, guide=guide, edge=edge)
    say(f"recommended: alpha {_fmt(recommended and recommended['alpha'])}, beta "
        f"{_fmt(recommended and recommended['beta'])}; the paper's guideline: alpha {_fmt(guide and guide['alpha'])}, "
        f"beta {_fmt(guide and guide['beta'])} (edge alpha {_fmt(edge)}); answer ({rule}): alpha "
        f"{_fmt(result.alpha)}, beta {_fmt(result.beta)} in {result.seconds:.0f} s")
    return result
