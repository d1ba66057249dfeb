"""Few-shot image experiments: the CNN and its batch norm, the engine against higher and finite
differences on it, the episode sampler, and the grid on image tasks."""

import pytest
import torch

from maml_convergence import higher_backend, maml, models
from maml_convergence.grid import GridSpec, RunOptions, run_grid
from maml_convergence.tasks import Batch, FewShotTasks

F64 = torch.float64


def random_episodes(tasks=2, ways=5, shot=1, query=2, channels=1, size=28, seed=0, dtype=F64) -> Batch:
    g = torch.Generator().manual_seed(seed)
    labels = lambda k: torch.arange(ways).repeat_interleave(k).repeat(tasks, 1)
    return Batch(torch.rand(tasks, ways * shot, channels, size, size, generator=g, dtype=dtype), labels(shot),
                 torch.rand(tasks, ways * query, channels, size, size, generator=g, dtype=dtype), labels(query))


def setup(name="omniglot_cnn", **kw):
    model = models.build(name).double()
    params = models.initial_params(model, 0, F64)
    channels, size = (1, 28) if name == "omniglot_cnn" else (3, 84)
    return model, params, random_episodes(channels=channels, size=size, **kw)


def rel_err(a, b):
    num = torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a))
    return float(num / torch.sqrt(sum((b[k] ** 2).sum() for k in b)))


# --- batch norm: statistics of each task's own batch, nothing carried over ---------------

def test_batch_norm_uses_the_statistics_of_the_batch_it_is_given():
    bn = models.TaskBatchNorm(4).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 3.0]))
    x = torch.randn(7, 4, 5, 5, dtype=F64) * 3 + 2
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(bn(x), expected, rtol=1e-12, atol=1e-12)
    assert len(list(bn.buffers())) == 0  # no running statistics to leak between tasks
    bn.eval()  # and no mode in which other statistics would be used
    torch.testing.assert_close(bn(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["omniglot_cnn", "miniimagenet_cnn"])
def test_query_pass_with_the_fused_batch_norm_is_the_same_function_to_first_order(name):
    """The query passes (maml.query_loss) use F.batch_norm's kernel: same values, same gradients."""
    model, params, batch = setup(name)
    x, y = batch.xq[0], batch.yq[0]
    written = lambda p: maml.task_loss(model, p, x, y)
    fused = lambda p: maml.query_loss(model, p, x, y)
    torch.testing.assert_close(fused(params), written(params), rtol=1e-12, atol=0)
    assert rel_err(torch.func.grad(fused)(params), torch.func.grad(written)(params)) <= 1e-10
    assert model.first_order_kwargs == {"differentiated_once": True}


@pytest.mark.parametrize("name", ["omniglot_cnn", "miniimagenet_cnn"])
def test_a_task_is_scored_by_its_own_data_only(name):
    """MAML over [A, B] is the mean of MAML over [A] and over [B]: no task sees another's statistics."""
    model, params, batch = setup(name)
    pair = maml.meta_loss(model, params, batch, 0.4, inner_steps=2)
    one = lambda t: maml.meta_loss(model, params, Batch(*(v[t:t + 1] for v in (batch.xs, batch.ys, batch.xq,
                                                                              batch.yq))), 0.4, inner_steps=2)
    torch.testing.assert_close(pair, (one(0) + one(1)) / 2, rtol=1e-12, atol=0)


def test_cnn_shapes_match_finn_et_al():
    omni, mini = models.omniglot_cnn(), models.miniimagenet_cnn()
    conv = lambda c_in, c_out: c_out * c_in * 9 + c_out + 2 * c_out  # 3x3 conv with bias, then BN scale and shift
    assert models.param_count(models.initial_params(omni, 0)) == conv(1, 64) + 3 * conv(64, 64) + 64 * 5 + 5
    assert models.param_count(models.initial_params(mini, 0)) == conv(3, 32) + 3 * conv(32, 32) + 32 * 5 * 5 * 5 + 5
    assert omni(torch.zeros(3, 1, 28, 28)).shape == (3, 5)
    assert mini(torch.zeros(3, 3, 84, 84)).shape == (3, 5)


# --- the engine on the CNN -----------------------------------------------------------------

@pytest.mark.parametrize("order", ["second", "first"])
@pytest.mark.parametrize("name", ["omniglot_cnn", "miniimagenet_cnn"])
def test_engine_matches_higher_on_the_cnn(name, order):
    model, params, batch = setup(name)
    g_engine, l_engine = maml.meta_gradient(model, params, batch, 0.4, 2, order)
    g_higher, l_higher = higher_backend.meta_gradient(model, params, batch, 0.4, 2, order)
    assert rel_err(g_engine, g_higher) <= 1e-10
    assert abs(float(l_engine) - float(l_higher)) <= 1e-10 * abs(float(l_higher))


@pytest.mark.parametrize("order", ["second", "first"])
def test_task_loop_equals_vmap(order):
    model, params, batch = setup(tasks=3)
    g_loop, l_loop = maml.meta_gradient(model, params, batch, 0.4, 2, order, task_loop=True)
    g_vmap, l_vmap = maml.meta_gradient(model, params, batch, 0.4, 2, order, task_loop=False)
    assert rel_err(g_loop, g_vmap) <= 1e-12
    torch.testing.assert_close(l_loop, l_vmap, rtol=1e-12, atol=0)


@pytest.mark.parametrize("inner_steps", [1, 2])
@pytest.mark.parametrize("order", ["second", "first"])
@pytest.mark.parametrize("name", ["omniglot_cnn", "miniimagenet_cnn"])
def test_the_unfold_convolution_is_the_same_function(name, order, inner_steps):
    """The grid's other convolution (im2col and a matrix product, for GPUs): the same meta-gradient,
    vmapped over tasks as a GPU grid runs it."""
    native, params, batch = setup(name)
    unfold = models.build(name, conv="unfold").double()
    g_native, l_native = maml.meta_gradient(native, params, batch, 0.4, inner_steps, order, task_loop=False)
    g_unfold, l_unfold = maml.meta_gradient(unfold, params, batch, 0.4, inner_steps, order, task_loop=False)
    assert rel_err(g_unfold, g_native) <= 1e-10
    assert abs(float(l_unfold) - float(l_native)) <= 1e-10 * abs(float(l_native))


@pytest.mark.parametrize("conv", ["native", "unfold"])
def test_second_order_cnn_gradient_is_gradient_of_maml_objective(conv):
    _, params, batch = setup()
    model = models.build("omniglot_cnn", conv=conv).double()
    grads, _ = maml.meta_gradient(model, params, batch, 0.4, 2, "second", task_loop=True)
    gen = torch.Generator().manual_seed(3)
    for _ in range(2):
        v = {k: torch.randn(p.shape, generator=gen, dtype=F64) for k, p in params.items()}
        norm = torch.sqrt(sum((d ** 2).sum() for d in v.values()))
        v = {k: d / norm for k, d in v.items()}
        eps = 1e-6  # small enough not to cross a ReLU kink of this network
        f = lambda s: float(maml.meta_loss(model, {k: p + s * v[k] for k, p in params.items()}, batch, 0.4, 2))
        numeric = (f(eps) - f(-eps)) / (2 * eps)
        analytic = float(sum((grads[k] * v[k]).sum() for k in params))
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-10)


