"""The paper-scale Fig. 4b accumulates from chunks: each kept whole the moment it is done, the same chunk computed
twice gives identical rows, chunks of another grid or edited by hand are refused with one line naming the file,
and the merge holds exactly the chunks present (on a small grid of the same shape)."""

import dataclasses
import json
import shutil
import time

import pandas as pd
import pytest
import yaml

from maml_convergence import cli, config, data, experiments, paper_grid
from maml_convergence.grid import run_grid

# 3 alphas x 2 betas, 2 iterations, moderate rates: the paper grid's shape at a size a test can afford
SMALL = {
    "omniglot": {"iterations": 2, "tasks": 2, "eval_tasks": 2, "heldout_tasks": 2, "k_query": 5,
                 "alpha_range": [0.03, 0.3], "beta_range": [0.03, 0.3], "mantissas": [3]},
    "paper_grid": {"chunks": 3, "folder": "unused"},
}
SMALL_CFG = config.deep_merge(config.load(), SMALL)


def compute(configfile, folder, *extra):
    return cli.main(["paper-grid", "--configfile", str(configfile), "--into", str(folder),
                     "--scratch", str(folder.parent / "scratch"), *extra])


def merge(configfile, folder, out, dataset_sha256):
    record = out / "record.json"
    record.write_text(json.dumps({"sha256": dataset_sha256}))
    return cli.main(["paper-grid-merge", "--configfile", str(configfile), "--folder", str(folder),
                     "--dataset-record", str(record), "--out", str(out / "grid.csv"),
                     "--provenance", str(out / "provenance.json")])


def dataset_sha256():
    return data.file_hash(data.prepared_path(config.resolve_path(SMALL_CFG["data"]["root"]), "omniglot"))


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    """The small grid's configfile, and a folder holding its chunks 0 and 1, computed in one run."""
    root = tmp_path_factory.mktemp("paper")
    configfile = root / "small.yaml"
    configfile.write_text(yaml.safe_dump(SMALL))
    assert compute(configfile, root / "chunks", "--max-chunks", "2") == 0
    return configfile, root / "chunks"


@pytest.fixture
def chunks(computed, tmp_path):
    """A copy of the computed chunks to change."""
    configfile, folder = computed
    shutil.copytree(folder, tmp_path / "chunks")
    return configfile, tmp_path / "chunks"


def test_chunks_are_kept_whole_the_next_run_adds_only_the_missing_and_recomputing_one_gives_identical_rows(
        computed, tmp_path):
    configfile, folder = computed
    assert sorted(p.name for p in folder.iterdir()) == ["chunk-000.csv", "chunk-000.json", "chunk-001.csv",
                                                         "chunk-001.json"]
    rows = pd.read_csv(folder / "chunk-001.csv")
    assert list(zip(rows.alpha, rows.beta)) == paper_grid.chunk_pairs(SMALL_CFG["omniglot"], 1, 3)
    assert rows.initial_eval_loss.notna().all() and (rows.status == "ok").all()

    again = tmp_path / "again"
    shutil.copytree(folder, again)
    (again / "chunk-001.json").unlink()  # a chunk whose record was never written is not there
    (again / "chunk-001.csv").write_text("cut short")
    assert compute(configfile, again) == 0
    assert sorted(paper_grid.records(again)) == [0, 1, 2]
    assert (again / "chunk-001.csv").read_bytes() == (folder / "chunk-001.csv").read_bytes()
    assert (again / "chunk-000.json").read_bytes() == (folder / "chunk-000.json").read_bytes()  # kept as it was

    # the grid from chunks of two runs is the grid of one uninterrupted run
    whole = tmp_path / "one-run"
    assert compute(configfile, whole) == 0
    for name, chunks in (("pieces", again), ("whole", whole)):
        (tmp_path / name).mkdir(exist_ok=True)
        assert merge(configfile, chunks, tmp_path / name, dataset_sha256()) == 0
    assert (tmp_path / "pieces" / "grid.csv").read_bytes() == (tmp_path / "whole" / "grid.csv").read_bytes()


