"""Where does the paper's approximation hold? The stability boundary, measured precisely.

For linear regression (one task, the same data in the inner and the meta step) the
MAML iteration is linear, and ``theory`` gives its exact stability condition. Here we
*measure* the boundary with the engine itself: for each alpha, bisect beta between a
run that converges and one that does not, then compare with the paper's
beta_c = 2/(lambda - alpha lambda^2) and with the exact conditions, for both orders, with one inner step
(the paper's setting) or more (``spec.inner_steps``: the exact bound is then theory's N-step one).

A run of N iterations counts as unstable when it diverges (``grid``'s rule) or when its
training loss L(theta) at N exceeds that at N/2: once transients have died out the loss
changes by rho^N over those N/2 steps, rho being the iteration's spectral radius, so the
test separates rho > 1 from rho < 1 however slowly either side moves. It reads the plain
loss, not the meta-loss L(theta'): near alpha = 1/lambda the inner step all but cancels
that direction in theta' (factor 1 - alpha lambda), which would hide its growth.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from . import theory
from .grid import GridSpec, run_grid

FLOOR = 1e-20  # a loss this far below its start has converged; the N/2 vs N test is noise there


def unstable(spec: GridSpec, pairs: list[tuple[float, float]], iterations: int) -> np.ndarray:
    half = run_grid(dataclasses.replace(spec, pairs=pairs, iterations=iterations // 2), progress=False)
    full = run_grid(dataclasses.replace(spec, pairs=pairs, iterations=iterations), progress=False)
    out = []
    for h, f in zip(half, full):
        if f["status"] == "diverged":
            out.append(True)
        elif h["status"] == "diverged":
            out.append(True)
        elif f["final_plain_loss"] < FLOOR * f["initial_loss"]:
            out.append(False)
        else:
            out.append(f["final_plain_loss"] > h["final_plain_loss"])
    return np.array(out)


def bisect_beta(spec: GridSpec, alphas, beta_range=(1e-4, 1e2), points: int = 12, rounds: int = 3,
                iterations: int = 2000) -> pd.DataFrame:
    """Per alpha, the bracket [beta_stable, beta_unstable] around the stability boundary.

    Each round tries ``points`` log-spaced betas inside every alpha's bracket at once (one
    vectorised grid run), so the bracket shrinks by about ``points + 1`` per round.
    beta_stable is NaN when even the smallest beta is unstable.
    """
    lo = {a: beta_range[0] for a in alphas}
    hi = {a: beta_range[1] for a in alphas}
    stable_seen = {a: False for a in alphas}
    # first make sure the ends behave: the smallest beta may already be unstable (first order past alpha_c)
    ends = unstable(spec, [(a, beta_range[0]) for a in alphas] + [(a, beta_range[1]) for a in alphas], iterations)
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
        flags = unstable(spec, pairs, iterations).reshape(len(active), points)
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
