"""Reference MAML with ``higher`` (Grefenstette et al.), the design card's named backend.

Deliberately plain: one cell, one task at a time, a stateful module and
``torch.optim`` optimisers, as most public MAML code is written. Tests hold the
torch.func engine to these meta-gradients; the benchmark measures the engine against it.
"""

from __future__ import annotations

import copy

import higher
import torch

from .maml import loss_fn
from .tasks import Batch


def meta_gradient(model: torch.nn.Module, params: dict, batch: Batch, alpha: float, inner_steps: int = 1,
                  order: str = "second") -> tuple[dict, torch.Tensor]:
    """(meta-gradient, meta-loss) at ``params``, computed by unrolling with higher."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(params[name])
    names = [n for n, _ in model.named_parameters()]
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    inner_opt = torch.optim.SGD(model.parameters(), lr=alpha)
    n_tasks = batch.xs.shape[0]
    meta = 0.0
    for t in range(n_tasks):
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False,
                                  track_higher_grads=(order == "second")) as (fmodel, diffopt):
            for _ in range(inner_steps):
                diffopt.step(loss_fn(fmodel(batch.xs[t]), batch.ys[t]))
            query = loss_fn(fmodel(batch.xq[t]), batch.yq[t])
            # second order: back to the initial weights through the unrolled steps;
            # first order: the gradient at the adapted weights, which higher has detached.
            wrt = list(model.parameters()) if order == "second" else list(fmodel.parameters())
            grads = torch.autograd.grad(query, wrt)
        for n, g in zip(names, grads):
            total[n] += g / n_tasks
        meta += query.item() / n_tasks
    return total, torch.tensor(meta, dtype=torch.float64)


def train_cell(model: torch.nn.Module, params: dict, stream, alpha: float, beta: float, iterations: int,
               inner_steps: int = 1, order: str = "second") -> tuple[dict, list[float]]:
    """Plain SGD meta-training of one cell; ``stream(i)`` returns the batch of iteration i."""
    params = {k: v.detach().clone() for k, v in params.items()}
    losses = []
    for i in range(iterations):
        grads, loss = meta_gradient(model, params, stream(i), alpha, inner_steps, order)
        params = {k: v - beta * grads[k] for k, v in params.items()}
        losses.append(float(loss))
    return params, losses
