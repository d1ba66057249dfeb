"""The engine against higher, against finite differences, and against closed forms."""

import pytest
import torch

from maml_convergence import higher_backend, maml, models
from maml_convergence.tasks import LinearRegressionTask, SinusoidTasks

F64 = torch.float64


def setup(model_name, tasks=4, seed=0):
    model = models.build(model_name).double()
    params = models.initial_params(model, seed, F64)
    if model_name == "linear":
        batch = LinearRegressionTask(seed=seed).sample(0, dtype=F64)
    else:
        batch = SinusoidTasks(tasks=tasks, seed=seed).sample(3, dtype=F64)
    return model, params, batch


def rel_err(a: dict, b: dict) -> float:
    num = torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a))
    den = torch.sqrt(sum((b[k] ** 2).sum() for k in b))
    return float(num / den)


@pytest.mark.parametrize("model_name", ["sinusoid_mlp", "linear"])
@pytest.mark.parametrize("order", ["second", "first"])
@pytest.mark.parametrize("inner_steps", [1, 2])
def test_engine_matches_higher(model_name, order, inner_steps):
    model, params, batch = setup(model_name)
    alpha = 0.05 if model_name == "linear" else 0.3
    g_engine, l_engine = maml.meta_gradient(model, params, batch, alpha, inner_steps, order)
    g_higher, l_higher = higher_backend.meta_gradient(model, params, batch, alpha, inner_steps, order)
    assert rel_err(g_engine, g_higher) <= 1e-10
    assert abs(float(l_engine) - float(l_higher)) <= 1e-10 * abs(float(l_higher))


def _directional_fd(f, params, direction, eps=1e-5):
    # unit direction and a small step, so the step does not cross a ReLU kink
    norm = torch.sqrt(sum((d ** 2).sum() for d in direction.values()))
    direction = {k: d / norm for k, d in direction.items()}
    scale = float(norm)
    plus = {k: p + eps * direction[k] for k, p in params.items()}
    minus = {k: p - eps * direction[k] for k, p in params.items()}
    return scale * (float(f(plus)) - float(f(minus))) / (2 * eps)


@pytest.mark.parametrize("model_name", ["sinusoid_mlp", "linear"])
@pytest.mark.parametrize("backend", ["engine", "higher"])
def test_second_order_gradient_is_gradient_of_maml_objective(model_name, backend):
    model, params, batch = setup(model_name)
    alpha = 0.05 if model_name == "linear" else 0.3
    mod = maml if backend == "engine" else higher_backend
    grads, _ = mod.meta_gradient(model, params, batch, alpha, 1, "second")
    gen = torch.Generator().manual_seed(7)
    for _ in range(3):
        v = {k: torch.randn(p.shape, generator=gen, dtype=F64) for k, p in params.items()}
        analytic = float(sum((grads[k] * v[k]).sum() for k in params))
        numeric = _directional_fd(lambda p: maml.meta_loss(model, p, batch, alpha, 1), params, v)
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("backend", ["engine", "higher"])
def test_first_order_gradient_is_query_gradient_at_adapted_point(backend):
    """First-order MAML: mean over tasks of grad L_q at theta', checked by finite differences in theta'."""
    model, params, batch = setup("sinusoid_mlp", tasks=3)
    alpha = 0.3
    mod = maml if backend == "engine" else higher_backend
    grads, _ = mod.meta_gradient(model, params, batch, alpha, 1, "first")
    v = {k: torch.randn(p.shape, dtype=F64) for k, p in params.items()}
    numeric = 0.0
    for t in range(batch.xs.shape[0]):
        adapted = maml.adapt(model, params, batch.xs[t], batch.ys[t], alpha)
        adapted = {k: a.detach() for k, a in adapted.items()}
        numeric += _directional_fd(lambda p: maml.task_loss(model, p, batch.xq[t], batch.yq[t]), adapted, v) / 3
    analytic = float(sum((grads[k] * v[k]).sum() for k in params))
    assert analytic == pytest.approx(numeric, rel=1e-6)


def test_orders_agree_without_inner_step():
    model, params, batch = setup("sinusoid_mlp")
    g2, l2 = maml.meta_gradient(model, params, batch, 0.0, 1, "second")
    g1, l1 = maml.meta_gradient(model, params, batch, 0.0, 1, "first")
    assert rel_err(g1, g2) < 1e-14 and float(l1) == pytest.approx(float(l2))


@pytest.mark.parametrize("order,power", [("second", 2), ("first", 1)])
def test_linear_regression_meta_gradient_closed_form(order, power):
    """Same data inside and out on a quadratic: meta-gradient = (I - alpha H)^power g."""
    model, params, batch = setup("linear")
    x, y = batch.xs[0], batch.ys[0]
    X = torch.cat([x, torch.ones_like(x)], dim=1)          # features for (weight, bias)
    H = 2 * X.T @ X / x.shape[0]
    theta = torch.stack([params["weight"].reshape(()), params["bias"].reshape(())])
    g = 2 * X.T @ (X @ theta - y[:, 0]) / x.shape[0]
    alpha = 0.03
    expected = torch.linalg.matrix_power(torch.eye(2, dtype=F64) - alpha * H, power) @ g
    grads, _ = maml.meta_gradient(model, params, batch, alpha, 1, order)
    got = torch.stack([grads["weight"].reshape(()), grads["bias"].reshape(())])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_adam_update_matches_torch_optim():
    model, params, batch = setup("sinusoid_mlp")
    state = maml.init_optimizer_state(params, "adam")
    ref = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    opt = torch.optim.Adam(ref.values(), lr=1e-2)
    p = params
    for _ in range(3):
        grads, _ = maml.meta_gradient(model, p, batch, 0.1)
        p, state = maml.optimizer_update(p, grads, state, 1e-2, "adam")
        ref_grads, _ = maml.meta_gradient(model, {k: v.detach() for k, v in ref.items()}, batch, 0.1)
        for k, v in ref.items():
            v.grad = ref_grads[k]
        opt.step()
    for k in params:
        torch.testing.assert_close(p[k], ref[k].detach(), rtol=1e-10, atol=1e-12)


def test_unknown_order_is_rejected():
    model, params, batch = setup("linear")
    with pytest.raises(ValueError, match="order"):
        maml.meta_gradient(model, params, batch, 0.1, 1, "third")


def test_the_per_task_loss_is_a_parameter_of_the_engine():
    model = models.sinusoid_mlp().double()
    params = models.initial_params(model, 0, torch.float64)
    batch = SinusoidTasks(tasks=3, seed=0).sample(0, dtype=torch.float64)
    default, value = maml.meta_gradient(model, params, batch, 0.05, inner_steps=2)
    named, _ = maml.meta_gradient(model, params, batch, 0.05, inner_steps=2, loss=maml.resolve_loss("mse"))
    # doubling the loss doubles the inner step too: with alpha halved, the meta-gradient doubles
    doubled, doubled_value = maml.meta_gradient(model, params, batch, 0.025, inner_steps=2,
                                                loss=lambda p, y: 2 * maml.mse(p, y))
    for k in default:
        torch.testing.assert_close(named[k], default[k], rtol=0, atol=0)
        torch.testing.assert_close(doubled[k], 2 * default[k], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(doubled_value, 2 * value, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        maml.resolve_loss("hinge")
