"""The one resume file of every interruptible step: read back only for the same computation, written
atomically, a file cut short ignored; and each resumable step resumes through it to identical results."""

import json

import pandas as pd
import pytest
import torch

from maml_convergence import cli, experiments
from maml_convergence.checkpoint import Checkpoint
from maml_convergence.grid import run_grid
from maml_convergence.provenance import atomic_write, atomic_write_text
from test_grid import same_rows, sinusoid_spec


def test_a_checkpoint_reads_back_its_state_and_counts_every_part(tmp_path, capsys):
    path = tmp_path / "x.ckpt"
    first = Checkpoint(path, "abc", "step", started=0.0)  # as if this run began long ago
    assert first.load() is None and first.run_info() == {"earlier_seconds": 0.0, "resumed": 0}
    first.save({"done": [1, 2]})
    again = Checkpoint(path, "abc", "step")
    assert again.load() == {"done": [1, 2]}
    assert again.resumed == 1 and again.earlier_seconds >= first.elapsed - 1  # the first part's time
    again.save({"done": [1, 2, 3]})
    third = Checkpoint(path, "abc", "step")
    assert third.load() == {"done": [1, 2, 3]} and third.resumed == 2
    assert "resuming from checkpoint" in capsys.readouterr().err
    third.remove()
    assert not path.exists()


def test_another_computations_file_and_a_file_cut_short_are_ignored_with_one_line(tmp_path, capsys):
    path = tmp_path / "x.ckpt"
    Checkpoint(path, "abc", "step").save({"done": list(range(1000))})
    assert Checkpoint(path, "other", "step").load() is None
    assert "[step] ignoring checkpoint" in capsys.readouterr().err
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # what a crash mid-write would leave
    assert Checkpoint(path, "abc", "step").load() is None
    assert "unreadable" in capsys.readouterr().err


def test_an_interrupted_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path) as tmp:
            tmp.write_text("half of the ne")
            raise KeyboardInterrupt
    assert path.read_text() == "old" and not list(tmp_path.glob("*.tmp"))


def test_a_grid_checkpoint_cut_short_starts_over_to_identical_results(tmp_path):
    spec = sinusoid_spec(alphas=[0.01, 0.3], betas=[0.01, 5.0], iterations=6, slots=2)
    full = run_grid(spec, progress=False).rows
    ckpt = tmp_path / "grid.ckpt"
    assert run_grid(spec, checkpoint=ckpt, checkpoint_every=0.0, progress=False, max_steps=3).stopped
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    assert same_rows(run_grid(spec, checkpoint=ckpt, progress=False).rows, full)


def test_the_curvature_analysis_of_fig5_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """fig5-analysis keeps every snapshot it analysed; a rerun analyses only the others and writes the
    same table, its provenance counting the earlier part."""
    snapshots = {"fingerprint": "f", "provenance": {}, "snapshots": {it: {"w": torch.tensor([it / 2])}
                                                                     for it in (0, 10, 20)}}
    torch.save(snapshots, tmp_path / "snapshots.pt")
    analysed, interrupt = [], [True]

    def tg_h2(model, params, xs, ys):  # the exact analysis of one snapshot, stood in for by its marker
        value = float(params["w"][0])
        if value == 10 and interrupt[0]:
            raise KeyboardInterrupt  # Ctrl-C after two snapshots
        analysed.append(value)
        return {"batch": {"value": value}}

    monkeypatch.setattr(experiments.curvature_mlp, "tg_h2", tg_h2)
    args = ["fig5-analysis", "--configfile", "--snapshots", str(tmp_path / "snapshots.pt"), "--out",
            str(tmp_path / "curvature.csv"), "--provenance", str(tmp_path / "p.json"), "--checkpoint",
            str(tmp_path / "analysis.ckpt")]
    assert cli.main(args) == 130 and (tmp_path / "analysis.ckpt").exists()
    assert analysed == [0.0, 5.0]
    analysed.clear()
    interrupt[0] = False
    assert cli.main(args) == 0
    assert analysed == [10.0]  # only the snapshot the interrupted run had not finished
    assert pd.read_csv(tmp_path / "curvature.csv").value.tolist() == [0.0, 5.0, 10.0]
    assert json.loads((tmp_path / "p.json").read_text())["resumed"] == 1
    assert not (tmp_path / "analysis.ckpt").exists()
