"""The guideline tool: exact curvature and a converging recommendation on the quadratic, a model with
torch's batch norm on classification, determinism, one message per broken protocol, and the command."""

import dataclasses
import json
import math
import subprocess

import numpy as np
import pytest
import torch
from torch import nn

from conftest import env_with_bin
from maml_convergence import curvature, guideline, models, theory
from maml_convergence.tasks import LinearRegressionTask, ProtocolError, SinusoidTasks


@pytest.fixture(scope="module")
def quadratic():
    """The paper's Appendix C problem: one linear-regression task, the same points in both steps."""
    model = models.linear_model().double()
    params = models.initial_params(model, seed=0, dtype=torch.float64)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(params[name])
    task = LinearRegressionTask(seed=0)
    batch = task.sample(dtype=torch.float64)
    result = guideline.suggest(model, lambda i: batch, budget_seconds=600, iterations=100, verbose=False)
    H = curvature.flat_hessian(lambda p: ((torch.func.functional_call(model, p, (batch.xs[0],)) - batch.ys[0]) ** 2)
                               .mean(), params).numpy()
    return result, H


def test_on_the_quadratic_the_curvature_is_the_closed_form(quadratic):
    result, H = quadratic
    eig = np.linalg.eigvalsh(H)
    assert result.lambda_max == pytest.approx(eig.max(), rel=1e-9)
    assert result.eigenvalues[:2] == pytest.approx(sorted(eig, reverse=True), rel=1e-9)
    assert result.alpha_c == pytest.approx(1 / eig.max(), rel=1e-9)
    assert result.beta_bound_exact == pytest.approx(theory.exact_beta_bound(result.alpha, eig, "second")[0], rel=1e-9)
    # the MAML objective's Hessian on this quadratic is (I - aH) H (I - aH): 2 / its top eigenvalue is the exact bound
    assert result.beta_bound_maml_hessian == pytest.approx(result.beta_bound_exact, rel=1e-8)


def margin_cells(result) -> list[tuple[float, float, float]]:
    """(mean final loss, alpha, beta) of the report's probe cells that trained with the next beta rung up stable."""
    rows = [r for r in result.probe if r["beta"] == guideline._rung_value(guideline._rung(r["beta"]))]
    outcome = {(r["alpha"], r["beta"]): r["outcome"] for r in rows}
    return [(r["final_loss"], r["alpha"], r["beta"]) for r in rows if r["outcome"] == "trained"
            and outcome.get((r["alpha"], guideline._rung_value(guideline._rung(r["beta"]) + 1))) in guideline.STABLE]


def test_on_the_quadratic_both_cells_converge_and_the_guideline_tunes_beta_at_the_papers_alpha(quadratic):
    result, H = quadratic
    guide, recommended = result.guideline, result.recommended
    assert (result.alpha, result.beta, result.rule) == (recommended["alpha"], recommended["beta"], "recommended")
    for cell in (guide, recommended):  # each (alpha, beta) converges, exactly
        assert max(abs(np.linalg.eigvals(theory.iteration_matrix(H, cell["alpha"], cell["beta"], "second")))) < 1
    # the paper's alpha: the largest that trained one rung below the edge; there the tuned beta, recomputed
    # from the probe's rows: the lowest loss with a stable rung above it, as for the recommended cell
    trained = sorted({r["alpha"] for r in result.probe if r["alpha"] > 0 and r["outcome"] == "trained"})
    assert guide["alpha_edge"] == trained[-1]
    assert guide["alpha"] == max(a for a in trained if a <= guide["alpha_edge"] / guideline.ALPHA_SAFETY * (1 + 1e-9))
    loss, _, beta = min(c for c in margin_cells(result) if c[1] == guide["alpha"])
    assert (guide["beta"], guide["final_loss"], guide["outcome"]) == (beta, pytest.approx(loss), "trained")
    # the probe's largest stable rung there is below the exact bound (a short run may overestimate it, by less
    # than one rung here)
    assert guide["beta_max"] <= theory.exact_beta_bound(guide["alpha"], np.linalg.eigvalsh(H), "second")[0]
    report = json.loads(result.to_json())
    assert {"alpha", "beta", "alpha_c", "lambda_max", "beta_bound_paper", "beta_bound_exact", "probe"} <= set(report)
    assert {row["outcome"] for row in report["probe"]} <= {"trained", "flat", "rose", "diverged"}


