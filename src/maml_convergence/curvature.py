"""Exact curvature of a loss at given parameters: Hessians and their spectra."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch.func import functional_call, grad, jacrev


def flat_hessian(loss_of_params, params: dict[str, torch.Tensor], chunk_size: int | None = 256) -> torch.Tensor:
    """Dense Hessian of ``loss_of_params`` w.r.t. all parameters, flattened in dict order.

    Reverse-over-reverse, ``chunk_size`` rows at a time: memory grows with the chunk, not
    with the number of parameters (a full ``hessian()`` of the 1,761-parameter MLP over a
    100-task batch needs several GB).
    """
    f, flat = _flat_fn(loss_of_params, params)
    return jacrev(grad(f), chunk_size=chunk_size)(flat)


def loss_hessian_eigenvalues(model, params, x, y) -> np.ndarray:
    """Ascending eigenvalues of the Hessian of the mean-squared error at ``params`` (float64)."""
    params = {k: v.detach().double() for k, v in params.items()}
    x, y = x.double(), y.double()
    model = copy.deepcopy(model).double()  # the caller's model keeps its dtype
    H = flat_hessian(lambda p: ((functional_call(model, p, (x,)) - y) ** 2).mean(), params)
    return torch.linalg.eigvalsh(H).cpu().numpy()


# --- Fig. 5: is T g negligible next to H^2? -------------------------------------------------
#
# The paper drops T g (third derivative contracted with the gradient) from the MAML Hessian
# H - alpha (T g + H^2). T g is the derivative of theta -> H(theta) g with g held fixed;
# it is symmetric because T is. Everything below works on flat parameter vectors.


def _flat_fn(loss_of_params, params):
    """(f, theta): ``loss_of_params`` as a function of one flat vector, and that vector at ``params``."""
    return _flat_task_fn(loss_of_params, params)


def hvp(f, theta, v):
    """H(theta) v, forward-over-reverse."""
    return torch.func.jvp(grad(f), (theta,), (v,))[1]


def tg_matvec(f, theta, g, v):
    """(T g) v = d/de H(theta + e v) g: the derivative of H(theta) g along v, g fixed."""
    return torch.func.jvp(lambda t: hvp(f, t, g), (theta,), (v,))[1]


def dense_tg(f, theta, g, chunk_size: int | None = 128) -> torch.Tensor:
    """T g as a dense matrix: the Jacobian of theta -> H(theta) g, g fixed."""
    return jacrev(lambda t: hvp(f, t, g), chunk_size=chunk_size)(theta)


def top_eigenvalues(matrix: torch.Tensor, k: int = 2) -> list[float]:
    # float64 whatever the input: MKL's float32 eigvalsh is 3x slower here, and less exact
    return torch.linalg.eigvalsh(matrix.double())[-k:].flip(0).tolist()


def lanczos_top(matvec, dim: int, k: int = 2, iterations: int = 80, dtype=torch.float64, seed: int = 0) -> list[float]:
    """Largest ``k`` eigenvalues of a symmetric operator from ``matvec`` alone (Lanczos with full
    reorthogonalisation; ``iterations`` matvecs). This is what scales to networks whose Hessian
    does not fit in memory."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(dim, generator=gen, dtype=dtype)
    Q = [q / q.norm()]
    alphas, betas = [], []
    for j in range(min(iterations, dim)):
        w = matvec(Q[-1])
        a = torch.dot(w, Q[-1])
        basis = torch.stack(Q)
        w = w - basis.T @ (basis @ w)  # full reorthogonalisation: twice is enough
        w = w - basis.T @ (basis @ w)
        alphas.append(a)
        b = w.norm()
        if b < 1e-12 * max(1.0, abs(float(a))) or j == min(iterations, dim) - 1:
            break
        betas.append(b)
        Q.append(w / b)
    T = torch.diag(torch.stack(alphas))
    if betas:
        off = torch.stack(betas[: len(alphas) - 1])
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigvalsh(T)[-k:].flip(0).tolist()


def tg_h2_dense(task_loss, params, xs, ys, k: int = 2, task_chunk: int = 25, chunk_size: int = 256) -> dict:
    """Exact T g, H^2 and T g + H^2 for the batch loss and per task (E over tasks).

    ``task_loss(params, x, y)`` is one task's loss; the batch loss L is its mean over the
    tasks of ``xs, ys`` (tasks x points x features), so H = E[H_i]; T g uses the batch
    gradient g. Per task: E[H_i^2] and E[T_i g_i].

    Since T is symmetric, T v is the Hessian of the scalar theta -> v . grad L(theta) (v
    fixed): both T g and E[T_i g_i] are Hessians of one scalar over the whole batch, which
    is cheaper than a Jacobian per task. Per-task Hessians (for E[H_i^2]) are vmapped
    ``task_chunk`` tasks at a time, which bounds memory.
    """
    f_task, theta = _flat_task_fn(task_loss, params)
    task_grads = torch.func.vmap(grad(f_task), in_dims=(None, 0, 0))
    g_tasks = task_grads(theta, xs, ys)
    g = g_tasks.mean(0)
    d, n = theta.numel(), xs.shape[0]
    H, EH2 = (torch.zeros(d, d, dtype=theta.dtype) for _ in range(2))
    for i in range(0, n, task_chunk):
        Hi = torch.func.vmap(lambda x, y: jacrev(grad(f_task))(theta, x, y))(xs[i:i + task_chunk],
                                                                            ys[i:i + task_chunk])
        H += Hi.sum(0) / n
        EH2 += torch.bmm(Hi, Hi).sum(0) / n
        del Hi
    contract_batch = lambda t: (task_grads(t, xs, ys).mean(0) * g).sum()      # g . grad L(t)
    contract_tasks = lambda t: (task_grads(t, xs, ys) * g_tasks).sum() / n    # E[g_i . grad L_i(t)]
    Tg = jacrev(grad(contract_batch), chunk_size=chunk_size)(theta)
    ETg = jacrev(grad(contract_tasks), chunk_size=chunk_size)(theta)
    return {"batch": summary(Tg, H @ H, k), "per_task": summary(ETg, EH2, k)}


def _flat_task_fn(loss, params):
    """(f, theta): ``loss(params, *args)`` as ``f(theta, *args)`` of one flat vector, and theta at ``params``."""
    names = list(params)
    shapes = [params[k].shape for k in names]
    sizes = [params[k].numel() for k in names]

    def f(vec, *args):
        parts = torch.split(vec, sizes)
        return loss({k: p.reshape(s) for k, p, s in zip(names, parts, shapes)}, *args)

    return f, torch.cat([params[k].reshape(-1) for k in names])


def summary(Tg, H2, k):
    """What Fig. 5 reports of T g, H^2 and T g + H^2: the top ``k`` eigenvalues and the Frobenius norms."""
    S = Tg + H2
    return {"eig_Tg": top_eigenvalues(Tg, k), "eig_H2": top_eigenvalues(H2, k), "eig_Tg_plus_H2": top_eigenvalues(S, k),
            "fro_Tg": float(torch.linalg.matrix_norm(Tg)), "fro_H2": float(torch.linalg.matrix_norm(H2)),
            "fro_Tg_plus_H2": float(torch.linalg.matrix_norm(S))}
