"""The README and docs/: a short README whose first screen holds the paper, the verdicts and a figure; the
figure -> code table points at things that exist; every link, file and command named exists; the guideline
example runs as it stands."""

import json
import re

import pytest
import torch

from conftest import figures_predate_the_workflow
from maml_convergence import captions, claims, cli, config, experiments, figures
from maml_convergence.claims import numbers

DOCS = ["README.md", "config/README.md"]  # and every docs/*.md


def pages(root):
    return [root / p for p in DOCS] + sorted((root / "docs").glob("*.md"))


def test_the_readme_is_short_and_its_first_screen_has_the_paper_a_figure_and_what_was_found(root):
    """The first 40 lines: the paper, a figure and a plain summary with the verdicts of the paper's claims C1-C7
    (generated); the full verdict table below, one click from the summary."""
    text = (root / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 200
    first = "\n".join(lines[:40])
    assert "https://meta-learn.github.io/2019/papers/metalearn2019-takagi.pdf" in first
    assert "![" in first and "(figures/fig4a.png)" in first
    summarised = re.findall(r"<!-- n: verdict:(C\d)[\w-]* -->", first)
    assert sorted(set(summarised)) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]
    assert claims.README_BEGIN in text and "(#every-claim" in first


def test_the_readme_verdict_table_is_the_one_written_from_claims_json(root):
    if figures_predate_the_workflow(root):
        pytest.skip(figures_predate_the_workflow(root))
    committed = json.loads((root / "figures" / "claims.json").read_text())
    readme = (root / "README.md").read_text()
    assert claims.with_verdict_table(readme, committed) == readme, \
        "run: maml-convergence verdict-table --update README.md"
    table = readme.split(claims.README_BEGIN, 1)[1].split(claims.README_END, 1)[0]
    assert len(table.strip().splitlines()) == len(committed["claims"]) + 2
    assert all(len(cell) <= 200 for row in table.replace(r"\|", "").splitlines() for cell in row.split("|"))


def test_every_link_between_the_pages_resolves(root):
    for page in pages(root):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith("http"):
                continue
            assert (page.parent / target).exists(), (page.relative_to(root), target)


def test_every_command_and_repository_path_named_in_the_pages_exists(root):
    commands = set(cli.build_parser()._subparsers._group_actions[0].choices)
    for page in pages(root):
        text = page.read_text()
        named = set(re.findall(r"maml-convergence ([a-z][a-z0-9-]+)", text)) - {"is", "on", "of"}
        assert named <= commands, (page.relative_to(root), named - commands)
        for path in re.findall(r"`((?:src|rules|config|notebooks|benchmarks|tests|profiles|docs)/[\w./-]+)`", text):
            assert (root / path.rstrip(".")).exists() or "<" in path, (page.relative_to(root), path)


def test_the_tables_of_figures_are_what_update_docs_writes_and_a_hand_edit_is_caught(root):
    """docs/figures.md's two tables are written from the table of figures and each notebook's caption: a row per
    notebook in each, and a hand edit inside them differs from what update-docs would write."""
    text = (root / "docs" / "figures.md").read_text()
    assert captions.with_figure_tables(text, root) == text, "run: maml-convergence update-docs"
    for table in captions.TABLES:
        block = text.split(f"<!-- generated: {table} ", 1)[1].split("<!-- /generated -->", 1)[0]
        assert len(block.strip().splitlines()) == len(figures.by_notebook()) + 3, table  # the marker, header, rule
    edited = text.replace("| Fig. 1 |", "| Fig. 1 (edited) |", 1)
    assert edited != text and captions.with_figure_tables(edited, root) != edited


def test_every_command_function_and_section_the_table_of_figures_names_exists(root):
    """What the generated figure -> code table says of each figure holds: its commands exist and are run by the
    rule files the Snakefile includes, its functions exist in experiments, its sections in the config."""
    commands = set(cli.build_parser()._subparsers._group_actions[0].choices)
    sections = set(config.schema()["properties"])
    snakefile = (root / "Snakefile").read_text()
    rules = "".join((root / "rules" / f"{name}.smk").read_text() for name in figures.rule_files()) + "".join(
        (root / p).read_text() for p in re.findall(r'include: "(rules/\w+\.smk)"', snakefile))
    for f in figures.FIGURES:
        assert f.commands and f.functions, f.name
        assert set(f.commands) <= commands, f.name
        assert all(f"maml-convergence {c} " in rules for c in f.commands), (f.name, "a command no rule runs")
        assert all(hasattr(experiments, name) for name in f.functions), f.name
        assert set(figures.config_sections(f)) <= sections, f.name