def test_the_recommended_cell_is_the_lowest_loss_with_a_stable_rung_above_and_the_ladder_reaches_below_it(quadratic):
    """Recomputed from the report's own probe rows: among the ladder cells that trained, with the next beta
    rung up stable, the lowest mean loss; and at least BELOW_BEST alphas of the probe lie below it."""
    result, _ = quadratic
    loss, alpha, beta = min(c for c in margin_cells(result) if c[1] > 0)
    assert (result.recommended["alpha"], result.recommended["beta"]) == (alpha, beta)
    assert result.recommended["final_loss"] == pytest.approx(loss)
    assert len({r["alpha"] for r in result.probe if 0 < r["alpha"] < alpha}) >= guideline.BELOW_BEST
    assert not result.cut_short


def probe_reading_its_checkpoint(streams):
    """A probe with no model and no time limit: every cell it is asked for must be in ``probe.run.resume.cells``."""
    setup = guideline.ProbeSettings(**dict.fromkeys(f.name for f in dataclasses.fields(guideline.ProbeSettings)))
    setup = dataclasses.replace(setup, layout={}, ceiling=math.inf, iterations=10, streams=streams)
    run = guideline._Run(setup=setup, resume=guideline._Checkpoint(None, "", started=0.0), say=lambda text: None,
                         verbose=False, rule="recommended", budget_seconds=math.inf, started=0.0)
    return guideline._Probe(run)


def fake_probe(stable_below, loss, streams=2):
    """A probe whose every cell is read from its checkpoint (nothing trains): on stream s, (alpha, beta) is stable
    when beta < stable_below(alpha, s), and then ends at loss(alpha, beta); every start is 2."""
    probe = probe_reading_its_checkpoint(streams)
    alphas = [0.0] + [guideline._rung_value(r) for r in range(-10, 3)]
    betas = [guideline._rung_value(r) for r in range(-10, 6)]
    probe._start = dict.fromkeys(alphas, 2.0)
    probe.run.resume.cells = {(a, b): [{"status": "ok", "final_loss": loss(a, b), "diverged_at": -1}
                                   if b < stable_below(a, s) else
                                   {"status": "diverged", "final_loss": math.nan, "diverged_at": 3}
                                   for s in range(streams)] for a in alphas for b in betas}
    return probe


def test_on_a_known_grid_the_probe_recommends_the_best_cell_stable_on_every_stream_with_a_margin():
    # stable below beta = 1, except at alpha = 0.01 on stream 1, which diverges from beta = 0.316; the loss falls
    # with beta and is lowest near alpha = 0.008. With one stream the answer is alpha = 0.01, beta = 0.1 (loss
    # 1.101); with both, that cell has no stable rung above it, and the answer moves to alpha = 0.00316, beta = 0.1
    # (loss 1.116), found by extending the ladder below its bottom (0.01).
    stable_below = lambda a, s: 0.3 if (s == 1 and a == 0.01) else 1.0
    loss = lambda a, b: 1 + 0.1 * (math.log10(a) + 2.1) ** 2 - 0.1 * math.log10(b) if a > 0 else 1.5
    ladder = [guideline._rung_value(r) for r in range(-4, 1)]  # 0.01 ... 1
    answers = {}
    for streams in (1, 2):
        probe = fake_probe(stable_below, loss, streams)
        probe.search([0.0] + ladder, 0.1)
        answers[streams] = probe.recommend(0.1)
    assert (answers[1]["alpha"], answers[1]["beta"]) == (0.01, 0.1)
    assert (answers[2]["alpha"], answers[2]["beta"]) == (0.00316227766017, 0.1)
    assert answers[2]["final_loss"] == pytest.approx(loss(0.00316227766017, 0.1))
    assert (answers[2]["margin_beta"], answers[2]["margin_outcome"]) == (0.316227766017, "trained")
    assert 0.000316227766017 in probe.columns  # two rungs below the answer, where the loss rises again
    assert "margin" in {r["phase"] for r in probe.rows}  # alpha = 0.01's beta = 0.0316, below its top stable rung


def test_a_fall_from_a_start_wrecked_by_the_inner_step_is_not_training_and_the_worst_stream_counts():
    """At a large alpha the inner step wrecks the model: its meta-loss starts far above the model's own
    (alpha = 0). Ending 10 % below that start, but above the model's own, is 'flat', not 'trained'. Over
    two streams a cell takes its worst outcome."""
    probe = probe_reading_its_checkpoint(streams=2)
    probe._start = {0.0: 1.6, 10.0: 38.0}
    ok = lambda loss: {"status": "ok", "final_loss": loss, "diverged_at": -1}
    probe.run.resume.cells = {(0.0, 1.0): [ok(1.2), ok(1.3)], (10.0, 0.1): [ok(4.3), ok(1.2)],
                          (10.0, 0.03): [ok(1.3), ok(1.2)], (0.0, 3.0): [ok(1.2), ok(1.7)],
                          (0.0, 10.0): [ok(1.2), {"status": "diverged", "final_loss": math.nan, "diverged_at": 4}]}
    probe.rounds, probe.seconds_per_cell = 1, 1.0  # a round has run: the next one checks the time left ...
    probe.run.budget_end = 0  # ... and there is none: the cells come from its checkpoint all the same
    assert probe.train(list(probe.run.resume.cells), "search") == ["trained", "flat", "trained", "rose", "diverged"]
    assert probe.rows[0]["final_loss"] == pytest.approx(1.25)
    assert probe.rows[3]["stream_outcomes"] == ["trained", "rose"]


