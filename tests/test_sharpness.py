"""The MAML objective's sharpness, matrix-free: a closed form on the quadratic, the dense Hessian
on a small network, and the monitor's record."""

import numpy as np
import pytest
import torch
from torch import nn

from maml_convergence import curvature, models, sharpness, theory
from maml_convergence.tasks import LinearRegressionTask, SinusoidTasks


@pytest.fixture(scope="module")
def quadratic():
    model = models.linear_model().double()
    params = models.initial_params(model, seed=0, dtype=torch.float64)
    batch = LinearRegressionTask(seed=0).sample(dtype=torch.float64)
    eig = curvature.loss_hessian_eigenvalues(model, params, batch.xs[0], batch.ys[0])
    return model, params, batch, eig


@pytest.mark.parametrize("share_of_alpha_c", [0.0, 0.3, 0.9, 1.4])
def test_on_the_quadratic_the_maml_hessian_has_eigenvalues_lambda_times_one_minus_alpha_lambda_squared(
        quadratic, share_of_alpha_c):
    model, params, batch, eig = quadratic
    alpha = share_of_alpha_c / eig.max()
    got = sharpness.maml_sharpness(model, params, batch, alpha, k=2)
    want = sorted(eig * (1 - alpha * eig) ** 2, reverse=True)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # so 2 / sharpness is the exact second-order bound, not the paper's 2 / (lambda - alpha lambda^2)
    assert 2 / got[0] == pytest.approx(theory.exact_beta_bound(alpha, eig, "second"), rel=1e-10)
    assert sharpness.loss_sharpness(model, params, batch, k=2) == pytest.approx(sorted(eig, reverse=True), rel=1e-10)


def test_lanczos_finds_the_top_eigenvalues_of_the_dense_maml_hessian_of_a_network():
    model = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    params = models.initial_params(model, seed=3, dtype=torch.float64)
    batch = SinusoidTasks(tasks=6, seed=1).sample(0, dtype=torch.float64)
    alpha = 0.05
    dense = curvature.flat_hessian(sharpness.maml_objective(model, batch, alpha, inner_steps=2), params)
    want = torch.linalg.eigvalsh(dense).flip(0)[:2].tolist()
    got = sharpness.maml_sharpness(model, params, batch, alpha, inner_steps=2, k=2, iterations=60)
    np.testing.assert_allclose(got, want, rtol=1e-8)


def test_the_monitor_records_every_n_steps_against_two_over_beta(quadratic):
    model, params, batch, eig = quadratic
    monitor = sharpness.SharpnessMonitor(model, alpha=0.01, beta=0.5, every=3)
    seen = [monitor(step, params, batch) for step in range(7)]
    assert [s is not None for s in seen] == [True, False, False, True, False, False, True]
    assert [h["step"] for h in monitor.history] == [0, 3, 6]
    lam = eig.max() * (1 - 0.01 * eig.max()) ** 2
    assert monitor.history[-1]["lambda_max"] == pytest.approx(lam, rel=1e-10)
    assert monitor.history[-1]["two_over_beta"] == 4.0
    assert monitor.history[-1]["ratio"] == pytest.approx(lam * 0.5 / 2, rel=1e-10)


@pytest.mark.parametrize("every,beta", [(0, 0.1), (10, 0.0), (10, float("nan"))])
def test_the_monitor_refuses_settings_that_mean_nothing(quadratic, every, beta):
    with pytest.raises(ValueError, match="every must be >= 1 and beta > 0"):
        sharpness.SharpnessMonitor(quadratic[0], alpha=0.01, beta=beta, every=every)



def test_on_a_cnn_with_batch_norm_the_hessian_vector_product_agrees_with_plain_autograd():
    """Forward-over-reverse through torch.func, as Lanczos runs it, against reverse-over-reverse
    with torch.autograd (create_graph) on the same meta-loss of the Omniglot CNN. Central finite
    differences cannot referee here: along a random direction of 100k ReLU-network parameters some
    pre-activations change sign even at a step of 1e-6, and the gradient jumps."""
    from test_images import setup

    model, params, batch = setup(tasks=2, query=2)
    f, theta = curvature._flat_task_fn(sharpness.maml_objective(model, batch, alpha=0.4), params)
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(0), dtype=theta.dtype)
    hv = curvature.hvp(f, theta, v)
    t = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(t), t, create_graph=True)
    (want,) = torch.autograd.grad(g, t, v)
    assert float((hv - want).norm() / want.norm()) <= 1e-10