# --- episodes -----------------------------------------------------------------------------

@pytest.fixture()
def fake_omniglot(tmp_path, monkeypatch):
    """A prepared Omniglot file of random strokes, shaped as the real one."""
    import numpy as np

    from maml_convergence import data

    rng = np.random.default_rng(0)
    images = (rng.random((1623, 20, 28, 28)) > 0.2).astype(np.uint8) * 255
    path = tmp_path / "omniglot.npz"
    data._save_npz(path, images=images, names=np.array([f"c{i}" for i in range(1623)]))
    return str(path)


def test_episodes_are_well_formed_and_reproducible(fake_omniglot):
    tasks = FewShotTasks("omniglot", fake_omniglot, tasks=4)
    b = tasks.sample(7)
    assert b.xs.shape == (4, 5, 1, 28, 28) and b.xq.shape == (4, 75, 1, 28, 28)
    assert b.ys.tolist() == [list(range(5))] * 4
    assert b.yq.tolist() == [[c for c in range(5) for _ in range(15)]] * 4
    cls, rot, img = tasks.episode_indices(7)
    for t in range(4):
        pooled = (cls[t] * 4 + rot[t]).tolist()
        assert len(set(pooled)) == 5                 # five distinct (character, rotation) classes
        for c in range(5):
            assert len(set(img[t, c].tolist())) == 16  # 1 support + 15 query drawings, no repeats
    again = tasks.sample(7)
    assert all(torch.equal(getattr(b, f), getattr(again, f)) for f in ("xs", "ys", "xq", "yq"))
    assert not torch.equal(b.xq, tasks.sample(8).xq)
    assert float(b.xs.min()) >= 0.0 and float(b.xs.max()) <= 1.0