def test_the_same_seed_and_settings_give_the_same_report_whatever_the_budget_unless_it_cuts_the_probe_short():
    def run(budget, **kw):
        torch.manual_seed(0)
        report = json.loads(guideline.suggest(models.sinusoid_mlp(), SinusoidTasks(tasks=5, seed=3).sample,
                                              budget_seconds=budget, iterations=15, seed=1, verbose=False,
                                              **kw).to_json())
        for key in ("seconds", "settings"):
            report.pop(key)
        return report

    first = run(600)
    assert run(900) == first and not first["cut_short"]  # the budget is a cap, not the probe's length
    paper = run(600, rule="paper")  # the same probe, answered with the paper's guideline
    assert (paper["alpha"], paper["beta"]) == (first["guideline"]["alpha"], first["guideline"]["beta"])
    assert paper["probe"] == first["probe"] and paper["recommended"] == first["recommended"]
    short = run(0.2)
    assert short["cut_short"] and any("cut the probe short" in note for note in short["notes"])
    assert len(short["probe"]) < len(first["probe"])


@pytest.mark.slow
def test_the_default_probe_length_picks_a_cell_near_the_best_where_five_iterations_mislead():
    """The sinusoid MLP on one fixed meta-batch of 10 tasks, so only the probe's length differs: a probe of 5
    iterations per cell recommends a cell that, trained 300 meta-iterations, ends at more than twice the loss of
    the best cell of a half-decade scan; the default probe (guideline.ITERATIONS) one within 1.3x of it
    (benchmarks/probe_length.py prints this case among others)."""
    from maml_convergence.grid import GridSpec, RunOptions, run_grid
    from maml_convergence.tasks import SampledTasks

    batch = SinusoidTasks(tasks=10, seed=0).sample(0)
    sampler = lambda i: batch  # noqa: E731

    def start():
        torch.manual_seed(0)
        return models.sinusoid_mlp()

    rung = lambda v: round(2 * math.log10(v)) if v > 0 else None  # noqa: E731
    ladder = [10 ** (k / 2) for k in range(-6, 1)]
    spec = GridSpec(model=start(), problem=SampledTasks(sampler), alphas=[0.0] + ladder[:-1], betas=ladder[1:],
                    iterations=300, run=RunOptions(slots=42))
    scan = {(rung(r["alpha"]), rung(r["beta"])): math.inf if r["status"] == "diverged" else r["final_loss"]
            for r in run_grid(spec, progress=False).rows}
    best = min(scan.values())

    def trained_to(**kw):
        cell = guideline.suggest(start(), sampler, seed=1, verbose=False, **kw).recommended
        return scan[(rung(cell["alpha"]), rung(cell["beta"]))] / best

    assert trained_to(iterations=5) > 2.0
    assert trained_to() < 1.3


def test_an_interrupted_probe_resumes_from_its_checkpoint_to_the_same_report(tmp_path, monkeypatch):
    """The checkpoint holds every cell trained so far: a rerun trains only the missing ones and ends with
    the same report (what kill -9 in the middle of the probe leaves is a checkpoint with fewer cells)."""
    def run(**kw):
        torch.manual_seed(0)  # the same starting parameters: the checkpoint is for this model
        report = json.loads(guideline.suggest(models.sinusoid_mlp(), SinusoidTasks(tasks=5, seed=3).sample,
                                              budget_seconds=600, iterations=15, verbose=False, **kw).to_json())
        return {k: v for k, v in report.items() if k not in ("seconds", "settings")}

    ckpt = tmp_path / "suggest.ckpt"
    whole = run(checkpoint=ckpt)
    saved = torch.load(ckpt, weights_only=False)
    cells = set(saved["state"]["cells"])
    assert cells == {(r["alpha"], r["beta"]) for r in whole["probe"]}  # every cell the probe trained
    kept = dict(list(saved["state"]["cells"].items())[:5])  # as if killed after its first five cells
    torch.save({**saved, "state": {**saved["state"], "cells": kept}}, ckpt)
    trained = []
    real = guideline.probe.run_grid
    monkeypatch.setattr(guideline.probe, "run_grid", lambda spec, **kw: trained.extend(spec.pairs) or real(spec, **kw))
    assert run(checkpoint=ckpt) == whole
    assert len(trained) == len(cells) - 5 and set(trained).isdisjoint(kept)
    trained.clear()
    assert run(checkpoint=ckpt) == whole and trained == []  # a complete checkpoint: nothing is trained again


