"""Train a grid of (alpha, beta) cells at once.

A ``GridSpec`` says what a grid computes (its fingerprint identifies that) and, in its ``RunOptions``, how it is
run (device, slots, compile, task loop, convolution: none changes a number beyond float round-off).
``run_grid`` returns a ``GridResult``: the rows, whether the run stopped early, and what provenance records of it.

The cells of a grid differ only in their learning rates; they share the initial
parameters and the task stream. A fixed number of *slots* is trained in one
vmapped step (parameters stacked along a leading axis). When a cell finishes
or diverges it leaves its slot and the next pending cell takes it, so diverged
cells cost nothing and the batch keeps one shape (which ``torch.compile`` wants).

Divergence: a cell diverges at iteration t when its meta-loss at t is not finite
or exceeds ``blowup_factor`` times its loss at t = 0, or when the update would
make a parameter non-finite. The update is then not applied: the cell keeps its
last finite parameters, is retired, and is recorded as diverged. Slots never mix
(vmap keeps cells independent), so NaN cannot reach another cell.

Interrupting is safe: a checkpoint written every ``checkpoint_every`` seconds lets
a rerun resume where the last one stopped, with identical results.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch.func import vmap

from . import maml, models
from .checkpoint import Checkpoint
from .progress import progress_bar
from .tasks import Batch, TaskFamily, stack_batches



@dataclass(frozen=True)
class RunOptions:
    """How a grid is run: none of these changes a number beyond float round-off, so none is part of
    ``GridSpec.fingerprint()`` (a resume file written with other options still resumes)."""
    device: str = "cpu"
    slots: int = 64  # cells trained in one vmapped step
    compile: bool = False  # torch.compile the guarded meta-step
    # Run a cell's tasks one after the other (vmap only the inner steps): faster for CNNs on CPU.
    task_loop: bool = False
    # The CNNs' convolution (models.ConvNet): "native", "unfold", or "auto": on a GPU whichever
    # runs this grid's meta-step faster, timed at the start; on a CPU native. None: no CNN.
    conv: str | None = None


@dataclass(frozen=True)
class GridSpec:
    """What a grid computes (the model, the task distribution, the cells, the training) and, in ``run``, how it
    is run (``RunOptions``). Frozen: a variant of what is ``dataclasses.replace(spec, ...)``, of how
    ``spec.with_run(...)``."""
    model: str | torch.nn.Module  # a name of models.MODELS, or a module of one's own (guideline.suggest)
    problem: TaskFamily  # a task distribution (tasks.TaskFamily): the paper's families or SampledTasks
    alphas: list[float]
    betas: list[float]
    iterations: int
    inner_steps: int = 1
    order: str = "second"
    optimizer: str = "sgd"
    blowup_factor: float = 1e3
    init_seed: int = 0
    dtype: str = "float32"
    pairs: list[tuple[float, float]] | None = None  # explicit (alpha, beta) cells instead of the product
    # Independent repetitions in one run: each seed has its own task stream and initial
    # parameters (it replaces problem.seed and init_seed); cells become (alpha, beta, seed).
    seeds: list[int] | None = None
    # "engine": torch.func, cells vmapped in slots; "higher": the reference implementation
    # (higher_backend), one cell and one task at a time, to cross-check cells with plain code.
    backend: str = "engine"
    # The per-task loss: a name of maml.LOSSES ("auto": cross-entropy for class labels, else squared error)
    # or a function (prediction, target) -> scalar.
    loss: str | Callable = "auto"
    # The initial parameters of every cell, when they are not drawn from init_seed (a module of one's own).
    init_params: dict | None = None
    run: RunOptions = RunOptions()

    def with_run(self, **options) -> GridSpec:
        """The same grid run another way: ``options`` replace fields of ``RunOptions``."""
        return dataclasses.replace(self, run=dataclasses.replace(self.run, **options))

    def cells(self) -> list[tuple]:
        pairs = [tuple(p) for p in self.pairs] if self.pairs is not None else [
            (a, b) for a in self.alphas for b in self.betas]
        if self.seeds is None:
            return pairs
        return [(a, b, seed) for a, b in pairs for seed in self.seeds]

    def seed_problems(self) -> list:
        """(tasks, init_seed) per seed of the run: the task distribution with that seed, and the seed that draws
        that run's initial parameters."""
        if self.seeds is None:
            return [(self.problem, self.init_seed)]
        return [(dataclasses.replace(self.problem, seed=s), s) for s in self.seeds]

    def fingerprint(self) -> str:
        """Identifies the computation (``run``, how it is run, is left out: it does not change results' meaning).
        Only a grid of a named model, loss and initialisation has one (and so can resume)."""
        if not isinstance(self.model, str) or not isinstance(self.loss, str) or self.init_params is not None:
            raise ValueError("only a grid of a named model, a named loss and seeded initial parameters can be "
                             "checkpointed")
        d = asdict(self)
        for k, default in (("loss", "auto"), ("init_params", None)):  # absent from fingerprints made before them
            if d[k] == default:
                d.pop(k)
        d["problem"] = {"kind": type(self.problem).__name__, **asdict(self.problem)}
        d.pop("run")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class _Slots:
    """Mutable training state of the slots; every tensor has the slot axis first."""
    params: dict
    opt_state: dict
    alpha: torch.Tensor
    beta: torch.Tensor
    init_loss: torch.Tensor
    cell: list = field(default_factory=list)       # cell index per slot, -1 when idle
    iteration: list = field(default_factory=list)  # meta-iterations done per slot


