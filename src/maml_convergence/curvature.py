"""Exact curvature of a loss at given parameters: Hessians and their spectra."""

from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call, grad, jacrev


def flat_hessian(loss_of_params, params: dict[str, torch.Tensor], chunk_size: int | None = 256) -> torch.Tensor:
    """Dense Hessian of ``loss_of_params`` w.r.t. all parameters, flattened in dict order.

    Reverse-over-reverse, ``chunk_size`` rows at a time: memory grows with the chunk, not
    with the number of parameters (a full ``hessian()`` of the 1,761-parameter MLP over a
    100-task batch needs several GB).
    """
    names = list(params)
    shapes = [params[k].shape for k in names]
    sizes = [params[k].numel() for k in names]
    flat = torch.cat([params[k].reshape(-1) for k in names])

    def f(vec):
        parts = torch.split(vec, sizes)
        return loss_of_params({k: p.reshape(s) for k, p, s in zip(names, parts, shapes)})

    return jacrev(grad(f), chunk_size=chunk_size)(flat)


def loss_hessian_eigenvalues(model, params, x, y) -> np.ndarray:
    """Ascending eigenvalues of the Hessian of the mean-squared error at ``params`` (float64)."""
    params = {k: v.detach().double() for k, v in params.items()}
    x, y = x.double(), y.double()
    H = flat_hessian(lambda p: ((functional_call(model.double(), p, (x,)) - y) ** 2).mean(), params)
    return torch.linalg.eigvalsh(H).cpu().numpy()
