"""The README's figure -> code table points at things that exist."""

import re

from maml_convergence import cli, config, experiments


def figure_table(root) -> list[list[str]]:
    text = (root / "README.md").read_text().split("## Figure → code", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:]]  # without the header


def test_every_figure_and_the_claims_have_a_row(root):
    figures = {row[0] for row in figure_table(root)}
    assert figures == {"Fig. 1", "Fig. 2", "Fig. 3", "Fig. 4a", "Fig. 4b, 4c", "Fig. 5", "CLAIMS.md"}


def test_every_file_command_function_and_section_named_exists(root):
    commands = set(cli.build_parser()._subparsers._group_actions[0].choices)
    sections = set(config.schema()["properties"])
    snakefile = (root / "Snakefile").read_text()
    for figure, rule_file, command, function, section, notebook in figure_table(root):
        for path in re.findall(r"\]\(([^)]+)\)", rule_file + command + notebook):
            assert (root / path).exists() or (root / "notebooks" / path).exists(), (figure, path)
            assert path.split("/")[-1] in snakefile or path.startswith("rules/data"), (figure, path)
        assert set(re.findall(r"`([a-z0-9-]+)`", command)) <= commands, figure
        assert all(hasattr(experiments, f) for f in re.findall(r"`(\w+)`", function) if f != "claims"), figure
        assert set(re.findall(r"`(\w+)`", section)) <= sections, figure