@pytest.mark.slow
def test_the_predicted_boundary_of_fig4a_is_two_over_the_top_eigenvalue_of_the_maml_hessian_at_the_start():
    """experiments.sinusoid_local_bound at alpha = 0 against the dense Hessian of the query loss (what the MAML
    objective is without an inner step), for each seed's own initial parameters and first meta-batch."""
    from maml_convergence import config, experiments
    cfg = config.load("config/quick.yaml")
    cfg["sinusoid"].update(alpha_range=[0.01, 0.03], mantissas=[1], seeds=[0, 3])
    cfg["sharpness"]["lanczos_iterations"] = 60
    table = experiments.sinusoid_local_bound(cfg)
    assert sorted(table.alpha.unique()) == [0.0, 0.01] and sorted(table.seed.unique()) == [0, 3]
    model = models.sinusoid_mlp().double()
    for seed in (0, 3):
        params = models.initial_params(model, seed, torch.float64)
        batch = SinusoidTasks(tasks=cfg["sinusoid"]["tasks"], seed=seed).sample(0, dtype=torch.float64)
        dense = curvature.flat_hessian(sharpness.maml_objective(model, batch, 0.0), params)
        top = float(torch.linalg.eigvalsh(dense)[-1])
        row = table[(table.seed == seed) & (table.alpha == 0.0)].iloc[0]
        assert row.lambda_max == pytest.approx(top, rel=1e-8) and row.beta_predicted == pytest.approx(2 / top)


def test_fig6_takes_the_cells_on_both_sides_of_each_columns_boundary():
    import pandas as pd

    from maml_convergence import experiments
    from maml_convergence.config import ConfigError
    rows = [(a, b, "ok" if b <= edge else "diverged") for a, edge in ((0.0, 0.3), (0.1, 1.0), (0.3, 0.0))
            for b in (0.1, 0.3, 1.0, 3.0)]
    grid = pd.DataFrame(rows, columns=["alpha", "beta", "status"]).assign(seed=0)
    other = grid.assign(seed=1, status="ok")
    cells = experiments.fig6_cells(pd.concat([grid, other]), [0.0, 0.1, 0.3], seed=0)
    assert cells == [(0.0, 0.3, "stable"), (0.0, 1.0, "diverged"), (0.1, 1.0, "stable"), (0.1, 3.0, "diverged"),
                     (0.3, 0.1, "diverged")]  # at alpha = 0.3 no beta is stable: one side only
    with pytest.raises(ConfigError, match="fig6.alphas': 0.05 is not an alpha of the sinusoid grid"):
        experiments.fig6_cells(grid, [0.05], seed=0)


def _quick_sinusoid_grid(root):
    """The quick config's Fig. 4a grid as its step writes it: the table and the kept final parameters."""
    from maml_convergence import config, experiments
    from maml_convergence.grid import run_grid

    cfg = config.load(root / "config" / "quick.yaml")
    spec = experiments.sinusoid_grid_spec(cfg, "cpu")
    rows = run_grid(spec, progress=False, keep_params=True).rows
    return cfg, experiments.grid_frame(rows), experiments.sinusoid_final_params(spec, rows)


