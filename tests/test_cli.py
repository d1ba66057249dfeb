"""The command line's conventions: --version, the user's commands listed before the workflow's steps, every option
with help, and a bad number or file refused at once in one line (exit 2), never replaced by a default."""

import argparse

import pytest

from maml_convergence import __version__, cli


def run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's own exits: --version, --help, a bad option
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"maml-convergence {__version__}"


def test_help_lists_the_users_commands_first_and_the_workflows_steps_apart(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    commands, steps = out.split("the workflow's steps", 1)
    assert [c for c in cli.USER_COMMANDS if f"    {c}" in commands] == list(cli.USER_COMMANDS)
    assert "sinusoid-grid" in steps and "sinusoid-grid" not in commands and "SUPPRESS" not in out
    assert out.count("{") == 0  # no list of every choice, once or twice


def test_every_option_of_every_command_has_help():
    parser = cli.build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = [(name, a.option_strings[0]) for name, sub in subcommands.items() for a in sub._actions
               if a.option_strings and not a.help]
    assert missing == []


@pytest.mark.parametrize("argv,option", [
    (["suggest", "--problem", "linear", "--iterations", "0"], "--iterations"),
    (["suggest", "--problem", "linear", "--iterations", "-3"], "--iterations"),
    (["suggest", "--problem", "linear", "--streams", "0"], "--streams"),
    (["suggest", "--problem", "linear", "--budget-seconds", "0"], "--budget-seconds"),
    (["suggest", "--problem", "linear", "--budget-seconds", "nan"], "--budget-seconds"),
    (["suggest", "--problem", "linear", "--inner-steps", "two"], "--inner-steps"),
    (["paper-grid", "--threads", "0"], "--threads"),
    (["paper-grid", "--budget-seconds", "inf"], "--budget-seconds"),
    (["paper-grid", "--max-chunks", "-1"], "--max-chunks"),
    (["image-grid", "--dataset", "omniglot", "--out", "x", "--provenance", "y", "--max-projected-hours", "0"],
     "--max-projected-hours"),
])
def test_a_bad_number_is_refused_at_once_in_one_line_naming_the_option(argv, option, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"argument {option}:" in err


@pytest.mark.parametrize("content,says", [(None, "no such file"), ("{", "not JSON"), ("[1, 2]", "no list of claims")])
def test_verdict_table_names_a_missing_or_malformed_claims_file_in_one_line(tmp_path, capsys, content, says):
    path = tmp_path / "claims.json"
    if content is not None:
        path.write_text(content)
    code, _, err = run(["verdict-table", "--claims", str(path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(path) in err and says in err


@pytest.mark.parametrize("inputs,says", [
    (["figure8=x.csv"], "figure8=x.csv is not name=path"),
    (["linear_reference"], "linear_reference= is not name=path"),
    (["fig1=a.csv", "fig1=b.csv"], "fig1 given twice"),
    (["fig1=a.csv"], "linear_reference, linear_grids, linear_audit, sinusoid_grid, sinusoid_reference missing"),
])
def test_the_claims_name_a_bad_input_in_one_line(tmp_path, capsys, inputs, says):
    code, _, err = run(["claims", "--config-json", '{"claims": {"near_edge_factor": 3.0}}', "--inputs", *inputs,
                        "--out-json", str(tmp_path / "c.json"), "--out-md", str(tmp_path / "c.md")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err
    assert not (tmp_path / "c.json").exists()