def _stack(tree, n):
    if isinstance(tree, dict):
        return {k: _stack(v, n) for k, v in tree.items()}
    return tree.unsqueeze(0).repeat(n, *[1] * tree.dim()).contiguous()


def _set_slot(tree, s, value):
    if isinstance(tree, dict):
        for k in tree:
            _set_slot(tree[k], s, value[k])
    else:
        tree[s] = value


def _where(ok, new, old):
    if isinstance(new, dict):
        return {k: _where(ok, new[k], old[k]) for k in new}
    return torch.where(ok.view(-1, *[1] * (new.dim() - 1)), new, old)


def _all_finite(tree) -> torch.Tensor:
    flags = [torch.isfinite(v).flatten(1).all(1) for v in _leaves(tree)]
    return torch.stack(flags).all(0)


def _leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaves(v)
    else:
        yield tree


def _slot_params(slots, s) -> dict:
    """A CPU copy of slot ``s``'s parameters."""
    return {k: v[s].detach().cpu().clone() for k, v in slots.params.items()}


def _task_stream(spec: GridSpec, dtype, device):
    per_seed = [tasks for tasks, _ in spec.seed_problems()]
    return type(spec.problem).stream(per_seed, spec.iterations, dtype, device)


def _build(spec: GridSpec, conv: str | None = None) -> torch.nn.Module:
    return models.build(spec.model, conv=conv) if isinstance(spec.model, str) else spec.model


def _initial_params(spec: GridSpec, model, init_seed: int, dtype, device) -> dict:
    """The parameters every cell of one seed starts from."""
    if spec.init_params is not None:
        return {k: v.detach().to(device=device, dtype=dtype) for k, v in spec.init_params.items()}
    return {k: v.to(device) for k, v in models.initial_params(model, init_seed, dtype).items()}


def _over_slots(fn, n_slots: int):
    """vmap over the slot axis; with one slot, call ``fn`` on the slot directly (no batched tensors)."""
    if n_slots > 1:
        return vmap(fn)

    def single(*args):
        out = fn(*(_tree_map(lambda t: t[0], a) for a in args))
        return _tree_map(lambda t: t.unsqueeze(0), out)

    return single


def _tree_map(fn, tree):
    """``fn`` applied to every tensor of nested dicts, tuples and lists."""
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_tree_map(fn, v) for v in tree)
    return fn(tree)


@dataclass(frozen=True)
class GridResult:
    """What ``run_grid`` returns. ``rows``: one per cell, alpha-major (empty when ``stopped``); ``stopped``: the
    run stopped early (``max_steps``, ``deadline`` or ``on_pace``) after writing its checkpoint; ``resumed``: how
    many times it resumed from one; ``earlier_seconds``: the time of the interrupted parts it resumed from (0
    for a fresh run); ``conv``: the convolution a CNN ran (see ``RunOptions.conv``; None: no CNN)."""
    rows: list[dict]
    stopped: bool
    resumed: int
    earlier_seconds: float
    conv: str | None

    @property
    def run_info(self) -> dict:
        """What provenance records of the run: ``earlier_seconds``, ``resumed`` and, for a CNN, ``conv``."""
        return {"earlier_seconds": self.earlier_seconds, "resumed": self.resumed,
                **({"conv": self.conv} if self.conv is not None else {})}