def test_the_merge_holds_exactly_the_chunks_present(computed, tmp_path):
    configfile, folder = computed
    assert merge(configfile, folder, tmp_path, dataset_sha256()) == 0
    grid, prov = pd.read_csv(tmp_path / "grid.csv"), json.loads((tmp_path / "provenance.json").read_text())
    assert prov["chunks_done"] == [0, 1] and prov["chunks"] == 3 and prov["cells_in_grid"] == 6
    expected = sorted(paper_grid.chunk_pairs(SMALL_CFG["omniglot"], 0, 3) + paper_grid.chunk_pairs(
        SMALL_CFG["omniglot"], 1, 3))
    assert list(zip(grid.alpha, grid.beta)) == expected and list(grid.cell) == [0, 1, 2, 3]
    assert merge(configfile, tmp_path / "none", tmp_path, dataset_sha256()) == 0  # no chunk yet: an empty grid
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["chunks_done"] == [] and len(pd.read_csv(tmp_path / "grid.csv")) == 0


def test_a_chunk_of_another_dataset_or_settings_or_edited_by_hand_is_refused_naming_it(chunks, tmp_path, capsys):
    configfile, folder = chunks
    sha = dataset_sha256()
    assert merge(configfile, folder, tmp_path, "0" * 64) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "chunk-000.json" in err and "dataset_sha256" in err

    record = json.loads((folder / "chunk-001.json").read_text())
    record["key"]["grid"]["iterations"] = 100
    (folder / "chunk-001.json").write_text(json.dumps(record))
    assert merge(configfile, folder, tmp_path, sha) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "chunk-001.json" in err and "grid.iterations 100, here 2" in err
    assert compute(configfile, folder) == 2  # nor is a chunk added beside it
    assert "chunk-001.json" in capsys.readouterr().err and not (folder / "chunk-002.json").exists()

    record["key"]["grid"]["iterations"] = 2
    (folder / "chunk-001.json").write_text(json.dumps(record))
    table = folder / "chunk-000.csv"
    table.write_text(table.read_text().replace(",ok,", ",diverged,", 1))
    assert merge(configfile, folder, tmp_path, sha) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "chunk-000.csv" in err and "not those its record" in err


def test_a_spent_budget_starts_no_chunk(chunks, capsys):
    configfile, folder = chunks
    assert compute(configfile, folder, "--budget-seconds", "1e-6") == 0
    assert "the budget is spent before chunk 2" in capsys.readouterr().out
    assert sorted(paper_grid.records(folder)) == [0, 1]


def chunk_one():
    return experiments.image_spec(SMALL_CFG, "omniglot", "cpu", 1, 3)


def kept_rows(folder):
    rows = pd.read_csv(folder / "chunk-001.csv")
    return rows.drop(columns=["cell", "initial_eval_loss"])


def test_a_chunk_cut_short_by_its_deadline_resumes_to_the_rows_of_an_uninterrupted_run(computed, tmp_path):
    ckpt = tmp_path / "chunk.ckpt"
    assert run_grid(chunk_one(), checkpoint=ckpt, progress=False, deadline=time.monotonic()) is None
    assert ckpt.exists()
    resumed = experiments.grid_frame(run_grid(chunk_one(), checkpoint=ckpt, progress=False)).drop(columns="cell")
    pd.testing.assert_frame_equal(resumed, kept_rows(computed[1]), check_exact=True)


# float32 convolutions summed in another order (unfold: im2col and one matrix product; native: oneDNN's kernels).
# Rounding of ~1e-7 per operation, grown by the meta-steps: the largest relative difference measured on this grid
# after 2 iterations is 1.2e-3, at alpha = beta = 0.3 (docs/gpu-and-cluster.md)
UNFOLD_TOLERANCE = 2e-3


def test_the_native_and_the_unfold_convolution_agree_within_the_stated_tolerance():
    spec = experiments.image_spec(SMALL_CFG, "omniglot", "cpu")
    native = pd.DataFrame(run_grid(dataclasses.replace(spec, conv="native"), progress=False))
    unfold = pd.DataFrame(run_grid(dataclasses.replace(spec, conv="unfold"), progress=False))
    assert list(native.status) == list(unfold.status) == ["ok"] * 6
    for column in ("final_loss", "heldout_loss"):
        relative = ((native[column] - unfold[column]) / native[column]).abs()
        assert relative.max() <= UNFOLD_TOLERANCE, (column, relative.max())
        assert relative.max() > 0  # two different summation orders: not the same computation


def test_the_engine_fingerprint_ignores_comments_and_docstrings_and_sees_code():
    a = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    b = "def f(x):\n    return x + 1\n"
    c = "def f(x):\n    return x + 2\n"
    assert paper_grid.code_hash([a]) == paper_grid.code_hash([b]) != paper_grid.code_hash([c])
    assert len(paper_grid.engine_fingerprint()) == 16
