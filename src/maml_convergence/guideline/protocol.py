"""Phase 1 of ``suggest``: the user's arguments, model and task sampler checked once, on the first
meta-batch, and what every probe cell then shares (``ProbeSettings``)."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.func import functional_call

from .. import maml, models
from ..stability import DIVERGED_MULTIPLE
from ..task_sources import tasks_from
from ..tasks import Batch, ProtocolError, SampledTasks
from .ladder import RULES


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


def _protocol(model, sample_tasks, *, loss, device, inner_steps: int, order: str, iterations: int, streams: int,
              seed: int, say) -> ProbeSettings:
    """Phase 1: the model and the sampler checked once, on the first meta-batch, and what the probe shares."""
    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    model, params = _functional_model(model, device)
    loss_fn = maml.resolve_loss(loss)
    tasks = _checked_sampler(sample_tasks)
    dtype = next(iter(params.values())).dtype
    first = tasks.sample(0, dtype=dtype, device=device)
    layout = _layout(model, device)
    classes = _check_model(model, params, first, loss_fn=loss_fn, inner_steps=inner_steps, order=order,
                           task_loop=layout["task_loop"])
    seconds = _time_meta_step(model, params, first, loss_fn=loss_fn, inner_steps=inner_steps, order=order,
                              task_loop=layout["task_loop"])
    say(f"{sum(p.numel() for p in params.values()):,} parameters, {first.xs.shape[0]} tasks per meta-batch, "
        + (f"classification ({classes} classes)" if classes else "regression")
        + f"; one meta-iteration {seconds:.3g} s on {device.type}")
    return ProbeSettings(
        model=model, params=params, tasks=tasks, first=first, evaluation=tasks.eval_batch(dtype, device),
        loss_fn=loss_fn, loss_name=loss if isinstance(loss, str) else getattr(loss, "__name__", "custom"),
        inner_steps=inner_steps, order=order, dtype=dtype, device=device, layout=layout, classes=classes,
        ceiling=DIVERGED_MULTIPLE * math.log(classes) if classes else math.inf, iterations=iterations,
        streams=streams, seed=seed, seconds_per_meta_iteration=seconds)


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


def _check_model(model, params, batch: Batch, *, loss_fn, inner_steps: int, order: str, task_loop: bool) -> int:
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


def _time_meta_step(model, params, batch: Batch, *, loss_fn, inner_steps: int, order: str, task_loop: bool) -> float:
    """Seconds of one meta-gradient on a whole meta-batch (``_check_model`` has run one on two tasks: the
    first call's one-time costs are paid)."""
    start = time.perf_counter()
    maml.meta_gradient(model, params, batch, 1e-3, inner_steps, order, task_loop, loss_fn)
    return time.perf_counter() - start
