"""Phases 2 and 3 of ``suggest`` and the two cells: the curvature at the start, the probe's search of
each alpha column for its largest stable beta, the recommended cell and the paper's guideline's."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from .. import maml, sharpness, theory
from ..grid import GridSpec, RunOptions, run_grid
from ..stability import outcomes
from .ladder import ALPHA_SAFETY, BELOW_BEST, BETA_RUNGS, EXTEND, LANCZOS, RUNG, STABLE, _fmt, _half_decade, \
    _ladder, _rung, _rung_value
from .run import _Run


def _curvature(run: _Run) -> tuple[list[float], float]:
    """Phase 2: the loss Hessian's top eigenvalues at the start (or the checkpoint's), and the seconds they took."""
    setup, resume = run.setup, run.resume
    eig, seconds = resume.state.get("eigenvalues"), resume.state.get("curvature_seconds", 0.0)
    if eig is None:
        lanczos_start = time.monotonic()
        eig = sharpness.loss_sharpness(setup.model, setup.params, setup.first, k=3, iterations=LANCZOS,
                                       seed=setup.seed, task_chunk=setup.layout["task_chunk"], loss=setup.loss_fn)
        seconds = time.monotonic() - lanczos_start
    run.say(f"curvature at the start: lambda_max {eig[0]:.4g}, alpha_c = 1/lambda_max "
            f"{theory.paper_alpha_c(eig):.4g} ({time.monotonic() - run.started:.0f} s)")
    resume.save(eigenvalues=list(eig), curvature_seconds=seconds)
    return list(eig), seconds


def _search_ladder(probe: _Probe, eig) -> float:
    """Phase 3: every column of the alpha ladder (and alpha = 0) searched for its largest stable beta, rungs
    added above while the top alpha trains; the beta every column started from."""
    lam = eig[0]
    setup = probe.run.setup
    probe.run.say(f"probe: {setup.iterations} meta-iterations per cell on {setup.streams} task streams")
    beta_start = _half_decade(2 / lam) if lam > 0 else 1.0
    probe.search([0.0] + _ladder(theory.paper_alpha_c(eig)), beta_start)
    extended = 0
    while extended < EXTEND and probe.columns[max(probe.columns)].trained and not probe.out_of_time:
        top = max(probe.columns)
        probe.search([_half_decade(top * RUNG)], probe.columns[top].last_stable_beta() or beta_start)
        extended += 1
    return beta_start


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

    def __init__(self, run: _Run):
        self.run = run
        self.columns: dict[float, _Column] = {}
        self.rows: list[dict] = []
        self.rounds, self.out_of_time = 0, False
        self.seconds_per_cell = run.resume.state.get("seconds_per_cell", math.inf)  # measured by each round
        self._start: dict[float, float] = {}

    def start_loss(self, alpha: float) -> float:
        """The meta-loss of the starting parameters on the fixed batch: what a cell's end is compared with."""
        if alpha not in self._start:
            with torch.no_grad():
                s = self.run.setup
                self._start[alpha] = float(maml.meta_loss(s.model, s.params, s.evaluation, alpha, s.inner_steps,
                                                          s.layout["task_loop"], loss=s.loss_fn))
        return self._start[alpha]

    def train(self, cells: list[tuple[float, float]], phase: str):
        """Train ``cells`` for ``iterations`` each on every stream; their outcomes over the streams, or None
        if the budget has no room for them (the first round always runs: without it there is nothing to
        recommend from). The cost of a cell-iteration is what the last round took, training and evaluation
        together. Cells the checkpoint holds are read from it, not trained again."""
        s, trained = self.run.setup, self.run.resume.cells
        todo = [c for c in cells if c not in trained]
        runs = len(todo) * s.streams * s.iterations
        if todo and self.rounds and time.monotonic() + runs * self.seconds_per_cell > self.run.budget_end:
            self.out_of_time = True
            return None
        self.rounds += 1
        self.run.say(f"round {self.rounds} ({phase}): {len(todo)} cells x {s.streams} streams" +
                 (f" (and {len(cells) - len(todo)} from the checkpoint)" if len(todo) < len(cells) else ""))
        if todo:
            started = time.monotonic()
            spec = GridSpec(model=s.model, problem=s.tasks, alphas=[], betas=[], pairs=todo,
                            seeds=list(range(s.streams)), iterations=s.iterations, inner_steps=s.inner_steps,
                            order=s.order, optimizer="sgd", dtype=str(s.dtype).replace("torch.", ""),
                            loss=s.loss_fn, init_params=s.params,
                            run=RunOptions(device=str(s.device), slots=s.layout["slots"],
                                           task_loop=s.layout["task_loop"]))
            for r in run_grid(spec, progress=self.run.verbose).rows:
                per_stream = trained.setdefault((r["alpha"], r["beta"]), [None] * s.streams)
                per_stream[r["seed"]] = {k: r[k] for k in ("status", "final_loss", "diverged_at")}
            self.seconds_per_cell = (time.monotonic() - started) / runs
            self.run.resume.save(seconds_per_cell=self.seconds_per_cell)
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

    def search(self, alphas, beta_start: float) -> None:
        """Find each alpha column's largest stable rung, the columns together."""
        for a in alphas:
            self.columns.setdefault(a, _Column(a, _rung(beta_start)))
        while True:
            active = [self.columns[a] for a in alphas if self.columns[a].next is not None]
            if not active:
                return
            cells = [(c.alpha, _rung_value(c.next)) for c in active]
            found = self.train(cells, "search")
            if found is None:
                return
            for c, o in zip(active, found):
                c.update(c.next, o)

    def recommend(self, beta_start: float) -> dict | None:
        """The recommended cell (the package's docstring, step 4), after training the margin rungs it needs and
        extending the alpha ladder downwards while the best cell lies fewer than BELOW_BEST rungs above its
        bottom; None if no cell has the margin."""
        for extended in range(EXTEND + 1):
            self.train_margins()
            best = self.best()
            below = [a for a in self.columns if 0 < a < (best["alpha"] if best else math.inf)]
            if best is None or len(below) >= BELOW_BEST or extended == EXTEND or self.out_of_time:
                return best
            lowest = min(below + [best["alpha"]])
            self.search([_half_decade(lowest / RUNG)], self.columns[lowest].last_stable_beta() or beta_start)
        return None  # not reached: the last pass returns

    def train_margins(self) -> None:
        """In each column (alpha > 0) whose top stable rung trained but that has no rung with the margin yet,
        train the rung below it."""
        cells = [(a, _rung_value(c.last_stable - 1)) for a, c in sorted(self.columns.items())
                 if a > 0 and c.last_stable is not None and c.rungs.get(c.last_stable, ("",))[0] == "trained"
                 and not c.with_margin() and c.last_stable - 1 not in c.rungs]
        if cells:
            self.train(cells, "margin")

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


