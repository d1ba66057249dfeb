"""The source data kept beside each figure: written deterministically, read back checked, refused when edited."""

import gzip
import json
import subprocess
import sys

import pandas as pd
import pytest

from maml_convergence import source_data
from maml_convergence.source_data import SourceData, SourceDataError


@pytest.fixture
def results(tmp_path):
    grid = pd.DataFrame({"alpha": [0.0, 0.1], "beta": [0.5, 0.5], "final_loss": [0.25, 3.5]})
    (tmp_path / "grid.csv").write_text(grid.to_csv(index=False))
    (tmp_path / "provenance.json").write_text(json.dumps({"git_commit": "abc", "iterations": 7}))
    (tmp_path / "reference.json").write_text(json.dumps({"eigenvalues": [3.0, 1.0]}))
    return {"grid": tmp_path / "grid.csv", "grid_provenance": tmp_path / "provenance.json",
            "reference": tmp_path / "reference.json"}


def test_a_folder_reads_back_what_the_results_hold(results, tmp_path):
    source_data.write("fig9", results, tmp_path / "out" / "fig9")
    data = SourceData(tmp_path / "out" / "fig9")
    pd.testing.assert_frame_equal(data.table("grid"), pd.read_csv(results["grid"]))
    assert data.record("reference") == {"eigenvalues": [3.0, 1.0]}
    assert data.provenance("grid") == {"git_commit": "abc", "iterations": 7}
    assert data.names == ["grid", "reference"]
    assert sorted(p.name for p in (tmp_path / "out" / "fig9").iterdir()) == ["grid.csv.gz", "provenance.json",
                                                                             "reference.json"]
    assert data.meta["files"]["grid.csv.gz"]["from"] == str(results["grid"])


def test_the_same_results_give_the_same_bytes(results, tmp_path):
    for name in ("a", "b"):
        source_data.write("fig9", results, tmp_path / name)
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_a_hand_edited_number_is_refused_naming_the_file(results, tmp_path):
    folder = tmp_path / "fig9"
    source_data.write("fig9", results, folder)
    edited = gzip.decompress((folder / "grid.csv.gz").read_bytes()).replace(b"3.5", b"0.5")
    (folder / "grid.csv.gz").write_bytes(gzip.compress(edited, mtime=0))
    with pytest.raises(SourceDataError, match="grid.csv.gz: its sha256 differs"):
        SourceData(folder).table("grid")


def test_missing_inputs_and_folders_say_which_file(results, tmp_path):
    with pytest.raises(SourceDataError, match="missing result file .*nope.csv"):
        source_data.write("fig9", {**results, "other": tmp_path / "nope.csv"}, tmp_path / "fig9")
    with pytest.raises(SourceDataError, match="provenance for 'curves'"):
        source_data.write("fig9", {**results, "curves_provenance": results["grid_provenance"]}, tmp_path / "fig9")
    assert not (tmp_path / "fig9").exists() or not (tmp_path / "fig9" / "provenance.json").exists()
    with pytest.raises(SourceDataError, match="no source data here"):
        SourceData(tmp_path / "empty")
    source_data.write("fig9", results, tmp_path / "fig9")
    with pytest.raises(SourceDataError, match="not in this figure's source data"):
        SourceData(tmp_path / "fig9").table("curves")


def test_rewriting_replaces_the_whole_folder(results, tmp_path):
    folder = tmp_path / "fig9"
    source_data.write("fig9", results, folder)
    source_data.write("fig9", {"grid": results["grid"]}, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["grid.csv.gz", "provenance.json"]
    assert not folder.with_name("fig9.tmp").exists()


def test_the_command_reports_a_bad_pair_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "maml_convergence", "source-data", "--figure", "fig9", "--inputs",
                           "grid", "--out-dir", str(tmp_path / "fig9")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "name=path" in proc.stderr
