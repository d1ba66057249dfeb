"""The grid runner: same numbers as single runs, isolated divergence, determinism, resume."""

import dataclasses
import math

import pandas as pd
import pytest
import torch

from maml_convergence import maml, models
from maml_convergence.config import decade_grid
from maml_convergence.grid import GridSpec, RunOptions, run_grid
from maml_convergence.tasks import LinearRegressionTask, SampledTasks, SinusoidTasks


def test_decade_grids_match_the_paper():
    assert len(decade_grid(1e-4, 0.9)) == 36 and len(decade_grid(1e-2, 9)) == 27      # Fig. 4a
    assert len(decade_grid(1e-5, 9e-2)) == 36 and len(decade_grid(5e-3, 9)) == 32     # Fig. 3
    assert decade_grid(5e-3, 2e-2) == [0.005, 0.006, 0.007, 0.008, 0.009, 0.01, 0.02]
    assert decade_grid(0.91, 0.95) == []
    with pytest.raises(ValueError):
        decade_grid(-1, 1)


def same_rows(a, b) -> bool:
    """Row lists equal, NaN equal to NaN (diverged cells have no final loss)."""
    norm = lambda rows: [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                         for r in rows]
    return norm(a) == norm(b)


def sinusoid_spec(slots: int = 3, **kw):
    base = dict(model="sinusoid_mlp", problem=SinusoidTasks(tasks=3, seed=5), alphas=[0.01, 0.1],
                betas=[0.01, 0.1], iterations=6, dtype="float64", run=RunOptions(slots=slots))
    base.update(kw)
    return GridSpec(**base)


def run_single(spec: GridSpec, alpha, beta):
    """The same training, written as a plain loop over one cell."""
    model = models.build(spec.model).double()
    params = models.initial_params(model, spec.init_seed, torch.float64)
    state = maml.init_optimizer_state(params, spec.optimizer)
    losses = []
    for i in range(spec.iterations):
        grads, loss = maml.meta_gradient(model, params, spec.problem.sample(i, dtype=torch.float64), alpha,
                                         spec.inner_steps, spec.order)
        params, state = maml.optimizer_update(params, grads, state, beta, spec.optimizer)
        losses.append(float(loss))
    return params, losses


