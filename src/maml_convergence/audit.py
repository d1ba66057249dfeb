"""Where does the paper's approximation hold? The stability boundary, measured precisely.

For linear regression (one task, the same data in the inner and the meta step) the loss is
quadratic and the MAML iteration is affine, theta -> J theta + c, for both orders and any number of
inner steps; ``theory`` gives its exact stability condition. Here we *measure* the boundary with
the engine itself: for each alpha, bisect beta between a cell whose iteration converges and one
whose iteration does not, then compare with the paper's beta_c = 2/(lambda - alpha lambda^2) and
with the exact conditions, for both orders, with one inner step (the paper's setting) or more
(``spec.inner_steps``: the exact bound is then theory's N-step one).

A cell is unstable when the spectral radius rho of its iteration is at least 1. rho is measured from
the grid's own meta-step (``grid.meta_step``, the engine or the reference backend), not read off
``theory``: one meta-step from the initial parameters and one from each of them moved by 1 give
the columns of J (the differences of an affine map are exact up to rounding), a step from one
more point checks that the map is affine, and rho is the largest |eigenvalue| of J. This tells
rho = 1.0002 from rho = 0.9998 however slowly the iteration moves. A run's loss cannot: it mixes
the directions, and a decaying low-curvature direction can hide a slowly growing top one for
thousands of meta-steps (first order just past alpha_c, for instance, where the top direction
grows by 2e-4 a step while the loss still falls).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import torch
from torch.func import vmap

from . import maml, models, theory
from .grid import GridSpec, meta_step

AFFINE_TOLERANCE = 1e-8  # relative: how far the step from the check point may be off J's prediction


def spectral_radii(spec: GridSpec, pairs: list[tuple[float, float]]) -> np.ndarray:
    """rho, the spectral radius of the meta-iteration of each (alpha, beta) cell of ``spec`` (a problem with a
    quadratic loss), measured from the grid's own meta-step at ``spec``'s initial parameters (module docstring)."""
    dtype = getattr(torch, spec.dtype)
    model = models.build(spec.model).to(dtype)
    theta = models.initial_params(model, spec.init_seed, dtype)
    names, shapes = list(theta), [v.shape for v in theta.values()]
    flat = torch.cat([v.reshape(-1) for v in theta.values()])
    d = flat.numel()
    # the start, the start moved by 1 along each parameter (J's columns), and a point off the axes (the check)
    points = torch.cat([flat[None], flat + torch.eye(d, dtype=dtype), (flat + 0.5)[None]])
    batch = spec.problem.sample(0, dtype=dtype)
    step, state = meta_step(spec, model, dtype), maml.init_optimizer_state(theta, spec.optimizer)

    def moved(point, alpha, beta):
        params = dict(zip(names, (t.reshape(s) for t, s in zip(point.split([s.numel() for s in shapes]), shapes))))
        new = step(params, state, batch.xs, batch.ys, batch.xq, batch.yq, alpha, beta)[0]
        return torch.cat([new[k].reshape(-1) for k in names])

    alpha = torch.tensor([a for a, _ in pairs], dtype=dtype)
    beta = torch.tensor([b for _, b in pairs], dtype=dtype)
    if spec.backend == "engine":
        out = vmap(vmap(moved, in_dims=(0, None, None)), in_dims=(None, 0, 0))(points, alpha, beta)
    else:  # the reference backend is plain autograd: one cell and one point at a time
        out = torch.stack([torch.stack([moved(p, a, b) for p in points]) for a, b in zip(alpha, beta)])
    out = out.detach().double().numpy()  # (cells, d + 2, d)
    jac = np.swapaxes(out[:, 1:d + 1] - out[:, :1], 1, 2)  # column i: J e_i
    predicted = out[:, 0] + 0.5 * jac.sum(axis=2)
    scale = np.abs(out[:, 0]).max(axis=1) + np.abs(jac).max(axis=(1, 2))
    off = np.abs(out[:, d + 1] - predicted).max(axis=1) / scale
    if not (off <= AFFINE_TOLERANCE).all():
        worst = int(np.nanargmax(np.where(np.isfinite(off), off, np.inf)))
        raise ValueError(f"the meta-step of cell alpha={pairs[worst][0]:g}, beta={pairs[worst][1]:g} is not affine "
                         f"(off by {off[worst]:.2g}): the audit measures rho on a quadratic loss only")
    return np.abs(np.linalg.eigvals(jac)).max(axis=1)


def unstable(spec: GridSpec, pairs: list[tuple[float, float]]) -> np.ndarray:
    """Per cell: does its meta-iteration not converge (rho >= 1)?"""
    return spectral_radii(spec, pairs) >= 1


def bisect_beta(spec: GridSpec, alphas, beta_range=(1e-4, 1e2), points: int = 12, rounds: int = 3) -> pd.DataFrame:
    """Per alpha, the bracket [beta_stable, beta_unstable] around the stability boundary.

    Each round tries ``points`` log-spaced betas inside every alpha's bracket at once (one
    vectorised measurement of rho), so the bracket shrinks by about ``points + 1`` per round.
    beta_stable is NaN when even the smallest beta is unstable, beta_unstable inf when even the largest
    is stable; rho_stable and rho_unstable are rho at the bracket's ends.
    """
    lo = {a: beta_range[0] for a in alphas}
    hi = {a: beta_range[1] for a in alphas}
    stable_seen = {a: False for a in alphas}
    # first make sure the ends behave: the smallest beta may already be unstable (first order past alpha_c)
    ends = unstable(spec, [(a, beta_range[0]) for a in alphas] + [(a, beta_range[1]) for a in alphas])
    n = len(alphas)
    searching = set()
    for i, a in enumerate(alphas):
        stable_seen[a] = not ends[i]
        if not ends[n + i]:  # stable even at the top of the range: the boundary lies above it
            lo[a], hi[a] = beta_range[1], math.inf
        elif stable_seen[a]:
            searching.add(a)
    for _ in range(rounds):
        active = [a for a in alphas if a in searching]
        if not active:
            break
        trial = {a: np.geomspace(lo[a], hi[a], points + 2)[1:-1] for a in active}
        pairs = [(a, float(b)) for a in active for b in trial[a]]
        flags = unstable(spec, pairs).reshape(len(active), points)
        for a, row in zip(active, flags):
            betas = trial[a]
            first_bad = int(np.argmax(row)) if row.any() else points
            if first_bad > 0:
                lo[a] = float(betas[first_bad - 1])
            if first_bad < points:
                hi[a] = float(betas[first_bad])
    rows = []
    for a in alphas:
        if not stable_seen[a]:
            rows.append({"alpha": a, "beta_stable": math.nan, "beta_unstable": beta_range[0]})
        else:
            rows.append({"alpha": a, "beta_stable": lo[a], "beta_unstable": hi[a]})
    out = pd.DataFrame(rows)
    out["beta_measured"] = np.sqrt(out.beta_stable * out.beta_unstable)
    for side in ("stable", "unstable"):  # rho at the bracket's ends: how far inside each side they are
        betas = out[f"beta_{side}"]
        known = np.isfinite(betas)
        out[f"rho_{side}"] = math.nan
        if known.any():
            out.loc[known, f"rho_{side}"] = spectral_radii(spec, list(zip(out.alpha[known], betas[known])))
    return out


def boundary_table(spec: GridSpec, eigenvalues, order: str, alphas, **kw) -> pd.DataFrame:
    table = bisect_beta(dataclasses.replace(spec, order=order), alphas, **kw)
    table.insert(0, "order", order)
    table["paper"] = theory.paper_beta_bound(table.alpha.to_numpy(), eigenvalues)
    table["exact"] = theory.exact_beta_bound(table.alpha.to_numpy(), eigenvalues, order, spec.inner_steps)
    return table


def audit_alphas(grid_alphas, eigenvalues) -> list[float]:
    """The Fig. 3 alphas plus a few past alpha_c (up to 2/lambda_max), where the formulas part."""
    a_c = theory.paper_alpha_c(eigenvalues)
    past = [a_c * f for f in (0.9, 0.97, 1.03, 1.1, 1.3, 1.6, 1.9)]
    return sorted(set(float(a) for a in grid_alphas) | set(past))