def _guideline_cell(probe: _Probe, alpha: float | None, *, edge: float | None) -> dict | None:
    """The paper's rule (the package's docstring, step 5) at ``alpha`` (``_guideline_alpha``): the beta tuned there
    as the recommended cell's is, after training the rung its margin needs."""
    if alpha is None:
        probe.run.notes.append("no cell of the probe trained: the paper's guideline has no cell")
        return None
    probe.train_margins()
    cell = probe.best(alpha)
    beta_max = probe.columns[alpha].last_stable_beta()
    if cell is None:
        probe.run.notes.append(f"no beta at the guideline's alpha = {alpha:.3g} trained with a stable rung above "
                               "it: the paper's guideline has no cell")
        return None
    return {"alpha": alpha, "beta": cell["beta"], "final_loss": cell["final_loss"], "outcome": cell["outcome"],
            "margin_beta": cell["margin_beta"], "beta_max": beta_max, "alpha_edge": edge}


def _guideline_alpha(probe: _Probe, *, trained: list[float], edge: float | None, beta_start: float) -> float | None:
    """The largest alpha that trained at least ALPHA_SAFETY below the edge (searched if the ladder has none);
    ``trained``: the alphas > 0 whose column trained, ascending."""
    if edge is None:
        if 0.0 in probe.columns and probe.columns[0.0].trained:
            probe.run.notes.append("no alpha > 0 trained in the probe; only joint training (alpha = 0) did")
            return 0.0
        return None
    below = [a for a in trained if a <= edge / ALPHA_SAFETY * (1 + 1e-9)]
    if below:
        return below[-1]
    lower = _half_decade(edge / RUNG)
    probe.search([lower], probe.columns[edge].last_stable_beta() or beta_start)
    if probe.columns[lower].trained:
        return lower
    probe.run.notes.append(f"no alpha one rung below the edge trained: the recommendation sits at the edge, alpha = "
                           f"{edge:.3g}")
    return edge