def run_grid(spec: GridSpec, *, checkpoint: str | os.PathLike | None = None, checkpoint_every: float = 30.0,
             progress: bool = True, max_steps: int | None = None, deadline: float | None = None,
             keep_params: bool = False, snapshot_every: int | None = None,
             on_pace: Callable[[float], bool] | None = None) -> GridResult:
    """Train every cell of ``spec``; the result's rows hold one row per cell (alpha-major order).

    With ``max_steps`` the run stops early (after writing its checkpoint): the result is ``stopped``, with no
    rows; this is how tests simulate an interruption. ``deadline`` (a ``time.monotonic()`` value)
    stops it the same way once that time has passed: a resumed run still gives identical rows.
    ``keep_params`` adds each surviving cell's final parameters to its row (``final_params``);
    ``snapshot_every`` adds ``snapshots``,
    the parameters at every multiple of that many iterations (0 and the last included).
    ``on_pace`` is called once, after the first ``PACE_STEPS`` meta-iterations following the first (which warms
    up), with their cell-iterations per second; if it returns True the run stops there, as with ``deadline``.
    """
    run = _GridRun(spec)
    resume = Checkpoint(checkpoint, spec.fingerprint() if checkpoint is not None else None, "grid")
    slots = _Scheduler(run, resume.load())  # a fresh start, or where an interrupted run stopped

    def result(rows: list[dict], stopped: bool = False) -> GridResult:
        return GridResult(rows, stopped, resume.resumed, resume.earlier_seconds, run.conv)

    name = spec.model if isinstance(spec.model, str) else type(spec.model).__name__
    bar = progress_bar(total=len(run.cells) * spec.iterations, initial=slots.work_done(), disable=not progress,
                       unit="cell-it", desc=f"{name} {spec.order}-order grid", smoothing=0.05)
    last_save, steps, pace = time.monotonic(), 0, _Pace(on_pace)
    with _deferred_interrupts() as stop:
        while slots.busy():
            out_of_time = deadline is not None and time.monotonic() >= deadline
            if stop.requested or out_of_time or pace.stop or (max_steps is not None and steps >= max_steps):
                resume.save(slots.state())
                bar.close()
                if stop.requested:
                    raise KeyboardInterrupt(f"grid interrupted; resume file: {checkpoint}")
                return result([], stopped=True)
            work = run.step(slots, snapshot_every)
            bar.update(work)
            pace.observe(work)
            steps += 1
            if checkpoint is not None and time.monotonic() - last_save > checkpoint_every:
                resume.save(slots.state())
                last_save = time.monotonic()
    bar.close()

    _evaluate(spec, run.model, slots.done, run.dtype, run.device, run.n_slots, run.cell_seed)
    rows = [_public(slots.done[c], c, keep_params) for c in range(len(run.cells))]
    if snapshot_every:
        for c, row in enumerate(rows):
            row["snapshots"] = slots.snapshots.get(c, {})
    return result(rows)


PACE_STEPS = 3  # meta-iterations timed for run_grid's on_pace


class _Pace:
    """Times the meta-iterations after the first (which warms up) and reports their pace once."""

    def __init__(self, report: Callable[[float], bool] | None):
        self.report, self.steps, self.work, self.start, self.stop = report, 0, 0, None, False

    def observe(self, work: int) -> None:
        if self.report is None:
            return
        self.steps += 1
        if self.steps == 1:
            self.start = time.perf_counter()
            return
        self.work += work
        if self.steps == 1 + PACE_STEPS:
            self.stop = bool(self.report(self.work / max(time.perf_counter() - self.start, 1e-9)))
            self.report = None