@pytest.mark.parametrize("optimizer,order", [("sgd", "second"), ("adam", "first")])
def test_grid_cells_equal_single_runs(optimizer, order):
    spec = sinusoid_spec(optimizer=optimizer, order=order)
    rows = run_grid(spec, progress=False, keep_params=True).rows
    assert [(r["alpha"], r["beta"]) for r in rows] == spec.cells()
    for r in rows:
        params, losses = run_single(spec, r["alpha"], r["beta"])
        assert r["status"] == "ok" and r["iterations_run"] == spec.iterations
        assert r["initial_loss"] == pytest.approx(losses[0], rel=1e-12)
        assert r["last_loss"] == pytest.approx(losses[-1], rel=1e-12)
        for k in params:
            torch.testing.assert_close(r["final_params"][k], params[k], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("optimizer,order", [("sgd", "second"), ("adam", "first")])
def test_the_higher_backend_trains_the_same_cells(optimizer, order, tmp_path):
    """backend: higher trains one cell at a time with the reference implementation: the same
    rows as the engine (float64), diverged cells included, and it resumes like the engine."""
    spec = sinusoid_spec(alphas=[0.0, 0.1], betas=[0.01, 50.0], optimizer=optimizer, order=order, seeds=[5, 6])
    engine = run_grid(spec, progress=False).rows
    reference = dataclasses.replace(spec, backend="higher")
    ckpt = tmp_path / "grid.ckpt"
    assert run_grid(reference, checkpoint=ckpt, checkpoint_every=0.0, progress=False, max_steps=9).stopped
    rows = run_grid(reference, checkpoint=ckpt, progress=False).rows
    assert [r["status"] for r in rows] == [r["status"] for r in engine] and "diverged" in {r["status"] for r in rows}
    for got, want in zip(rows, engine):
        assert got["diverged_at"] == want["diverged_at"]
        for key in ("initial_loss", "last_loss", "final_loss", "final_plain_loss"):
            assert got[key] == pytest.approx(want[key], rel=1e-10, nan_ok=True), key
    with pytest.raises(ValueError, match="backend"):
        run_grid(dataclasses.replace(spec, backend="jax"), progress=False)


def test_diverging_cell_is_recorded_and_does_not_touch_others():
    calm = sinusoid_spec(alphas=[0.01], betas=[0.01, 0.05])
    stormy = sinusoid_spec(alphas=[0.01], betas=[0.01, 50.0, 0.05], slots=3)
    calm_rows = run_grid(calm, progress=False, keep_params=True).rows
    stormy_rows = run_grid(stormy, progress=False, keep_params=True).rows
    bad = stormy_rows[1]
    assert bad["status"] == "diverged" and 0 < bad["diverged_at"] < stormy.iterations
    assert math.isnan(bad["final_loss"])
    for calm_row, stormy_row in zip(calm_rows, [stormy_rows[0], stormy_rows[2]]):
        assert stormy_row["status"] == "ok"
        assert stormy_row["final_loss"] == calm_row["final_loss"]
        for k, v in calm_row["final_params"].items():
            assert torch.equal(stormy_row["final_params"][k], v)
            assert torch.isfinite(v).all()


def test_blowup_threshold_marks_divergence_before_overflow():
    spec = GridSpec(model="linear", problem=LinearRegressionTask(), alphas=[0.001], betas=[0.2], iterations=400,
                    dtype="float64", blowup_factor=100.0)
    (row,) = run_grid(spec, progress=False).rows
    assert row["status"] == "diverged"
    assert row["last_loss"] > 100 * row["initial_loss"] and math.isfinite(row["last_loss"])


def test_same_seed_same_results_and_slots_do_not_matter():
    a = run_grid(sinusoid_spec(), progress=False).rows
    b = run_grid(sinusoid_spec(), progress=False).rows
    assert same_rows(a, b)
    c = run_grid(sinusoid_spec(slots=1), progress=False).rows
    for x, y in zip(a, c):
        assert x["final_loss"] == pytest.approx(y["final_loss"], rel=1e-10)


def test_interrupted_run_resumes_to_identical_results(tmp_path):
    spec = sinusoid_spec(alphas=[0.01, 0.3, 0.9], betas=[0.01, 0.1, 5.0], iterations=8, slots=4)
    full = run_grid(spec, progress=False).rows
    ckpt = tmp_path / "grid.ckpt"
    stopped = run_grid(spec, checkpoint=ckpt, checkpoint_every=0.0, progress=False, max_steps=5)
    assert stopped.stopped and stopped.rows == []
    assert ckpt.exists()
    first_part = torch.load(ckpt, weights_only=False)["elapsed"]
    resumed = run_grid(spec, checkpoint=ckpt, checkpoint_every=0.0, progress=False)
    assert same_rows(resumed.rows, full) and not resumed.stopped
    # the provenance of a resumed run counts the interrupted part and says it resumed
    assert resumed.run_info == {"earlier_seconds": first_part, "resumed": 1} and first_part > 0
    assert run_grid(spec, progress=False).run_info == {"earlier_seconds": 0.0, "resumed": 0}


def test_checkpoint_of_another_configuration_is_ignored(tmp_path, capsys):
    ckpt = tmp_path / "grid.ckpt"
    run_grid(sinusoid_spec(), checkpoint=ckpt, checkpoint_every=0.0, progress=False, max_steps=2)
    other = sinusoid_spec(iterations=7)
    assert same_rows(run_grid(other, checkpoint=ckpt, progress=False).rows, run_grid(other, progress=False).rows)
    assert "different configuration" in capsys.readouterr().err


def test_seeds_in_one_run_equal_separate_runs():
    """A seed replaces the task stream and the initialisation; cells of different seeds never mix."""
    base = sinusoid_spec(alphas=[0.0, 0.1], betas=[0.01], optimizer="adam", slots=4)
    together = run_grid(dataclasses.replace(base, seeds=[3, 4]), progress=False, keep_params=True).rows
    assert [(r["alpha"], r["seed"]) for r in together] == [(0.0, 3), (0.0, 4), (0.1, 3), (0.1, 4)]
    for seed in (3, 4):
        alone = run_grid(dataclasses.replace(base, problem=dataclasses.replace(base.problem, seed=seed),
                                             init_seed=seed), progress=False, keep_params=True).rows
        mine = [r for r in together if r["seed"] == seed]
        for a, b in zip(alone, mine):
            assert a["final_loss"] == pytest.approx(b["final_loss"], rel=1e-12)
            for k in a["final_params"]:
                torch.testing.assert_close(a["final_params"][k], b["final_params"][k], rtol=1e-10, atol=1e-12)


def test_snapshots_survive_an_interruption(tmp_path):
    spec = sinusoid_spec(iterations=8)
    full = run_grid(spec, progress=False, snapshot_every=3).rows
    assert sorted(full[0]["snapshots"]) == [0, 3, 6, 8]  # multiples of 3, and the last
    ckpt = tmp_path / "grid.ckpt"
    assert run_grid(spec, checkpoint=ckpt, checkpoint_every=0.0, progress=False, max_steps=4, snapshot_every=3).stopped
    resumed = run_grid(spec, checkpoint=ckpt, progress=False, snapshot_every=3).rows
    for a, b in zip(full, resumed):
        assert sorted(a["snapshots"]) == sorted(b["snapshots"])
        for it in a["snapshots"]:
            for k in a["snapshots"][it]:
                assert torch.equal(a["snapshots"][it][k], b["snapshots"][it][k])


def test_a_module_of_ones_own_with_a_sampler_trains_the_same_cells_as_the_named_model():
    """What guideline.suggest runs: a module, a sampler function and explicit initial parameters."""
    problem = SinusoidTasks(tasks=5, seed=2)
    cells = [(0.0, 0.1), (0.01, 0.3), (0.3, 3.0)]
    named = run_grid(GridSpec(model="sinusoid_mlp", problem=problem, alphas=[], betas=[], pairs=cells,
                              iterations=15, init_seed=4, run=RunOptions(slots=2)), progress=False).rows
    module = models.sinusoid_mlp()
    own = run_grid(GridSpec(model=module, problem=SampledTasks(problem.sample), alphas=[], betas=[], pairs=cells,
                            iterations=15, init_params=models.initial_params(module, 4), loss=maml.mse,
                            run=RunOptions(slots=2)),
                   progress=False).rows
    assert pd.DataFrame(own).equals(pd.DataFrame(named))  # NaN where both diverged
    with pytest.raises(ValueError, match="only a grid of a named model"):
        GridSpec(model=module, problem=SampledTasks(problem.sample), alphas=[0.1], betas=[0.1],
                 iterations=1).fingerprint()


def test_how_a_grid_runs_is_no_part_of_its_fingerprint_and_the_committed_grids_keep_theirs(root):
    """A resume file written on other run options resumes (RunOptions); and the quick workflow's Fig. 4a grid
    has the fingerprint its committed reference records."""
    import json

    from maml_convergence import config, experiments

    spec = experiments.sinusoid_grid_spec(config.load(root / "config" / "quick.yaml"), "cpu")
    other = spec.with_run(device="cuda", slots=1, compile=True, task_loop=True, conv="unfold")
    assert other.fingerprint() == spec.fingerprint() != dataclasses.replace(spec, iterations=7).fingerprint()
    recorded = json.loads((root / "tests" / "reference" / "quick" / "data" / "fig4a" / "provenance.json").read_text())
    assert spec.fingerprint() == recorded["steps"]["grid"]["fingerprint"]

