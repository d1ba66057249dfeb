"""Sharpness of the MAML objective, matrix-free, and a monitor that tracks it during training.

Gradient descent with step beta on an objective whose Hessian has top eigenvalue lambda_max is
stable near a point only while lambda_max < 2 / beta. For MAML the objective is
F(theta) = E_tasks L_q(theta - alpha grad L_s(theta)), so the bound that matters is on F's
Hessian, not on the loss Hessian H the paper reads it from: on a quadratic with the same data in
both steps, F's Hessian is (I - alpha H) H (I - alpha H), whose eigenvalues lambda (1 - alpha lambda)^2
give the exact second-order bound of ``theory.exact_beta_bound``. During training the sharpness
moves; Cohen et al. (2021) found full-batch gradient descent drives it up to 2 / beta and holds it
there ("the edge of stability"), where a fixed-Hessian picture no longer describes the run.

Only Hessian-vector products are formed (forward-over-reverse through the inner steps), and the
top eigenvalues come from Lanczos: memory grows with the parameters, not with their square.
The query pass is differentiated here more than once, so the meta-loss runs the model's plain
forward (``differentiated_once=False``, never its ``first_order_kwargs``). First-order MAML's
update is not the gradient of any objective, so it has no sharpness in this sense;
``theory.exact_beta_bound(alpha, eig, "first")`` is its bound on a quadratic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.func import vmap

from . import maml
from .curvature import _flat_task_fn, hvp, lanczos_top
from .tasks import Batch


def maml_objective(model, batch: Batch, alpha: float, inner_steps: int = 1, loss=maml.loss_fn):
    """F(params): the mean over the batch's tasks of the query loss after ``inner_steps`` inner steps."""
    return lambda params: maml.meta_loss(model, params, batch, alpha, inner_steps, differentiated_once=False,
                                         loss=loss)


def task_averaged_loss(model, batch: Batch, loss=maml.loss_fn):
    """L(params): the loss on every example of the batch's tasks (support and query), averaged over tasks."""
    def averaged(params):
        def one_task(xs, ys, xq, yq):
            return (maml.task_loss(model, params, xs, ys, loss) + maml.task_loss(model, params, xq, yq, loss)) / 2
        return vmap(one_task)(batch.xs, batch.ys, batch.xq, batch.yq).mean()
    return averaged


def top_hessian_eigenvalues(loss_of_params, params: dict[str, torch.Tensor], k: int = 1, iterations: int = 40,
                            seed: int = 0) -> list[float]:
    """The ``k`` largest Hessian eigenvalues of ``loss_of_params`` at ``params``, by Lanczos on
    Hessian-vector products (``iterations`` of them). ``loss_of_params`` may also be a list of
    (weight, function) pairs: the Hessian is then that of their weighted sum, one product each."""
    parts = loss_of_params if isinstance(loss_of_params, list) else [(1.0, loss_of_params)]
    params = {name: p.detach() for name, p in params.items()}
    flat = [(w, *_flat_task_fn(f, params)) for w, f in parts]
    theta = flat[0][2]

    def matvec(v):
        return sum(w * hvp(f, theta, v).detach() for w, f, _ in flat)

    return lanczos_top(matvec, theta.numel(), k, iterations, theta.dtype, seed)


def task_chunks(batch: Batch, task_chunk: int | None) -> list[tuple[float, Batch]]:
    """The batch cut into pieces of at most ``task_chunk`` tasks, each with its share of the tasks: a
    mean over tasks is the weighted sum of the pieces' means, and memory grows with one piece."""
    n = batch.xs.shape[0]
    size = n if task_chunk is None else max(1, task_chunk)
    return [(min(size, n - i) / n, Batch(*(t[i:i + size] for t in (batch.xs, batch.ys, batch.xq, batch.yq))))
            for i in range(0, n, size)]


def maml_sharpness(model, params, batch: Batch, alpha: float, inner_steps: int = 1, k: int = 1,
                   iterations: int = 40, seed: int = 0, task_chunk: int | None = None,
                   loss=maml.loss_fn) -> list[float]:
    """Top ``k`` eigenvalues of the MAML objective's Hessian at ``params`` on ``batch`` (``task_chunk``
    tasks at a time)."""
    return top_hessian_eigenvalues([(w, maml_objective(model, b, alpha, inner_steps, loss))
                                    for w, b in task_chunks(batch, task_chunk)], params, k, iterations, seed)


def loss_sharpness(model, params, batch: Batch, k: int = 1, iterations: int = 40, seed: int = 0,
                   task_chunk: int | None = None, loss=maml.loss_fn) -> list[float]:
    """Top ``k`` eigenvalues of the task-averaged loss Hessian (the paper's H) at ``params`` on ``batch``."""
    return top_hessian_eigenvalues([(w, task_averaged_loss(model, b, loss)) for w, b in task_chunks(batch, task_chunk)],
                                   params, k, iterations, seed)


@dataclass
class SharpnessMonitor:
    """Call it every training step with the current parameters and meta-batch; every ``every``
    steps it records the MAML objective's sharpness against 2 / beta.

        monitor = SharpnessMonitor(model, alpha=0.01, beta=0.1, every=100)
        for step in range(n):
            batch = sample(step)
            params = train_step(params, batch)
            monitor(step, params, batch)
        monitor.history[-1]  # {'step': ..., 'lambda_max': ..., 'two_over_beta': 20.0, 'ratio': ...}

    ``ratio`` = lambda_max / (2 / beta): near 1 the run sits at the edge of stability; above 1 a
    fixed-Hessian analysis predicts divergence from here.
    """

    model: torch.nn.Module
    alpha: float
    beta: float
    every: int = 100
    inner_steps: int = 1
    iterations: int = 20
    history: list[dict] = field(default_factory=list)

    def __post_init__(self):
        if not self.every >= 1 or not self.beta > 0:
            raise ValueError(f"SharpnessMonitor: every must be >= 1 and beta > 0, got every={self.every}, "
                             f"beta={self.beta}")

    def __call__(self, step: int, params, batch: Batch) -> float | None:
        if step % self.every:
            return None
        lam = maml_sharpness(self.model, params, batch, self.alpha, self.inner_steps, 1, self.iterations, seed=step)[0]
        self.history.append({"step": step, "lambda_max": lam, "two_over_beta": 2 / self.beta,
                             "ratio": lam * self.beta / 2})
        return lam

