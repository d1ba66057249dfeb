"""The paper's learning-rate conditions, and the exact ones for a quadratic loss.

Paper (Takagi et al., eqs. 11 and 14): with H~ = H - alpha H^2 (T g dropped),
    alpha < alpha_c = 1 / lambda_max,     beta < beta_c(alpha) = min_i 2 / (lambda_i - alpha lambda_i^2).

Exact, for a quadratic loss with gradient H (theta - theta*) and the same data in
the inner and the meta step (the paper's Appendix C setting), with N inner steps: the
adapted parameters are theta_N - theta* = (I - alpha H)^N (theta - theta*), so the
meta-gradient is
    second order:  (I - alpha H)^N H (I - alpha H)^N (theta - theta*) = (I - alpha H)^(2N) H (theta - theta*)
    first order:   H (I - alpha H)^N (theta - theta*)     (the gradient at theta_N, taken as is)
and the iteration is linear with eigenvalues 1 - beta mu_i, where
    mu_i = lambda_i (1 - alpha lambda_i)^(2N)   (second order),
    mu_i = lambda_i (1 - alpha lambda_i)^N      (first order);
it converges iff 0 < beta mu_i < 2 for every lambda_i > 0. For N = 1 the paper's bound
is exact for first-order MAML; for second-order MAML, alpha > 1/lambda_max does not by
itself make the iteration diverge. For odd N, first order, mu_i < 0 past alpha = 1/lambda_i:
every beta diverges past 1/lambda_max. For even N mu_i >= 0 in both orders: there is no
alpha_c at all (and first order at N = 2 is second order at N = 1); past 1/lambda_max
the bound only shrinks, like 2 / (lambda (alpha lambda - 1)^(2N)), so a grid sees an edge in
alpha only where that falls below its smallest beta (``alpha_edge_for_beta``).
"""

from __future__ import annotations

import numpy as np


def paper_beta_c(alpha, lam):
    """2 / (lambda - alpha lambda^2), or NaN where the paper's alpha condition fails."""
    alpha, lam = np.asarray(alpha, dtype=float), np.asarray(lam, dtype=float)
    denom = lam - alpha * lam**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2.0 / denom, np.nan)


def paper_alpha_c(eigenvalues) -> float:
    lam = np.asarray(eigenvalues, dtype=float)
    lam = lam[lam > 0]
    return float(1.0 / lam.max()) if lam.size else float("inf")


def paper_beta_bound(alpha, eigenvalues):
    """min_i beta_c(alpha, lambda_i) over lambda_i > 0; NaN for alpha >= alpha_c."""
    lam = np.asarray(eigenvalues, dtype=float)
    lam = lam[lam > 0]
    alpha = np.asarray(alpha, dtype=float)
    curves = np.stack([paper_beta_c(alpha, one) for one in lam])
    bound = np.min(np.where(np.isnan(curves), np.inf, curves), axis=0)
    return np.where(alpha < paper_alpha_c(lam), bound, np.nan)


def _power(order: str, inner_steps: int) -> int:
    """The exponent of (1 - alpha lambda) in mu_i."""
    if order not in ("second", "first"):
        raise ValueError(f"order must be 'second' or 'first', got {order!r}")
    if int(inner_steps) != inner_steps or inner_steps < 1:
        raise ValueError(f"inner_steps must be a positive integer, got {inner_steps!r}")
    return 2 * int(inner_steps) if order == "second" else int(inner_steps)


def quadratic_rates(alpha, lam, order: str, inner_steps: int = 1):
    """mu_i: the meta-gradient's curvature along eigenvector i (see module docstring)."""
    alpha, lam = np.asarray(alpha, dtype=float), np.asarray(lam, dtype=float)
    return lam * (1 - alpha * lam) ** _power(order, inner_steps)


def exact_beta_bound(alpha, eigenvalues, order: str, inner_steps: int = 1):
    """Largest beta for which the quadratic MAML iteration converges; 0 where no beta does.

    A direction with mu_i = 0 (alpha = 1 / lambda_i exactly) neither grows nor shrinks
    and is ignored here, as it is measure-zero on a grid.
    """
    lam = np.asarray(eigenvalues, dtype=float)
    lam = lam[lam > 0]
    alpha = np.atleast_1d(np.asarray(alpha, dtype=float))
    mu = np.stack([quadratic_rates(alpha, one, order, inner_steps) for one in lam])  # (eig, alpha)
    with np.errstate(divide="ignore"):
        per_direction = np.where(mu > 0, 2.0 / mu, np.where(mu < 0, 0.0, np.inf))
    return per_direction.min(axis=0)


def exact_alpha_c(eigenvalues, order: str, inner_steps: int = 1) -> float:
    """Smallest alpha beyond which no beta converges: 1/lambda_max for first order with an odd number of
    inner steps; none (inf) otherwise."""
    return paper_alpha_c(eigenvalues) if _power(order, inner_steps) % 2 else float("inf")


def alpha_edge_for_beta(beta: float, eigenvalues, order: str, inner_steps: int = 1) -> float:
    """The smallest alpha past 1/lambda_max at which even ``beta`` (a grid's smallest) diverges: where a grid
    of betas >= ``beta`` sees its edge in alpha when no alpha_c exists. For first order with odd N, alpha_c.

    Past 1/lambda_max the top direction's bound 2 / (lambda (alpha lambda - 1)^p) falls monotonically, and
    every other direction's bound is larger there until alpha passes its own 1/lambda_i; the edge is the
    smallest alpha at which the bound over all directions falls below ``beta`` (found by bisection on it).
    """
    p = _power(order, inner_steps)
    lam = np.asarray(eigenvalues, dtype=float)
    lam = lam[lam > 0]
    if p % 2:
        return paper_alpha_c(lam)
    top = lam.max()
    guess = (1 + (2 / (top * beta)) ** (1 / p)) / top  # the top direction's own edge
    lo, hi = 1 / top, guess
    if exact_beta_bound(lo * (1 + 1e-12), lam, order, inner_steps)[0] < beta:
        return lo  # another direction's bound is below beta already
    for _ in range(200):  # bisection on "the bound at alpha is >= beta", true at 1/lambda_max's right
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if exact_beta_bound(mid, lam, order, inner_steps)[0] >= beta else (lo, mid)
    return hi


def iteration_matrix(H: np.ndarray, alpha: float, beta: float, order: str, inner_steps: int = 1) -> np.ndarray:
    """Jacobian of one MAML meta-step on the quadratic with Hessian H (for tests and audits)."""
    eye = np.eye(H.shape[0])
    adapt = np.linalg.matrix_power(eye - alpha * H, int(inner_steps))  # d theta_N / d theta
    _power(order, inner_steps)  # checks both
    grad_map = adapt.T @ H @ adapt if order == "second" else H @ adapt
    return eye - beta * grad_map


def feasible_region(alpha, eigenvalues):
    """(alpha < alpha_c) and the beta bound: the paper's shaded region of Fig. 2."""
    alpha = np.asarray(alpha, dtype=float)
    return alpha < paper_alpha_c(eigenvalues), paper_beta_bound(alpha, eigenvalues)
