"""The paper's learning-rate conditions, and the exact ones for a quadratic loss.

Paper (Takagi et al., eqs. 11 and 14): with H~ = H - alpha H^2 (T g dropped),
    alpha < alpha_c = 1 / lambda_max,     beta < beta_c(alpha) = min_i 2 / (lambda_i - alpha lambda_i^2).

Exact, for a quadratic loss with gradient H (theta - theta*) and the same data in
the inner and the meta step (the paper's Appendix C setting): the meta-gradient is
    second order:  (I - alpha H)^2 H (theta - theta*)
    first order:   (I - alpha H)   H (theta - theta*)
so the iteration is linear with eigenvalues 1 - beta mu_i, where
    mu_i = lambda_i (1 - alpha lambda_i)^2   (second order),
    mu_i = lambda_i (1 - alpha lambda_i)     (first order),
and it converges iff 0 < beta mu_i < 2 for every lambda_i > 0. The paper's bound is
exact for first-order MAML; for second-order MAML, alpha > 1/lambda_max does not
by itself make the iteration diverge.
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


def quadratic_rates(alpha, lam, order: str):
    """mu_i: the meta-gradient's curvature along eigenvector i (see module docstring)."""
    alpha, lam = np.asarray(alpha, dtype=float), np.asarray(lam, dtype=float)
    if order == "second":
        return lam * (1 - alpha * lam) ** 2
    if order == "first":
        return lam * (1 - alpha * lam)
    raise ValueError(f"order must be 'second' or 'first', got {order!r}")


def exact_beta_bound(alpha, eigenvalues, order: str):
    """Largest beta for which the quadratic MAML iteration converges; 0 where no beta does.

    A direction with mu_i = 0 (alpha = 1 / lambda_i exactly) neither grows nor shrinks
    and is ignored here, as it is measure-zero on a grid.
    """
    lam = np.asarray(eigenvalues, dtype=float)
    lam = lam[lam > 0]
    alpha = np.atleast_1d(np.asarray(alpha, dtype=float))
    mu = np.stack([quadratic_rates(alpha, one, order) for one in lam])  # (eig, alpha)
    with np.errstate(divide="ignore"):
        per_direction = np.where(mu > 0, 2.0 / mu, np.where(mu < 0, 0.0, np.inf))
    return per_direction.min(axis=0)


def exact_alpha_c(eigenvalues, order: str) -> float:
    """Smallest alpha beyond which no beta converges: 1/lambda_max (first order), none (second)."""
    return paper_alpha_c(eigenvalues) if order == "first" else float("inf")


def iteration_matrix(H: np.ndarray, alpha: float, beta: float, order: str) -> np.ndarray:
    """Jacobian of one MAML meta-step on the quadratic with Hessian H (for tests and audits)."""
    eye = np.eye(H.shape[0])
    inner = eye - alpha * H
    grad_map = inner @ inner @ H if order == "second" else inner @ H
    return eye - beta * grad_map


def feasible_region(alpha, eigenvalues):
    """(alpha < alpha_c) and the beta bound: the paper's shaded region of Fig. 2."""
    alpha = np.asarray(alpha, dtype=float)
    return alpha < paper_alpha_c(eigenvalues), paper_beta_bound(alpha, eigenvalues)