class _GridRun:
    """What every meta-iteration of a grid uses: the model, each seed's initial parameters and task stream, the
    cells, and the meta-step vectorised over slots, guarded so that a diverging cell keeps its last finite
    parameters."""

    def __init__(self, spec: GridSpec):
        self.spec, self.dtype, self.device = spec, getattr(torch, spec.dtype), torch.device(spec.run.device)
        model = _build(spec).to(self.device)
        self.theta0 = [_initial_params(spec, model, init, self.dtype, self.device) for _, init in spec.seed_problems()]
        self.state0 = maml.init_optimizer_state(self.theta0[0], spec.optimizer)
        self.stream = _task_stream(spec, self.dtype, self.device)
        self.cells = spec.cells()
        seed_index = {seed: i for i, seed in enumerate(spec.seeds or [])}
        self.cell_seed = [seed_index[c[2]] if spec.seeds is not None else 0 for c in self.cells]
        self.n_slots = 1 if spec.backend == "higher" else max(1, min(spec.run.slots, len(self.cells)))
        self.conv = _choose_conv(spec, self.dtype, self.device, self.n_slots, self.theta0[0], self.state0,
                                 self.stream)
        self.model = _build(spec, self.conv).to(self.device) if self.conv is not None else model
        step = _over_slots(meta_step(spec, self.model, self.dtype), self.n_slots)

        def advance(params, opt_state, xs, ys, xq, yq, alpha, beta, init_loss, first):
            new_params, new_state, loss = step(params, opt_state, xs, ys, xq, yq, alpha, beta)
            ref = torch.where(first, loss, init_loss)
            ok = torch.isfinite(loss) & (loss <= spec.blowup_factor * ref) & _all_finite(new_params)
            return _where(ok, new_params, params), _where(ok, new_state, opt_state), loss, ok

        self.advance = torch.compile(advance, dynamic=False) if spec.run.compile else advance

    def step(self, sched: "_Scheduler", snapshot_every: int | None) -> int:
        """One meta-iteration of every busy slot; a cell that diverged or finished is retired and its slot
        refilled. Returns the cell-iterations it accounts for (a diverged cell's skipped ones included)."""
        spec, slots = self.spec, sched.slots
        if snapshot_every:
            for s, c in enumerate(slots.cell):
                if c >= 0 and slots.iteration[s] % snapshot_every == 0:
                    sched.snapshots.setdefault(c, {})[slots.iteration[s]] = _slot_params(slots, s)
        batch = self.stream.get([(self.cell_seed[c] if c >= 0 else 0, it)
                                 for c, it in zip(slots.cell, slots.iteration)])
        first = torch.tensor([it == 0 for it in slots.iteration], device=self.device)
        slots.params, slots.opt_state, loss, ok = self.advance(
            slots.params, slots.opt_state, batch.xs, batch.ys, batch.xq, batch.yq,
            slots.alpha, slots.beta, slots.init_loss, first)
        slots.init_loss = torch.where(first, loss, slots.init_loss)
        loss_cpu, ok_cpu, init_cpu = loss.double().cpu(), ok.cpu(), slots.init_loss.double().cpu()
        work = 0
        for s, c in enumerate(slots.cell):
            if c < 0:
                continue
            work += 1
            if not ok_cpu[s]:
                work += spec.iterations - slots.iteration[s] - 1  # its remaining work is skipped, not pending
                sched.retire(s, _row(self.cells[c], "diverged", slots.iteration[s], init_cpu[s], loss_cpu[s], None,
                                     slots.iteration[s]))
                continue
            slots.iteration[s] += 1
            if slots.iteration[s] == spec.iterations:
                final = _slot_params(slots, s)
                if snapshot_every:
                    sched.snapshots.setdefault(c, {})[spec.iterations] = final
                sched.retire(s, _row(self.cells[c], "ok", -1, init_cpu[s], loss_cpu[s], final, spec.iterations))
        return work