def test_a_caption_writes_a_config_key_as_its_value_and_leaves_other_code():
    cfg = {"seed": 0, "fig6": {"alphas": [0.0, 0.1], "every": 10}, "sinusoid": {"reference": {"alpha": 0.01}}}
    text = "seed `seed`, α = `fig6.alphas` every `fig6.every`; `sinusoid.reference` at `stability.py` `fig6.nope`"
    assert captions.with_values(text, cfg) == ("seed 0, α = 0.0, 0.1 every 10; `sinusoid.reference` at "
                                              "`stability.py` `fig6.nope`")
    assert captions.with_values("`sinusoid.reference.alpha`", cfg, "``{}``") == "0.01"


def task_source_examples(root) -> dict[str, str]:
    text = (root / "docs" / "guideline.md").read_text()
    return dict(re.findall(r"<!-- example: (\w+) -->\n```python\n(.*?)```", text, re.S))


def test_docs_guideline_has_an_example_for_every_task_source(root):
    assert set(task_source_examples(root)) == {"batches", "learn2learn", "loader", "dataset"}


@pytest.mark.slow
@pytest.mark.parametrize("source", ["batches", "learn2learn", "loader", "dataset"])
def test_each_task_source_example_runs_as_it_stands_and_gives_both_cells(source, root, tmp_path, monkeypatch):
    if source == "learn2learn":
        pytest.importorskip("learn2learn", reason="learn2learn is not installed (it does not build from PyPI on "
                                                  "Python 3.11; docs/guideline.md says how)")
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(task_source_examples(root)[source], f"docs/guideline.md ({source})", "exec"), scope)
    result = scope["result"]
    for cell in (result.recommended, result.guideline):
        assert cell is not None and cell["alpha"] > 0 and cell["beta"] > 0, (source, result.notes)


@pytest.mark.slow
def test_the_guideline_example_runs_as_it_stands(root, tmp_path, monkeypatch):
    """The complete example of docs/guideline.md: a CNN with torch's batch norm in training mode on a
    classification sampler, executed as a user would paste it. The probe leaves the model as it was (batch
    norm's running statistics included) and trains a CNN on a CPU as the image grids do: one cell at a time,
    looping over the tasks."""
    example = (root / "docs" / "guideline.md").read_text().split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(example, "docs/guideline.md", "exec"), scope)
    result = scope["result"]
    assert result.alpha is not None and result.alpha > 0 and result.beta > 0 and result.settings["classes"] == 5
    assert (result.alpha, result.beta) == (result.recommended["alpha"], result.recommended["beta"])
    assert result.recommended["outcome"] == "trained" and result.guideline["outcome"] in ("trained", "flat")
    assert json.loads((tmp_path / "suggestion.json").read_text())["alpha"] == result.alpha
    torch.manual_seed(0)
    untouched = scope["model"]().state_dict()
    assert all(torch.equal(untouched[k], v) for k, v in scope["net"].state_dict().items())
    assert result.settings["slots"] == 1 and result.settings["task_loop"]


NUMBERED = list(numbers.PAGES)  # the pages that mark numbers
RESULTS_PAGES = ["README.md", "docs/results.md"]  # where every measured number must be marked
# What a measured number looks like in prose: a decimal, a percentage, a factor (x or ×) or a count "k of n".
DURATION = r"\b\d+(?:\.\d+)? ?(?:hours?|minutes?|seconds?|days?|h|min|s)\b"  # a time, also measured
MEASURED = re.compile(r"(?<![\w.-])\d+\.\d+|\d+(?:\.\d+)? ?%|\d+(?:\.\d+)?\s?[×x](?!\w)|\b\d+ of \d+\b")


def test_every_marked_number_is_what_claims_json_gives_and_a_hand_edit_is_caught(root):
    if figures_predate_the_workflow(root):
        pytest.skip(figures_predate_the_workflow(root))
    committed = numbers.Data(json.loads((root / "figures" / "claims.json").read_text()), root / "figures")
    for page in NUMBERED:
        text = (root / page).read_text()
        assert numbers.stale(text, committed) == [], f"run: maml-convergence update-docs ({page})"
    text = (root / "README.md").read_text()
    first = next(numbers.MARK.finditer(text))
    edited = text.replace(first.group(0), first.group(0).replace(first["value"], first["value"] + "1"), 1)
    assert len(numbers.stale(edited, committed)) == 1