@pytest.mark.slow
def test_fig7_reads_the_grids_final_parameters_and_resumes_its_lanczos(root, tmp_path, capsys):
    """Fig. 7's step on the quick grid, every seed: the kept parameters are those of the grid's stable cells (the
    top eigenvalue there equals one at the parameters of the cell trained alone, on its seed); a resume file
    holding half the stable cells (as an interrupted run leaves it) is read back, those cells are not computed
    again, and the table is the one an uninterrupted run writes, while one left by a run on other parameters is
    ignored; parameters kept by a grid of other settings are refused."""
    import dataclasses

    from maml_convergence import experiments, models, sharpness
    from maml_convergence.checkpoint import Checkpoint
    from maml_convergence.config import ConfigError
    from maml_convergence.grid import run_grid

    cfg, grid, final = _quick_sinusoid_grid(root)
    whole = experiments.fig7_sharpness(cfg, "cpu", grid, final)
    stable = whole[whole.status == "ok"]
    assert len(whole) == len(grid) and sorted(whole.seed.unique()) == sorted(cfg["sinusoid"]["seeds"])
    assert len(stable) >= 4 and stable.lambda_max.notna().all() and whole[whole.status != "ok"].lambda_max.isna().all()
    assert np.allclose(stable.ratio, stable.lambda_max * stable.beta / 2)

    cell = stable[stable.seed == stable.seed.max()].iloc[0]  # a seed other than the first
    spec = experiments.sinusoid_spec(cfg, "cpu")
    spec = dataclasses.replace(spec, problem=dataclasses.replace(spec.problem, seed=int(cell.seed)),
                               init_seed=int(cell.seed))
    alone = dataclasses.replace(spec, pairs=[(cell.alpha, cell.beta)]).with_run(slots=1, compile=False)
    (row,) = run_grid(alone, progress=False, keep_params=True).rows
    params = {k: v.double() for k, v in row["final_params"].items()}
    top = sharpness.maml_sharpness(models.build(spec.model).double(), params,
                                   spec.problem.eval_batch(torch.float64, "cpu"), cell.alpha, spec.inner_steps, k=1,
                                   iterations=cfg["sharpness"]["lanczos_iterations"], seed=spec.init_seed)[0]
    assert top == pytest.approx(cell.lambda_max, rel=1e-4)

    resume = tmp_path / "sharpness.ckpt"
    half = stable.iloc[::2]
    marker = 1e6  # a value no Lanczos run gives here: it can only come from the resume file
    lanczos = cfg["sharpness"]["lanczos_iterations"]
    seeds = sorted(cfg["sinusoid"]["seeds"])
    key = experiments.fig7_resume_fingerprint(final, seeds, lanczos)
    Checkpoint(resume, key, "fig7").save({(r.seed, r.alpha, r.beta): marker for r in half.itertuples()})
    again = experiments.fig7_sharpness(cfg, "cpu", grid, final, checkpoint=resume)
    assert "resuming from checkpoint" in capsys.readouterr().err
    assert (again.lambda_max == marker).sum() == len(half)  # read back, not computed again
    others = again.lambda_max != marker
    assert again[others].drop(columns=["ratio"]).equals(whole[others].drop(columns=["ratio"]))
    elsewhere = {**final, "fingerprint": "a grid of another backend"}  # its resume file is not this one's
    Checkpoint(resume, experiments.fig7_resume_fingerprint(elsewhere, seeds, lanczos), "fig7").save(
        {(r.seed, r.alpha, r.beta): marker for r in half.itertuples()})
    assert not (experiments.fig7_sharpness(cfg, "cpu", grid, final, checkpoint=resume).lambda_max == marker).any()
    assert "belongs to a different configuration" in capsys.readouterr().err

    other = {**cfg, "sinusoid": {**cfg["sinusoid"], "iterations": cfg["sinusoid"]["iterations"] + 1}}
    with pytest.raises(ConfigError, match="kept by a grid of other settings"):
        experiments.fig7_sharpness(other, "cpu", grid, final)


@pytest.mark.parametrize("backend", ["engine", "higher"])
def test_fig7s_step_sees_the_fingerprint_of_the_grid_whose_parameters_it_reads(root, backend):
    """Fig. 7 refuses parameters kept by a grid of other settings: its step's sections must give the
    sinusoid-grid step's fingerprint, whichever backend trained the grid."""
    from maml_convergence import config, experiments

    cfg = config.deep_merge(config.load(root / "config" / "quick.yaml"), {"backend": backend})
    grid, fig7 = (experiments.sinusoid_grid_spec(config.step_config(cfg, step), "cpu").fingerprint()
                  for step in ("sinusoid-grid", "fig7-sharpness"))
    assert grid == fig7