def test_rotations_are_new_classes(fake_omniglot):
    tasks = FewShotTasks("omniglot", fake_omniglot, tasks=8)
    cls, rot, img = tasks.episode_indices(0)
    b = tasks.sample(0)
    raw = tasks.classes()
    for t in range(8):
        for c in range(5):
            original = 1.0 - raw[cls[t, c], img[t, c, 0]].double() / 255
            torch.testing.assert_close(b.xs[t, c].double(), original.rot90(int(rot[t, c]), (-2, -1)),
                                       rtol=0, atol=1e-6)
    assert set(rot.flatten().tolist()) == {0, 1, 2, 3}


def test_image_grid_cells_equal_a_plain_loop_and_slots_do_not_matter(fake_omniglot):
    problem = FewShotTasks("omniglot", fake_omniglot, tasks=2, k_query=2, eval_tasks=2)
    spec = GridSpec(model="omniglot_cnn", problem=problem, alphas=[0.1, 0.5], betas=[0.3], iterations=2,
                    inner_steps=2, dtype="float64", run=RunOptions(slots=1, task_loop=True))
    rows = run_grid(spec, progress=False, keep_params=True).rows
    vmapped = run_grid(spec.with_run(slots=2, task_loop=False), progress=False, keep_params=True).rows
    model = models.build("omniglot_cnn").double()
    for row, other in zip(rows, vmapped):
        params = models.initial_params(model, 0, F64)
        for it in range(2):
            grads, _ = maml.meta_gradient(model, params, problem.sample(it, dtype=F64), row["alpha"], 2)
            params = {k: p - row["beta"] * grads[k] for k, p in params.items()}
        assert rel_err(row["final_params"], params) <= 1e-12
        assert rel_err(other["final_params"], params) <= 1e-12
        assert row["final_loss"] == pytest.approx(other["final_loss"], rel=1e-12)


def test_an_image_grid_runs_the_convolution_it_is_given_with_the_same_results(fake_omniglot):
    problem = FewShotTasks("omniglot", fake_omniglot, tasks=2, k_query=2, eval_tasks=2)
    spec = GridSpec(model="omniglot_cnn", problem=problem, alphas=[0.0, 0.5], betas=[0.3, 30.0], iterations=2,
                    inner_steps=2, dtype="float64", run=RunOptions(slots=2, conv="native"))
    native = run_grid(spec, progress=False, keep_params=True).rows
    for conv in ("unfold", "auto"):  # auto is native on a CPU
        result = run_grid(spec.with_run(conv=conv), progress=False, keep_params=True)
        assert result.conv == result.run_info["conv"] == ("unfold" if conv == "unfold" else "native")
        for row, other in zip(result.rows, native):
            assert row["status"] == other["status"]
            if row["status"] == "ok":
                assert rel_err(row["final_params"], other["final_params"]) <= 1e-10


def test_query_accuracy_is_the_share_classified_right_after_adaptation():
    """Against the same adaptation written with plain autograd, one task at a time."""
    model, params, batch = setup(tasks=3, query=4)
    alpha, steps = 0.4, 2
    right = []
    for t in range(3):
        p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        for _ in range(steps):
            grads = torch.autograd.grad(maml.task_loss(model, p, batch.xs[t], batch.ys[t]), list(p.values()))
            p = {k: v - alpha * g for (k, v), g in zip(p.items(), grads)}
        logits = torch.func.functional_call(model, p, (batch.xq[t],))
        right.append((logits.argmax(-1) == batch.yq[t]).double().mean())
    assert float(maml.query_accuracy(model, params, batch, alpha, steps)) == pytest.approx(float(sum(right) / 3),
                                                                                        abs=1e-12)
    # without adaptation it is the plain accuracy of the initial parameters (batch norm: each task's own batch)
    plain = sum((torch.func.functional_call(model, params, (xq,)).argmax(-1) == yq).double().mean()
                for xq, yq in zip(batch.xq, batch.yq)) / 3
    assert float(maml.query_accuracy(model, params, batch, 0.0, steps)) == pytest.approx(float(plain), abs=1e-12)


# --- torch's batch norm in a model of one's own (guideline.suggest) ----------------------

def small_cnn(norm: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), norm, torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5)).double()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.affine:
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


