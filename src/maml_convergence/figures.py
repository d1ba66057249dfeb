"""The table of figures. The workflow's drawing rules, its `all` target, which rule files it includes, the
folders of source data and the tests' lists of figures all follow from it (rules/figures.smk), so a new figure
is a row here, the rule file that computes what it draws, its notebook and its caption
(docs/extending.md).

Each figure: ``name`` (figures/<name>.png and .pdf; its source data in figures/data/<name>/), ``rules`` (the
rule file that computes what it draws, rules/<rules>.smk, which fills in ``FIGURE_SOURCES[<name>]``) and
``notebook`` (notebooks/<notebook>.ipynb draws it, captioned by rules/report/<notebook>.rst; a notebook that
draws several figures reads which one from ``snakemake.wildcards.fig``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    rules: str
    notebook: str


FIGURES = (
    Figure("fig1", rules="fig1", notebook="fig1"),
    Figure("fig2", rules="fig2", notebook="fig2"),
    Figure("fig3", rules="fig3", notebook="fig3"),
    Figure("fig3-n2", rules="fig3_n2", notebook="fig3_n2"),
    Figure("fig4a", rules="fig4a", notebook="fig4a"),
    Figure("fig4b", rules="fig4bc", notebook="fig4bc"),
    Figure("fig4c", rules="fig4bc", notebook="fig4bc"),
    Figure("fig4b-paper", rules="fig4b_paper", notebook="fig4b_paper"),
    Figure("fig5", rules="fig5", notebook="fig5"),
    Figure("fig6", rules="fig6", notebook="fig6"),
    Figure("fig7", rules="fig7", notebook="fig7"),
    Figure("guideline", rules="guideline", notebook="guideline"),
)


def names() -> list[str]:
    return [f.name for f in FIGURES]


def rule_files() -> list[str]:
    """The rule files that compute what the figures draw, once each, in the table's order."""
    return list(dict.fromkeys(f.rules for f in FIGURES))


def by_notebook() -> dict[str, list[str]]:
    """Each notebook and the figures it draws, in the table's order: one drawing rule each, named after it."""
    drawn: dict[str, list[str]] = {}
    for f in FIGURES:
        drawn.setdefault(f.notebook, []).append(f.name)
    return drawn
