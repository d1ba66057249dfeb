"""Exact T g and H^2 against finite differences, and the matrix-free path against the dense one."""

import pytest
import torch
from torch import nn

from maml_convergence import curvature, curvature_mlp, maml, models
from maml_convergence.tasks import SinusoidTasks

F64 = torch.float64


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    xs = torch.linspace(-3, 3, 4 * 7, dtype=F64).reshape(4, 7, 1)
    ys = torch.sin(xs) * torch.arange(1, 5, dtype=F64).reshape(4, 1, 1)
    task_loss = lambda p, x, y: maml.task_loss(model, p, x, y)
    batch_loss = lambda p: torch.func.vmap(lambda x, y: task_loss(p, x, y))(xs, ys).mean()
    f, theta = curvature._flat_fn(batch_loss, params)
    return task_loss, params, xs, ys, f, theta


def test_tg_is_the_derivative_of_h_times_fixed_g(small):
    _, _, _, _, f, theta = small
    g = torch.func.grad(f)(theta)
    Tg = curvature.dense_tg(f, theta, g)
    torch.testing.assert_close(Tg, Tg.T, rtol=1e-10, atol=1e-12)  # T is symmetric in all indices
    eps = 1e-5
    for j in (0, 7, theta.numel() - 1):
        e = torch.zeros_like(theta)
        e[j] = eps
        fd = (curvature.hvp(f, theta + e, g) - curvature.hvp(f, theta - e, g)) / (2 * eps)
        torch.testing.assert_close(Tg[:, j], fd, rtol=1e-6, atol=1e-8)


def test_matrix_free_spectra_match_dense(small):
    task_loss, params, xs, ys, f, theta = small
    g = torch.func.grad(f)(theta)
    H = torch.func.hessian(f)(theta)
    Tg = curvature.dense_tg(f, theta, g)
    d = theta.numel()
    cases = {
        "H^2": (H @ H, lambda v: curvature.hvp(f, theta, curvature.hvp(f, theta, v))),
        "Tg": (Tg, lambda v: curvature.tg_matvec(f, theta, g, v)),
        "Tg+H^2": (Tg + H @ H, lambda v: curvature.tg_matvec(f, theta, g, v)
                   + curvature.hvp(f, theta, curvature.hvp(f, theta, v))),
    }
    for name, (dense, matvec) in cases.items():
        expected = curvature.top_eigenvalues(dense, 2)
        got = curvature.lanczos_top(matvec, d, k=2, iterations=d)
        assert got == pytest.approx(expected, rel=1e-8, abs=1e-10), name


def test_dense_summary_per_task_is_the_task_average(small):
    task_loss, params, xs, ys, f, theta = small
    out = curvature.tg_h2_dense(task_loss, params, xs, ys)
    H2s = []
    for i in range(xs.shape[0]):
        fi, _ = curvature._flat_fn(lambda p: task_loss(p, xs[i], ys[i]), params)
        Hi = torch.func.hessian(fi)(theta)
        H2s.append(Hi @ Hi)
    EH2 = torch.stack(H2s).mean(0)
    assert out["per_task"]["eig_H2"] == pytest.approx(curvature.top_eigenvalues(EH2, 2), rel=1e-10)
    assert out["per_task"]["fro_H2"] == pytest.approx(float(torch.linalg.matrix_norm(EH2)), rel=1e-10)
    H = torch.func.hessian(f)(theta)
    assert out["batch"]["eig_H2"] == pytest.approx(curvature.top_eigenvalues(H @ H, 2), rel=1e-10)
    # T g with the batch gradient, and E[T_i g_i] with each task's own, from the definition
    g = torch.func.grad(f)(theta)
    Tg = curvature.dense_tg(f, theta, g)
    assert out["batch"]["eig_Tg"] == pytest.approx(curvature.top_eigenvalues(Tg, 2), rel=1e-9)
    assert out["batch"]["fro_Tg"] == pytest.approx(float(torch.linalg.matrix_norm(Tg)), rel=1e-9)
    ETg = 0
    for i in range(xs.shape[0]):
        fi, _ = curvature._flat_fn(lambda p: task_loss(p, xs[i], ys[i]), params)
        ETg = ETg + curvature.dense_tg(fi, theta, torch.func.grad(fi)(theta)) / xs.shape[0]
    assert out["per_task"]["eig_Tg"] == pytest.approx(curvature.top_eigenvalues(ETg, 2), rel=1e-9)
    assert out["per_task"]["fro_Tg_plus_H2"] == pytest.approx(float(torch.linalg.matrix_norm(ETg + EH2)), rel=1e-9)


@pytest.fixture(scope="module")
def relu_mlp():
    """A small ReLU MLP of the paper's shape, with 2-d inputs and unequal widths (catches index slips)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 1)).double()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    xs = torch.randn(4, 7, 2, dtype=F64)
    ys = torch.randn(4, 7, 1, dtype=F64)
    return model, params, xs, ys


def test_written_out_relu_mlp_matches_the_definitions(relu_mlp):
    model, params, xs, ys = relu_mlp
    assert curvature_mlp.applies(model)
    f_task, theta = curvature._flat_task_fn(lambda p, x, y: maml.task_loss(model, p, x, y), params)
    n = xs.shape[0]
    Hs = [torch.func.hessian(f_task)(theta, xs[i], ys[i]) for i in range(n)]
    gs = [torch.func.grad(f_task)(theta, xs[i], ys[i]) for i in range(n)]
    g = sum(gs) / n
    batch = lambda t: sum(f_task(t, xs[i], ys[i]) for i in range(n)) / n
    expected = {
        "H": sum(Hs) / n,
        "EH2": sum(h @ h for h in Hs) / n,
        "Tg": curvature.dense_tg(batch, theta, g),
        "ETg": sum(curvature.dense_tg(lambda t: f_task(t, xs[i], ys[i]), theta, gs[i]) for i in range(n)) / n,
    }
    got = curvature_mlp.matrices(model, params, xs, ys)
    perm = curvature_mlp.torch_order(params)
    torch.testing.assert_close(got["g"][perm], g, rtol=1e-12, atol=1e-14)
    for name, ref in expected.items():
        torch.testing.assert_close(got[name][perm][:, perm], ref, rtol=1e-10, atol=1e-12, msg=name)


def test_written_out_summary_equals_autodiff_on_the_paper_mlp():
    """The 1,761-parameter sinusoid MLP itself, float64, a few of its tasks: every reported number."""
    model = models.build("sinusoid_mlp").double()
    params = models.initial_params(model, 3, F64)
    problem = SinusoidTasks(tasks=3, k_support=10, k_query=10, seed=0)
    batch = problem.sample(0, dtype=F64)
    task_loss = lambda p, x, y: maml.task_loss(model, p, x, y)
    ref = curvature.tg_h2_dense(task_loss, params, batch.xs, batch.ys)
    got = curvature_mlp.tg_h2(model, params, batch.xs, batch.ys)
    for scope in ("batch", "per_task"):
        for key, value in ref[scope].items():
            assert got[scope][key] == pytest.approx(value, rel=1e-9), (scope, key)


def test_written_out_path_refuses_other_models():
    tanh_model = nn.Sequential(nn.Linear(1, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 1))
    assert not curvature_mlp.applies(tanh_model)
    assert not curvature_mlp.applies(nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(),
                                                   nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="Linear-ReLU"):
        curvature_mlp.matrices(tanh_model, {}, torch.zeros(1, 1, 1), torch.zeros(1, 1, 1))
