"""A run says whether it reproduced the committed reference: verdicts equal, numbers within tolerance, source data
rows and columns; a flipped verdict and a hand-edited number are both reported, and the first fails the command."""

import gzip
import json

import pandas as pd
import pytest

from maml_convergence import cli, reproduction

CLAIMS = {"claims": [
    {"id": "C1", "verdict": "holds", "summary": "ratio 2.97 (1.04-3.1) over 3 seeds", "settings_sha256": "a"},
    {"id": "C2", "verdict": "fails", "summary": "inside 12/38 brackets; max error 1.34", "settings_sha256": "a"},
    {"id": "C3", "verdict": "inconclusive", "summary": "0.6-2 (median 1)", "settings_sha256": "b"},
]}
TABLE = pd.DataFrame({"alpha": [0.0, 0.1, 0.3], "beta": [1.0, 1.0, 1.0], "final_loss": [1.5, 1.2, float("nan")],
                      "status": ["ok", "ok", "diverged"]})


def folder(root, claims=CLAIMS, table=TABLE):
    """A folder laid out as figures/ is: claims.json and one figure's source data."""
    (root / "data" / "fig4b").mkdir(parents=True)
    (root / "claims.json").write_text(json.dumps(claims))
    (root / "data" / "fig4b" / "grid.csv.gz").write_bytes(gzip.compress(table.to_csv(index=False).encode()))
    return root


def compare(tmp_path, claims=CLAIMS, table=TABLE):
    computed = folder(tmp_path / "computed", claims, table)
    reference = reproduction.Reference(folder(tmp_path / "reference"), at_head=False)
    return reproduction.reproduction(computed / "claims.json", computed, reference)


def edited(**changes) -> dict:
    return {"claims": [{**c, **changes.get(c["id"], {})} for c in CLAIMS["claims"]]}


def test_an_unchanged_run_reproduces_everything(tmp_path):
    result = compare(tmp_path)
    assert result["line"] == "reproduced: 3 of 3 verdicts equal, 0 numbers outside tolerance"
    assert result["differs"] == [] and result["source_data"][0]["columns"] == {"alpha": 0, "beta": 0,
                                                                               "final_loss": 0}


def test_a_flipped_verdict_and_a_number_beyond_tolerance_are_reported(tmp_path):
    claims = edited(C1={"summary": "ratio 3.1 (1.04-3.1) over 3 seeds"}, C3={"verdict": "holds"})
    result = compare(tmp_path, claims)
    rows = {r["id"]: r for r in result["claims"]}
    assert rows["C1"]["status"] == "equal" and rows["C1"]["outside"] == 1  # 3.1 against 2.97: 4 % off
    assert rows["C1"]["first_outside"] == {"computed": 3.1, "committed": 2.97}
    assert rows["C3"]["status"] == "DIFFERS" and result["differs"] == ["C3"]
    assert result["line"] == "reproduced: 2 of 3 verdicts equal, 1 numbers outside tolerance"
    text = reproduction.to_markdown(result)
    assert "| C3 | inconclusive | holds | DIFFERS |" in text and text.endswith(result["line"] + "\n")


def test_rounding_is_within_tolerance_and_other_settings_are_not_compared(tmp_path):
    claims = edited(C1={"summary": "ratio 2.98 (1.04-3.1) over 3 seeds"},
                    C2={"verdict": "holds", "settings_sha256": "another config"})
    result = compare(tmp_path, claims)
    rows = {r["id"]: r for r in result["claims"]}
    assert rows["C1"]["outside"] == 0 and rows["C2"]["status"] == "other settings"
    assert result["line"] == "reproduced: 2 of 2 verdicts equal, 0 numbers outside tolerance"


def test_source_data_rows_and_the_largest_relative_difference_per_column(tmp_path):
    moved = TABLE.assign(final_loss=[1.5, 1.26, float("nan")])
    result = compare(tmp_path, table=moved)
    assert result["source_data"][0]["columns"]["final_loss"] == pytest.approx(0.06 / 1.26)
    assert result["numbers_outside"] == 1
    result = compare(tmp_path / "short", table=TABLE.iloc[:2])
    assert (result["source_data"][0]["rows"], result["source_data"][0]["rows_committed"]) == (2, 3)


def test_the_command_writes_the_table_and_exits_1_naming_the_claim_whose_verdict_differs(tmp_path, capsys):
    computed = folder(tmp_path / "computed", edited(C2={"verdict": "holds"}))
    reference = folder(tmp_path / "reference")
    out = tmp_path / "out"
    code = cli.main(["reproduction", "--config-json", json.dumps({"reproduction": {"reference": str(reference)}}),
                     "--claims", str(computed / "claims.json"), "--figures", str(computed),
                     "--out-json", str(out / "r.json"), "--out-md", str(out / "r.md")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "the verdict of C2 differs" in err
    assert (out / "r.md").read_text().splitlines()[-1] == "reproduced: 2 of 3 verdicts equal, 0 numbers outside " \
                                                          "tolerance"
