"""The MAML engine: pure functions over parameter dicts, built on torch.func.

Nothing here mutates a module: a model is only a recipe that ``functional_call``
runs with whatever parameters it is given. The meta-objective of one task is

    L_q(theta'),  theta' = theta - alpha * grad L_s(theta)   (inner_steps times),

and the meta-loss is its mean over the tasks of a batch (``vmap`` over tasks).
Second-order MAML differentiates through the inner steps; first-order MAML
evaluates grad L_q at theta' and treats theta' as a constant of theta.
Everything is written for one cell; ``grid`` vmaps it over (alpha, beta) cells. Every function
takes the per-task ``loss(prediction, target)``; the default, ``loss_fn``, is the paper's.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, grad_and_value, vmap

from .tasks import Batch

Params = dict[str, torch.Tensor]
ORDERS = ("second", "first")
OPTIMIZERS = ("sgd", "adam")


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).mean()


def loss_fn(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for integer class labels (few-shot classification), else mean squared error."""
    if not target.dtype.is_floating_point:
        return F.cross_entropy(pred, target)
    return mse(pred, target)


LOSSES = {"auto": loss_fn, "cross_entropy": F.cross_entropy, "mse": mse}


def resolve_loss(loss: str | Callable) -> Callable:
    """A loss function from a name of ``LOSSES`` or a function (prediction, target) -> scalar."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)} or a function (prediction, target) -> scalar, "
                         f"got {loss!r}")
    return LOSSES[loss]


def task_loss(model: torch.nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor,
              loss: Callable = loss_fn) -> torch.Tensor:
    return loss(functional_call(model, params, (x,)), y)


def query_loss(model: torch.nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor,
               differentiated_once: bool = True, loss: Callable = loss_fn) -> torch.Tensor:
    """One task's term of the meta-loss, at its adapted parameters.

    The meta-gradient differentiates this pass once and never through an inner step, so a
    model may run it with kernels whose first derivatives alone are right (its
    ``first_order_kwargs``: the CNNs' fused batch norm, 1.3-2x faster per meta-iteration).
    A caller that differentiates it twice (a Hessian of the meta-loss) passes
    ``differentiated_once=False`` and gets the plain forward.
    """
    kwargs = getattr(model, "first_order_kwargs", {}) if differentiated_once else {}
    return loss(functional_call(model, params, (x,), kwargs), y)


def adapt(model, params: Params, x, y, alpha, steps: int = 1, loss: Callable = loss_fn) -> Params:
    """``steps`` inner SGD steps with rate ``alpha`` on one task's support set."""
    for _ in range(steps):
        g = grad(lambda p: task_loss(model, p, x, y, loss))(params)
        params = {k: p - alpha * g[k] for k, p in params.items()}
    return params


def meta_loss(model, params: Params, batch: Batch, alpha, inner_steps: int = 1,
              task_loop: bool = False, differentiated_once: bool = True, loss: Callable = loss_fn) -> torch.Tensor:
    """Mean over tasks of the query loss after adaptation (the MAML objective).

    ``task_loop`` vmaps only the inner steps over tasks and scores the adapted
    parameters one task after the other: the same numbers, but on a CPU the large
    query passes of a CNN run faster as plain convolutions than as the grouped
    ones vmap turns them into (the small support passes gain from vmap).
    """
    if task_loop:
        adapted = vmap(lambda xs, ys: adapt(model, params, xs, ys, alpha, inner_steps, loss))(batch.xs, batch.ys)
        per_task = _unstack(adapted)
        losses = [query_loss(model, p, xq, yq, differentiated_once, loss)
                  for p, xq, yq in zip(per_task, batch.xq, batch.yq)]
        return sum(losses) / len(losses)

    def one_task(xs, ys, xq, yq):
        return query_loss(model, adapt(model, params, xs, ys, alpha, inner_steps, loss), xq, yq,
                          differentiated_once, loss)

    return vmap(one_task)(batch.xs, batch.ys, batch.xq, batch.yq).mean()


def query_accuracy(model, params: Params, batch: Batch, alpha, inner_steps: int = 1,
                   loss: Callable = loss_fn) -> torch.Tensor:
    """Mean over tasks of the share of query examples classified right after adaptation."""
    adapted = vmap(lambda xs, ys: adapt(model, params, xs, ys, alpha, inner_steps, loss))(batch.xs, batch.ys)
    hits = [(functional_call(model, p, (xq,)).argmax(-1) == yq).to(xq.dtype).mean()
            for p, xq, yq in zip(_unstack(adapted), batch.xq, batch.yq)]
    return torch.stack(hits).mean()


def _unstack(stacked: Params) -> list[Params]:
    # unbind, not [t] indexing: its backward is one stack, where T selects would
    # each scatter into a zero tensor of the full stacked size
    keys = list(stacked)
    return [dict(zip(keys, values)) for values in zip(*(stacked[k].unbind(0) for k in keys))]


def meta_gradient(model, params: Params, batch: Batch, alpha, inner_steps: int = 1, order: str = "second",
                  task_loop: bool = False, loss: Callable = loss_fn) -> tuple[Params, torch.Tensor]:
    """(gradient of the meta-update, meta-loss) at ``params``."""
    if order == "second":
        return grad_and_value(lambda p: meta_loss(model, p, batch, alpha, inner_steps, task_loop, loss=loss))(params)
    if order != "first":
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    adapted = vmap(lambda xs, ys: adapt(model, params, xs, ys, alpha, inner_steps, loss))(batch.xs, batch.ys)
    query_grad = grad_and_value(lambda p, xq, yq: query_loss(model, p, xq, yq, loss=loss))
    if task_loop:
        per_task = [query_grad(p, xq, yq) for p, xq, yq in zip(_unstack(adapted), batch.xq, batch.yq)]
        n = len(per_task)
        return {k: sum(g[k] for g, _ in per_task) / n for k in params}, sum(loss for _, loss in per_task) / n
    grads, losses = vmap(query_grad)(adapted, batch.xq, batch.yq)
    return {k: g.mean(0) for k, g in grads.items()}, losses.mean()


# Meta-optimisers, written functionally so that their state can be stacked over cells.

def init_optimizer_state(params: Params, optimizer: str) -> dict:
    if optimizer == "sgd":
        return {}
    if optimizer == "adam":
        zeros = {k: torch.zeros_like(v) for k, v in params.items()}
        return {"step": torch.zeros((), dtype=next(iter(params.values())).dtype,
                                    device=next(iter(params.values())).device),
                "m": zeros, "v": {k: z.clone() for k, z in zeros.items()}}
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")


def optimizer_update(params: Params, grads: Params, state: dict, lr, optimizer: str,
                     betas=(0.9, 0.999), eps: float = 1e-8) -> tuple[Params, dict]:
    if optimizer == "sgd":
        return {k: p - lr * grads[k] for k, p in params.items()}, state
    b1, b2 = betas
    step = state["step"] + 1
    m = {k: b1 * state["m"][k] + (1 - b1) * grads[k] for k in params}
    v = {k: b2 * state["v"][k] + (1 - b2) * grads[k] ** 2 for k in params}
    c1, c2 = 1 - b1 ** step, 1 - b2 ** step
    new = {k: p - lr * (m[k] / c1) / ((v[k] / c2).sqrt() + eps) for k, p in params.items()}
    return new, {"step": step, "m": m, "v": v}


def make_meta_step(model, inner_steps: int = 1, order: str = "second",
                   optimizer: str = "sgd", task_loop: bool = False, loss: Callable = loss_fn) -> Callable:
    """One meta-iteration of one cell: (params, state, batch, alpha, beta) -> (params, state, loss)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")

    def step(params, state, xs, ys, xq, yq, alpha, beta):
        grads, value = meta_gradient(model, params, Batch(xs, ys, xq, yq), alpha, inner_steps, order, task_loop, loss)
        params, state = optimizer_update(params, grads, state, beta, optimizer)
        return params, state, value

    return step