class _Scheduler:
    """Which cell each slot trains: a free slot takes the next pending cell, starting from its seed's initial
    parameters; a cell that finishes or diverges leaves its row in ``done``. Its state is what a checkpoint
    holds (``state()``; ``saved``: such a state, to resume from)."""

    def __init__(self, run: _GridRun, saved: dict | None):
        self.run = run
        n, dtype, device = run.n_slots, run.dtype, run.device
        if saved is not None:
            self.slots = _Slots(**saved["slots"])
            self.slots.params = {k: v.to(device) for k, v in self.slots.params.items()}
            self.slots.opt_state = _to(self.slots.opt_state, device)
            self.slots.alpha, self.slots.beta, self.slots.init_loss = (
                t.to(device) for t in (self.slots.alpha, self.slots.beta, self.slots.init_loss))
            self.pending, self.done, self.snapshots = saved["pending"], saved["done"], saved["snapshots"]
        else:
            self.slots = _Slots(params=_stack(run.theta0[0], n), opt_state=_stack(run.state0, n),
                                alpha=torch.zeros(n, dtype=dtype, device=device),
                                beta=torch.zeros(n, dtype=dtype, device=device),
                                init_loss=torch.ones(n, dtype=dtype, device=device),
                                cell=[-1] * n, iteration=[0] * n)
            self.pending, self.done, self.snapshots = 0, {}, {}
        for s in range(n):
            if self.slots.cell[s] == -1:
                self.fill(s)

    def fill(self, s: int) -> None:
        slots, run = self.slots, self.run
        if self.pending >= len(run.cells):
            slots.cell[s] = -1
            return
        a, b = run.cells[self.pending][:2]
        _set_slot(slots.params, s, run.theta0[run.cell_seed[self.pending]])
        _set_slot(slots.opt_state, s, run.state0)
        slots.alpha[s], slots.beta[s] = a, b
        slots.cell[s], slots.iteration[s] = self.pending, 0
        self.pending += 1

    def retire(self, s: int, row: dict) -> None:
        self.done[self.slots.cell[s]] = row
        self.fill(s)

    def busy(self) -> bool:
        return any(c >= 0 for c in self.slots.cell)

    def work_done(self) -> int:
        """Cell-iterations already done: finished cells count whole, busy slots their iterations."""
        return len(self.done) * self.run.spec.iterations + sum(
            it for c, it in zip(self.slots.cell, self.slots.iteration) if c >= 0)

    def state(self) -> dict:
        return _checkpoint_state(self.slots, self.pending, self.done, self.snapshots)


def _choose_conv(spec: GridSpec, dtype, device, n_slots: int, theta0, state0, stream) -> str | None:
    """The convolution this grid runs: the spec's, or for "auto" on a GPU the one whose meta-step
    over a full set of slots is faster (one warm-up and three timed steps each; both compute the
    same function, tests/test_images.py holds them together). On a CPU "auto" is "native"."""
    if spec.run.conv != "auto":
        return spec.run.conv
    if device.type != "cuda" or spec.backend != "engine":
        return "native"
    batch = stream.get([(0, 0)] * n_slots)
    params, state = _stack(theta0, n_slots), _stack(state0, n_slots)
    rates = torch.full((n_slots,), 0.1, dtype=dtype, device=device)
    seconds = {}
    for conv in models.ConvNet.CONVS:
        step = _over_slots(meta_step(spec, models.build(spec.model, conv=conv).to(device), dtype), n_slots)
        step(params, state, batch.xs, batch.ys, batch.xq, batch.yq, rates, rates)
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(3):
            step(params, state, batch.xs, batch.ys, batch.xq, batch.yq, rates, rates)
        torch.cuda.synchronize(device)
        seconds[conv] = (time.perf_counter() - start) / 3
    print("[grid] convolution per meta-step: " + ", ".join(f"{c} {s:.3f} s" for c, s in seconds.items()))
    return min(seconds, key=seconds.get)


def meta_step(spec: GridSpec, model, dtype):
    """One meta-iteration of one cell, (params, state, xs, ys, xq, yq, alpha, beta) -> (params, state, loss),
    by the engine or by the reference implementation; the meta-optimiser's update is the same."""
    if spec.backend == "engine":
        return maml.make_meta_step(model, spec.inner_steps, spec.order, spec.optimizer, spec.run.task_loop,
                                   maml.resolve_loss(spec.loss))
    if spec.backend != "higher":
        raise ValueError(f"backend must be 'engine' or 'higher', got {spec.backend!r}")
    if spec.loss != "auto":
        raise ValueError("the higher backend trains with the default loss only (loss='auto')")
    from . import higher_backend  # only here: machines without `higher` still run the engine

    model = copy.deepcopy(model).to(dtype)  # higher trains the module's own parameters: in the grid's dtype

    def step(params, state, xs, ys, xq, yq, alpha, beta):
        grads, loss = higher_backend.meta_gradient(model, params, Batch(xs, ys, xq, yq), float(alpha),
                                                   spec.inner_steps, spec.order)
        params, state = maml.optimizer_update(params, grads, state, beta, spec.optimizer)
        return params, state, loss.to(device=xs.device, dtype=dtype)

    return step