def test_a_caption_quotes_a_rules_constant_by_its_mark_and_the_mark_holds_the_codes_value(root):
    """A figure's caption (its notebook's first cell) types no measured number: a rule's constant is marked, the
    mark names one of numbers.CONSTANTS (never data, which would have the workflow redraw on each new result)
    and holds what the code says, so a changed constant fails here until the caption says it; the report's
    caption and docs/figures.md show the value without its mark."""
    cfg, marked = config.load(), 0
    assert all(numbers.value(name, None) for name in numbers.CONSTANTS)  # none reads the data
    for notebook in figures.by_notebook():
        caption = captions.caption(notebook, root)
        text = f"{caption.title}\n{caption.body}"
        for m in numbers.MARK.finditer(text):
            assert m["name"] in numbers.CONSTANTS, f"notebooks/{notebook}.ipynb marks {m['name']}, not a constant"
            assert m["value"] == numbers.value(m["name"], None), f"notebooks/{notebook}.ipynb: {m['name']}"
            marked += 1
        text = numbers.MARK.sub("", text)
        text = re.sub(r"`[^`]*`|\]\([^)]*\)|\b(?:Section|eq\.|Fig\.|Appendix) [\w.]+", "", text)
        typed = [m.group(0) for m in MEASURED.finditer(text)] + re.findall(DURATION, text)
        assert typed == [], f"notebooks/{notebook}.ipynb: numbers typed by hand in its caption: {typed}"
        assert "<!--" not in captions.report_caption(notebook, cfg, root)
    assert marked >= 7  # fig4bc's outcome rules, fig7's band, G2's factor
    shown = (root / "docs" / "figures.md").read_text().split(captions.TABLES["figure-captions"], 1)[1]
    assert "<!-- n:" not in shown and f"p < {numbers.value('chance_p', None)} by" in shown
    edited = f"p < <!-- n: chance_p -->{numbers.value('chance_p', None)}1<!-- /n --> by"  # a hand edit
    assert [s.split(":")[0] for s in numbers.stale(edited, None)] == ["chance_p"]


def test_no_measured_number_is_typed_by_hand_in_the_pages_that_quote_the_results(root):
    """Outside code, links and the generated blocks (the verdict table, the marked numbers), a decimal, a
    percentage, a factor or a count 'k of n' in README.md or docs/results.md is a number typed by hand."""
    for page in RESULTS_PAGES:
        text = (root / page).read_text()
        if claims.README_BEGIN in text:
            head, rest = text.split(claims.README_BEGIN, 1)
            text = head + rest.split(claims.README_END, 1)[1]
        text = numbers.MARK.sub("", text)
        text = re.sub(r"```.*?```|`[^`]*`|\]\([^)]*\)|<!--.*?-->", "", text, flags=re.S)
        typed = [m.group(0) for m in MEASURED.finditer(text)]
        assert typed == [], f"{page}: numbers typed by hand (mark them <!-- n: name -->...): {typed[:8]}"


def test_a_page_number_is_written_from_claims_json_and_an_unknown_name_is_refused():
    result = numbers.Data({"claims": [{"id": "C3", "verdict": "inconclusive", "measured": {"per_seed": [
        {"verdict": "holds"}, {"verdict": "fails"}, {"verdict": "holds"}]}}]})
    text = "C3 <!-- n: verdict:C3 -->holds<!-- /n --> (holds in <!-- n: c3_holds -->1 of 5<!-- /n --> seeds)"
    assert numbers.with_numbers(text, result) == ("C3 <!-- n: verdict:C3 -->inconclusive<!-- /n --> (holds in "
                                                  "<!-- n: c3_holds -->2 of 3<!-- /n --> seeds)")
    with pytest.raises(KeyError, match="unknown number 'c3_hold'"):
        numbers.with_numbers("<!-- n: c3_hold -->1<!-- /n -->", result)


def test_every_marker_a_page_holds_is_read_as_a_number(root):
    """A marker the pattern does not match would never be written nor checked: every '<!-- n:' is one."""
    for page in NUMBERED:
        text = (root / page).read_text()
        assert text.count("<!-- n: ") == len(numbers.MARK.findall(text)), page
