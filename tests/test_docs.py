"""The README: its figure -> code table points at things that exist, and its guideline example runs."""

import json
import re

from maml_convergence import cli, config, experiments


def figure_table(root) -> list[list[str]]:
    text = (root / "README.md").read_text().split("## Figure → code", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:]]  # without the header


def test_every_figure_and_the_claims_have_a_row(root):
    figures = {row[0] for row in figure_table(root)}
    assert figures == {"Fig. 1", "Fig. 2", "Fig. 3", "Fig. 4a", "Fig. 4b, 4c", "Fig. 5", "Fig. 6", "Guideline",
                       "CLAIMS.md"}


def test_every_file_command_function_and_section_named_exists(root):
    commands = set(cli.build_parser()._subparsers._group_actions[0].choices)
    sections = set(config.schema()["properties"])
    snakefile = (root / "Snakefile").read_text()
    for figure, rule_file, command, function, section, notebook in figure_table(root):
        for path in re.findall(r"\]\(([^)]+)\)", rule_file + command + notebook):
            assert (root / path).exists() or (root / "notebooks" / path).exists(), (figure, path)
        rules = "".join((root / path).read_text() for path in re.findall(r"\]\((rules/[^)]+)\)", rule_file + command))
        assert all(f'include: "{path}"' in snakefile for path in re.findall(r"\]\((rules/[^)]+)\)", rule_file)), figure
        named = set(re.findall(r"`([a-z0-9-]+)`", command))
        assert named <= commands, figure
        assert all(f"maml-convergence {name} " in rules for name in named), (figure, "a command its rules do not run")
        assert all(f'"../notebooks/{name}"' in rules for name in re.findall(r"\[([\w.]+\.ipynb)\]", notebook)), figure
        assert all(hasattr(experiments, f) for f in re.findall(r"`(\w+)`", function) if f != "claims"), figure
        assert set(re.findall(r"`(\w+)`", section)) <= sections, figure


def test_the_guideline_example_of_the_readme_runs_as_it_stands(root, tmp_path, monkeypatch):
    """The complete example of "Using the guideline on your own model": a CNN with torch's batch norm in
    training mode on a classification sampler, executed as a user would paste it."""
    section = (root / "README.md").read_text().split("## Using the guideline on your own model", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(example, "README.md", "exec"), scope)
    result = scope["result"]
    assert result.alpha is not None and result.alpha > 0 and result.beta > 0
    assert result.recommended_outcome in ("trained", "flat") and result.settings["classes"] == 5  # stable
    assert json.loads((tmp_path / "suggestion.json").read_text())["alpha"] == result.alpha