class UpdatesABuffer(nn.Module):
    """A forward that counts its calls in place: not a function of its inputs and parameters."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 1)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.lin(x)


def regression(i, tasks=3, points=4):
    x = torch.linspace(-1, 1, tasks * points).view(tasks, points, 1)
    return x, 2 * x, x, 2 * x


@pytest.mark.parametrize("model,sampler,message", [
    (lambda: list(nn.Linear(1, 1).parameters()), regression, "must be a torch.nn.Module"),
    (lambda: nn.Linear(1, 1), lambda i: regression(i)[:3], "four tensors .* it returned tuple of length 3"),
    (lambda: nn.Linear(1, 1), lambda i: ([[0.0]], *regression(i)[1:]), "its xs is a list, not a torch.Tensor"),
    (lambda: nn.Linear(1, 1), lambda i: (regression(i)[0][:2], *regression(i)[1:]), "task axes differ"),
    (lambda: nn.Linear(1, 3), regression, r"shaped like the targets \(4, 1\); it returned \(4, 3\)"),
    (lambda: nn.Linear(1, 3), lambda i: (regression(i)[0], torch.full((3, 4), 3), regression(i)[2],
                                         torch.full((3, 4), 3)), r"class labels must lie in \[0, 3\)"),
    (lambda: UpdatesABuffer(), regression, "failed under torch.func"),
    (lambda: nn.Linear(1, 1), "tasks.pt", "sample_tasks: cannot read tasks from the str 'tasks.pt'"),
])
def test_a_broken_protocol_stops_with_one_message_saying_what_was_expected(model, sampler, message):
    with pytest.raises(ProtocolError, match=message):
        guideline.suggest(model(), sampler, budget_seconds=5, verbose=False)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="budget_seconds must be a positive number"):
        guideline.suggest(nn.Linear(1, 1), regression, budget_seconds=float("nan"))
    with pytest.raises(ValueError, match="iterations must be an integer >= 1"):
        guideline.suggest(nn.Linear(1, 1), regression, iterations=0)
    with pytest.raises(ValueError, match="streams must be an integer >= 1"):
        guideline.suggest(nn.Linear(1, 1), regression, streams=0)
    with pytest.raises(ValueError, match="rule must be one of"):
        guideline.suggest(nn.Linear(1, 1), regression, rule="best")


def run_cli(bin_dir, *args, cwd=None):
    return subprocess.run([str(bin_dir / "maml-convergence"), "suggest", *args], capture_output=True, text=True,
                          cwd=cwd, env=env_with_bin(bin_dir))


@pytest.mark.slow
def test_the_command_on_a_problem_of_the_paper_prints_one_json_line_last(bin_dir, tmp_path):
    proc = run_cli(bin_dir, "--problem", "linear", "--budget-seconds", "60", "--iterations", "30",
                   "--out", str(tmp_path / "report.json"), "--figure", str(tmp_path / "probe.png"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"alpha", "beta", "guideline", "recommended", "alpha_c", "lambda_max"} <= set(last) and last["alpha"] > 0
    assert (last["alpha"], last["beta"], last["rule"]) == (last["recommended"]["alpha"], last["recommended"]["beta"],
                                                           "recommended")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["alpha"] == last["alpha"] and report["problem"] == "linear" and "provenance" in report
    assert (tmp_path / "probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[suggest] round 1" in proc.stderr  # progress on stderr


@pytest.mark.slow
def test_the_command_on_a_model_of_ones_own_and_its_errors(bin_dir, tmp_path):
    (tmp_path / "mine.py").write_text(
        "import torch\n"
        "def model():\n    return torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))\n"
        "def tasks(i):\n"
        "    x = torch.linspace(-2, 2, 30).view(3, 10, 1)\n"
        "    y = torch.sin(x + torch.arange(3).view(3, 1, 1) * 0.5)\n"
        "    return x, y, x, y\n"
        "def broken(i):\n    return 'not a batch'\n")
    proc = run_cli(bin_dir, "--model", "mine:model", "--tasks", "mine:tasks", "--budget-seconds", "30",
                   "--iterations", "20", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["lambda_max"] > 0
    proc = run_cli(bin_dir, "--model", "mine:model", "--tasks", "mine:tasks", "--budget-seconds", "30",
                   "--iterations", "20", "--rule", "paper", cwd=tmp_path)
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    guide = last["guideline"]
    assert (last["alpha"], last["beta"], last["rule"]) == (guide["alpha"], guide["beta"], "paper")
    for args, message in ((["--model", "nosuch:model", "--tasks", "mine:tasks"], "--model nosuch:model: cannot import"),
                          (["--model", "mine:model", "--tasks", "mine:broken"], "must return a Batch or four tensors"),
                          (["--model", "mine:model"], "give --problem, or --model and --tasks")):
        proc = run_cli(bin_dir, *args, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_an_interrupt_inside_a_torchscript_kernel_is_reported_as_an_interruption(monkeypatch, capsys, tmp_path):
    """SIGTERM during a Hessian-vector product reaches Python as a RuntimeError from TorchScript."""
    from maml_convergence import cli, user_commands

    def interrupted(args):
        raise RuntimeError("The following operation failed in the TorchScript interpreter.\n"
                           "RuntimeError: KeyboardInterrupt: <EMPTY MESSAGE>")

    monkeypatch.setattr(user_commands, "cmd_suggest", interrupted)
    assert cli.main(["suggest", "--problem", "linear"]) == 130
    assert capsys.readouterr().err == ("maml-convergence: interrupted; nothing was kept to resume from (give "
                                       "--checkpoint FILE to keep it)\n")
    kept = tmp_path / "suggest.ckpt"
    kept.write_bytes(b"a resume file")
    assert cli.main(["suggest", "--problem", "linear", "--checkpoint", str(kept)]) == 130
    assert capsys.readouterr().err == f"maml-convergence: interrupted; rerun the same command to resume from {kept}\n"
    monkeypatch.setattr(user_commands, "cmd_suggest", lambda args: (_ for _ in ()).throw(RuntimeError("a real error")))
    with pytest.raises(RuntimeError, match="a real error"):
        cli.main(["suggest", "--problem", "linear"])


def test_an_interrupted_paper_grid_says_where_the_running_chunk_resumes_from(monkeypatch, capsys, tmp_path):
    from maml_convergence import cli, user_commands

    def interrupted(args):
        (tmp_path / "chunk-009.ckpt").write_bytes(b"a resume file")
        raise KeyboardInterrupt

    monkeypatch.setattr(user_commands, "cmd_paper_grid", interrupted)
    assert cli.main(["paper-grid", "--scratch", str(tmp_path)]) == 130
    said = capsys.readouterr().err
    assert said == f"maml-convergence: interrupted; rerun the same command to resume from {tmp_path}\n"


def test_a_report_with_neither_cell_is_checked_as_an_empty_table_not_an_error(tmp_path, bin_dir):
    """In the workflow suggest records that no probe cell trained; the check step then trains nothing and says so,
    and the claims read the missing cells (tests/test_claims.py)."""
    report = tmp_path / "suggestion.json"
    report.write_text(json.dumps({"problem": "sinusoid", "recommended": None, "guideline": None}))
    out = tmp_path / "check.csv"
    proc = subprocess.run(["maml-convergence", "guideline-check", "--problem", "sinusoid", "--suggestion", str(report),
                           "--out", str(out), "--provenance", str(tmp_path / "provenance.json")],
                          capture_output=True, text=True, env=env_with_bin(bin_dir))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "holds neither cell; nothing to train" in proc.stdout
    assert out.read_text().strip() == "alpha,beta,status,final_loss,suggested"
    assert json.loads((tmp_path / "provenance.json").read_text())["cells"] == {}


def test_the_report_says_when_the_probe_could_not_separate_its_best_cells():
    apart = [{"alpha": 0.1, "beta": 1.0, "final_losses": [0.10, 0.12]},
             {"alpha": 0.3, "beta": 1.0, "final_losses": [0.30, 0.31]},
             {"alpha": 1.0, "beta": 0.1, "final_losses": [0.50, 0.90]}]
    assert guideline.unseparated(apart, 2) == []  # best and runner-up 0.195 apart, spreads 0.02 and 0.01
    close = apart[:1] + [{"alpha": 0.03, "beta": 3.0, "final_losses": [0.09, 0.16]}]  # 0.015 apart, spread 0.07
    (note,) = guideline.unseparated(close, 2)
    assert "alpha 0.1, beta 1" in note and "alpha 0.03, beta 3" in note and "2 task streams" in note
    assert "--iterations" in note and "--streams" in note
    assert guideline.unseparated(apart[:1], 2) == []  # one cell: nothing to separate