class _deferred_interrupts:
    """SIGINT/SIGTERM only set a flag, read between steps, so a checkpoint is never half-updated."""

    requested = False

    def __enter__(self):
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._request)
        return self

    def _request(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


def _row(cell, status, diverged_at, init_loss, last_loss, final_params, iterations_run):
    seed = {"seed": cell[2]} if len(cell) > 2 else {}
    return {"alpha": cell[0], "beta": cell[1], **seed, "status": status, "diverged_at": int(diverged_at),
            "initial_loss": float(init_loss), "last_loss": float(last_loss),
            "final_params": final_params, "iterations_run": int(iterations_run)}


def _public(row, c, keep_params):
    out = {"cell": c, **{k: v for k, v in row.items() if keep_params or k != "final_params"}}
    out.setdefault("final_loss", float("nan"))
    out.setdefault("final_plain_loss", float("nan"))
    return out


def _evaluate(spec: GridSpec, model, done: dict, dtype, device, chunk: int, cell_seed: list[int]) -> None:
    """Final meta-loss and plain loss of every surviving cell on one fixed batch of tasks (its seed's);
    for classification also the query accuracy after adaptation there and, when the problem has
    held-out tasks, the meta-loss and accuracy on a fixed batch of them."""
    per_seed = [tasks for tasks, _ in spec.seed_problems()]
    batches = [tasks.eval_batch(dtype, device) for tasks in per_seed]
    classify = not batches[0].yq.is_floating_point()  # class labels
    heldout = [tasks.heldout_batch(dtype, device) for tasks in per_seed]
    heldout = None if heldout[0] is None else heldout
    ok = [c for c, r in sorted(done.items()) if r["status"] == "ok"]
    loss = maml.resolve_loss(spec.loss)

    def scores(params, alpha, xs, ys, xq, yq):
        batch = Batch(xs, ys, xq, yq)
        meta = maml.meta_loss(model, params, batch, alpha, spec.inner_steps, spec.run.task_loop, loss=loss)
        plain = vmap(lambda x, y: maml.task_loss(model, params, x, y, loss))(xq, yq).mean()
        if not classify:
            return meta, plain
        return meta, plain, maml.query_accuracy(model, params, batch, alpha, spec.inner_steps, loss)

    def heldout_scores(params, alpha, xs, ys, xq, yq):
        batch = Batch(xs, ys, xq, yq)
        return (maml.meta_loss(model, params, batch, alpha, spec.inner_steps, spec.run.task_loop, loss=loss),
                maml.query_accuracy(model, params, batch, alpha, spec.inner_steps, loss))

    vscores, vheldout = _over_slots(scores, chunk), _over_slots(heldout_scores, chunk)
    for i in range(0, len(ok), chunk):
        ids = ok[i:i + chunk]
        params = {k: torch.stack([done[c]["final_params"][k] for c in ids]).to(device)
                  for k in done[ids[0]]["final_params"]}
        alpha = torch.tensor([done[c]["alpha"] for c in ids], dtype=dtype, device=device)
        data = stack_batches([batches[cell_seed[c]] for c in ids])
        out = [t.double().cpu() for t in vscores(params, alpha, data.xs, data.ys, data.xq, data.yq)]
        if heldout is not None:
            data = stack_batches([heldout[cell_seed[c]] for c in ids])
            out += [t.double().cpu() for t in vheldout(params, alpha, data.xs, data.ys, data.xq, data.yq)]
        for j, c in enumerate(ids):
            r = done[c]
            m = out[0][j].item()
            if not math.isfinite(m) or m > spec.blowup_factor * r["initial_loss"]:
                r.update(status="diverged", diverged_at=spec.iterations)
                continue
            r.update(final_loss=m, final_plain_loss=out[1][j].item())
            names = ("final_accuracy", "heldout_loss", "heldout_accuracy")[:len(out) - 2]
            r.update({name: out[2 + k][j].item() for k, name in enumerate(names)})


def _to(tree, device):
    return _tree_map(lambda t: t.to(device), tree)


def _checkpoint_state(slots: _Slots, pending, done, snapshots) -> dict:
    """What a resumed run needs: the slots (on the CPU), the next pending cell, the finished rows, snapshots."""
    cpu = _Slots(params=_to(slots.params, "cpu"), opt_state=_to(slots.opt_state, "cpu"),
                 alpha=slots.alpha.cpu(), beta=slots.beta.cpu(), init_loss=slots.init_loss.cpu(),
                 cell=list(slots.cell), iteration=list(slots.iteration))
    return {"slots": asdict(cpu), "pending": pending, "done": done, "snapshots": snapshots}
