"""The paper's conditions and the exact quadratic conditions, against the real iteration."""

import numpy as np
import pytest
import torch
from torch.func import jacrev

from maml_convergence import curvature, maml, models, theory
from maml_convergence.tasks import LinearRegressionTask

F64 = torch.float64


def test_paper_formulas():
    assert theory.paper_beta_c(0.0, 4.0) == pytest.approx(0.5)             # 2 / lambda at alpha = 0
    assert theory.paper_beta_c(0.1, 4.0) == pytest.approx(2 / (4 - 0.1 * 16))
    assert np.isnan(theory.paper_beta_c(0.3, 4.0))                        # past 1/lambda: undefined
    assert theory.paper_alpha_c([0.5, 2.0, 4.0]) == pytest.approx(0.25)
    # min over eigenvalues; grows as alpha -> alpha_c (the paper's main observation)
    lams = [1.0, 5.0]
    b = theory.paper_beta_bound(np.array([0.0, 0.1, 0.19]), lams)
    assert b[0] == pytest.approx(0.4) and b[0] < b[1] < b[2]
    assert np.isnan(theory.paper_beta_bound(0.25, lams))


def _linear_problem():
    model = models.build("linear").double()
    params = models.initial_params(model, 0, F64)
    batch = LinearRegressionTask(seed=3).sample(0, dtype=F64)
    x = batch.xs[0]
    X = torch.cat([x, torch.ones_like(x)], dim=1)
    H = (2 * X.T @ X / x.shape[0]).numpy()
    return model, params, batch, H


def _step_jacobian(model, params, batch, alpha, beta, order, inner_steps=1):
    """Jacobian of one real engine meta-step w.r.t. (weight, bias)."""
    def step(theta):
        p = {"weight": theta[0].reshape(1, 1), "bias": theta[1].reshape(1)}
        g, _ = maml.meta_gradient(model, p, batch, alpha, inner_steps, order)
        return theta - beta * torch.stack([g["weight"].reshape(()), g["bias"].reshape(())])
    theta = torch.stack([params["weight"].reshape(()), params["bias"].reshape(())])
    return jacrev(step)(theta).numpy()


@pytest.mark.parametrize("order", ["second", "first"])
@pytest.mark.parametrize("alpha", [0.0, 0.02, 0.05, 0.12])
def test_exact_iteration_matrix_is_the_engine_jacobian(order, alpha):
    model, params, batch, H = _linear_problem()
    J = _step_jacobian(model, params, batch, alpha, 0.3, order)
    np.testing.assert_allclose(J, theory.iteration_matrix(H, alpha, 0.3, order), rtol=1e-10, atol=1e-12)
    lam = np.linalg.eigvalsh(H)
    expected = np.sort(1 - 0.3 * theory.quadratic_rates(alpha, lam, order))
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(J).real), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("order", ["second", "first"])
@pytest.mark.parametrize("alpha", [0.001, 0.03, 0.06])
def test_exact_bound_separates_stable_from_unstable(order, alpha):
    model, params, batch, H = _linear_problem()
    lam = np.linalg.eigvalsh(H)
    bound = float(theory.exact_beta_bound(alpha, lam, order)[0])
    assert 0 < bound < np.inf
    radius = lambda beta: max(abs(np.linalg.eigvals(_step_jacobian(model, params, batch, alpha, beta, order))))
    assert radius(bound * 0.99) < 1 < radius(bound * 1.01)


def test_paper_bound_is_exact_for_first_order_but_not_second():
    lam = [2.0, 12.0]
    alphas = np.array([0.001, 0.02, 0.05, 0.08])
    np.testing.assert_allclose(theory.paper_beta_bound(alphas, lam), theory.exact_beta_bound(alphas, lam, "first"))
    second = theory.exact_beta_bound(alphas, lam, "second")
    assert np.all(second >= theory.paper_beta_bound(alphas, lam))         # (1 - a l)^2 <= (1 - a l)
    assert second[-1] > 1.15 * theory.paper_beta_bound(alphas, lam)[-1]  # 1.417 vs 1.190
    # past alpha_c first-order MAML cannot converge; second-order still can
    assert theory.exact_beta_bound(0.1, lam, "first")[0] == 0
    assert theory.exact_beta_bound(0.1, lam, "second")[0] > 0
    assert theory.exact_alpha_c(lam, "first") == pytest.approx(1 / 12) and theory.exact_alpha_c(lam, "second") == np.inf


def test_linear_regression_hessian_closed_form():
    model, params, batch, H = _linear_problem()
    eig = curvature.loss_hessian_eigenvalues(model, params, batch.xs[0], batch.ys[0])
    np.testing.assert_allclose(eig, np.linalg.eigvalsh(H), rtol=1e-12)