@pytest.mark.parametrize("order", ["second", "first"])
def test_torch_batch_norm_in_training_mode_is_run_written_out_with_exact_meta_gradients(order):
    """nn.BatchNorm2d in training mode updates its running statistics in place (torch.func refuses
    that inside grad): the copy runs it written out, the same function under the same parameter
    names, and its meta-gradient equals higher's plain-autograd one on the original module."""
    model = small_cnn(torch.nn.BatchNorm2d(4))
    written = models.with_task_batch_norm(model)
    assert isinstance(written[1], models.TaskBatchNorm) and isinstance(model[1], torch.nn.BatchNorm2d)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    assert list(params) == [k for k, _ in written.named_parameters()]
    batch = random_episodes(tasks=2, size=8)
    torch.testing.assert_close(torch.func.functional_call(written, params, (batch.xs[0],)), model(batch.xs[0]),
                               rtol=1e-12, atol=1e-12)
    got, _ = maml.meta_gradient(written, params, batch, 0.3, inner_steps=2, order=order)
    want, _ = higher_backend.meta_gradient(model, params, batch, 0.3, inner_steps=2, order=order)
    assert rel_err(got, want) <= 1e-10


def test_batch_norm_of_any_shape_without_affine_and_in_eval_mode():
    bn1d = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.BatchNorm1d(6, affine=False), torch.nn.Linear(6, 1))
    bn1d = bn1d.double()
    x = torch.randn(9, 3, dtype=F64)
    written = models.with_task_batch_norm(bn1d)
    assert isinstance(written[1], models.TaskBatchNorm) and written[1].weight is None
    torch.testing.assert_close(written(x), bn1d(x), rtol=1e-12, atol=1e-12)
    frozen = small_cnn(torch.nn.BatchNorm2d(4)).eval()  # running statistics: a fixed affine map, kept
    assert isinstance(models.with_task_batch_norm(frozen)[1], torch.nn.BatchNorm2d)
    no_stats = small_cnn(torch.nn.BatchNorm2d(4, track_running_stats=False)).eval()  # batch statistics always
    assert isinstance(models.with_task_batch_norm(no_stats)[1], models.TaskBatchNorm)


# --- an image-grid step says how long it will take, and stops above a limit ---------------

def test_an_image_grid_step_projects_its_time_and_stops_over_the_limit_keeping_its_resume_file(tmp_path, capsys):
    import re

    import yaml

    from maml_convergence import cli, projection
    # 3 alphas x 2 betas, 4 iterations: chunk 0 of 2 is 3 cells, 12 meta-iterations on the CPU; the pace is
    # timed over the 3 after the first, so the stopped run did 4 and the resumed one times its own pace
    small = {"device": "cpu", "omniglot": {
        "iterations": 4, "tasks": 2, "eval_tasks": 2, "heldout_tasks": 2, "k_query": 5,
        "alpha_range": [0.03, 0.3], "beta_range": [0.03, 0.3], "mantissas": [3], "max_projected_hours": 1e-9}}
    configfile = tmp_path / "small.yaml"
    configfile.write_text(yaml.safe_dump(small))
    out, ckpt = tmp_path / "grid.csv", tmp_path / "grid.ckpt"
    step = ["image-grid", "--configfile", str(configfile), "--dataset", "omniglot", "--chunk", "0", "--chunks", "2",
            "--out", str(out), "--provenance", str(tmp_path / "provenance.json"), "--checkpoint", str(ckpt)]

    assert cli.main(step) == 2
    said = capsys.readouterr()
    assert re.search(r"cell-iterations/s on cpu: this step's 12 cell-iterations take at most .*, the whole grid's 24 ",
                     said.out), said.out
    assert "make reproduce" in said.out and "profiles/slurm" in said.out
    refusal = [line for line in said.err.splitlines() if line.startswith("maml-convergence:")]
    assert len(refusal) == 1 and "omniglot.max_projected_hours = 1e-09: stopped" in refusal[0], said.err
    assert not out.exists() and ckpt.exists()  # nothing looks complete; the work done so far is kept

    assert cli.main(step + ["--max-projected-hours", "1000"]) == 0  # a higher limit resumes and finishes
    said = capsys.readouterr()
    assert f"Limit: {projection.hours(1000)} (--max-projected-hours)" in said.out and out.exists() and not ckpt.exists()
    with pytest.raises(SystemExit) as refused:  # refused at parse time, before anything is read
        cli.main(step + ["--max-projected-hours", "nan"])
    assert refused.value.code == 2
    assert "argument --max-projected-hours: nan is not a number > 0" in capsys.readouterr().err