def test_hessian_of_nonquadratic_loss_matches_finite_differences():
    model = models.build("sinusoid_mlp").double()
    params = models.initial_params(model, 0, F64)
    x = torch.linspace(-4, 4, 7, dtype=F64)[:, None]
    y = torch.sin(x)
    loss = lambda p: maml.task_loss(model, p, x, y)
    H = curvature.flat_hessian(loss, params)
    names = list(params)
    flat = torch.cat([params[k].reshape(-1) for k in names])
    sizes = [params[k].numel() for k in names]

    def grad_at(vec):
        p = {k: t.reshape(params[k].shape) for k, t in zip(names, torch.split(vec, sizes))}
        g = torch.func.grad(loss)(p)
        return torch.cat([g[k].reshape(-1) for k in names])

    v = torch.randn(flat.shape, dtype=F64)
    eps = 1e-6
    fd = (grad_at(flat + eps * v) - grad_at(flat - eps * v)) / (2 * eps)
    torch.testing.assert_close(H @ v, fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("order", ["second", "first"])
@pytest.mark.parametrize("inner_steps", [1, 2, 3])
@pytest.mark.parametrize("alpha", [0.02, 0.07, 0.12])
def test_the_n_step_iteration_matrix_is_the_engine_jacobian(order, inner_steps, alpha):
    """N inner steps: eigenvalues 1 - beta lambda (1 - alpha lambda)^(2N) (second order) or ^N (first), held to
    the Jacobian of the engine's own meta-step; alpha = 0.12 lies past 1/lambda_max (0.088 here)."""
    model, params, batch, H = _linear_problem()
    J = _step_jacobian(model, params, batch, alpha, 0.3, order, inner_steps)
    np.testing.assert_allclose(J, theory.iteration_matrix(H, alpha, 0.3, order, inner_steps), rtol=1e-9, atol=1e-12)
    lam = np.linalg.eigvalsh(H)
    expected = np.sort(1 - 0.3 * theory.quadratic_rates(alpha, lam, order, inner_steps))
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(J).real), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("order", ["second", "first"])
@pytest.mark.parametrize("inner_steps", [2, 3])
@pytest.mark.parametrize("alpha", [0.03, 0.06, 0.12])
def test_the_n_step_bound_separates_stable_from_unstable(order, inner_steps, alpha):
    model, params, batch, H = _linear_problem()
    lam = np.linalg.eigvalsh(H)
    bound = float(theory.exact_beta_bound(alpha, lam, order, inner_steps)[0])
    radius = lambda beta: max(abs(np.linalg.eigvals(_step_jacobian(model, params, batch, alpha, beta, order,
                                                                   inner_steps))))
    if bound == 0:  # first order, odd N, past 1/lambda_max: no beta converges
        assert order == "first" and inner_steps % 2 and alpha > 1 / lam.max()
        assert radius(1e-4) > 1
        return
    assert radius(bound * 0.99) < 1 < radius(bound * 1.01)


def test_even_n_has_no_alpha_c_and_odd_n_first_order_has_the_papers():
    lam = [2.0, 12.0]
    past = np.array([0.1, 0.15, 0.3])  # all past 1/12
    for order in ("second", "first"):
        assert np.all(theory.exact_beta_bound(past, lam, order, 2) > 0)
        assert theory.exact_alpha_c(lam, order, 2) == np.inf
    assert np.all(theory.exact_beta_bound(past, lam, "first", 3) == 0)
    assert theory.exact_alpha_c(lam, "first", 3) == pytest.approx(1 / 12)
    assert theory.exact_alpha_c(lam, "second", 3) == np.inf
    alphas = np.linspace(0, 0.3, 31)
    np.testing.assert_allclose(theory.exact_beta_bound(alphas, lam, "first", 2),   # first order at N = 2 is
                               theory.exact_beta_bound(alphas, lam, "second", 1))  # second order at N = 1
    with pytest.raises(ValueError, match="inner_steps"):
        theory.quadratic_rates(0.1, 2.0, "second", 0)


@pytest.mark.parametrize("order,inner_steps", [("second", 1), ("second", 2), ("first", 2), ("first", 3)])
def test_the_alpha_edge_a_grid_sees_is_where_its_smallest_beta_diverges(order, inner_steps):
    lam, beta = [2.0, 12.0], 0.003
    edge = theory.alpha_edge_for_beta(beta, lam, order, inner_steps)
    scan = np.linspace(1 / 12 + 1e-9, 1.0, 200001)
    diverges = theory.exact_beta_bound(scan, lam, order, inner_steps) < beta
    assert edge == pytest.approx(scan[np.argmax(diverges)], abs=1e-4)
