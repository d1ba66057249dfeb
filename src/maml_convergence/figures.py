"""The table of figures. The workflow's drawing rules, its `all` target, which rule files it includes, the
folders of source data, the tests' lists of figures, the report's captions and the per-figure tables of
docs/figures.md all follow from it (rules/figures.smk, ``maml-convergence update-docs``, ``captions``), so a new
figure is a row here, the rule file that computes what it draws and its notebook, whose first cell is its
caption (docs/extending.md).

Each figure: ``name`` (figures/<name>.png and .pdf; its source data in figures/data/<name>/), ``rules`` (the
rule file that computes what it draws, rules/<rules>.smk, which fills in ``FIGURE_SOURCES[<name>]``),
``notebook`` (notebooks/<notebook>.ipynb draws it; a notebook that draws several figures reads which one from
``snakemake.wildcards.fig``), ``commands`` (the ``maml-convergence`` commands whose results it draws; the
config sections it reads follow from them, ``config.STEP_SECTIONS``) and ``functions`` (the ``experiments``
functions behind them) and ``shipped_settings`` (it is computed with the shipped config/config.yaml whatever
the run's config but for the ``paper_grid`` section, as the paper-scale grid's chunks are,
``config.paper_settings``: its caption quotes those settings).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import config as config_mod
from .problems import FEW_SHOT


@dataclass(frozen=True)
class Figure:
    name: str
    rules: str
    notebook: str
    commands: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    shipped_settings: bool = False


_IMAGES = dict(commands=("prepare-data", "image-grid", "image-merge"),
               functions=("image_spec", "merge_chunks", "initial_eval_losses"))

FIGURES = (
    Figure("fig1", rules="fig1", notebook="fig1", commands=("fig1-runs",), functions=("fig1_runs",)),
    Figure("fig2", rules="fig2", notebook="fig2", commands=("fig2-curves",), functions=("fig2_curves",)),
    Figure("fig3", rules="fig3", notebook="fig3", commands=("linear-grid", "linear-reference", "linear-audit"),
           functions=("linear_spec", "linear_reference", "linear_audit")),
    Figure("fig3-n2", rules="fig3_n2", notebook="fig3_n2", commands=("linear-grid", "linear-reference",
                                                                      "linear-audit"),
           functions=("linear_spec", "linear_reference", "linear_audit")),
    Figure("fig4a", rules="fig4a", notebook="fig4a",
           commands=("sinusoid-grid", "sinusoid-reference", "sinusoid-local-bound"),
           functions=("sinusoid_spec", "sinusoid_reference", "sinusoid_local_bound")),
    Figure("fig4b", rules="fig4bc", notebook="fig4bc", **_IMAGES),
    Figure("fig4c", rules="fig4bc", notebook="fig4bc", **_IMAGES),
    Figure("fig4b-paper", rules="fig4b_paper", notebook="fig4b_paper", commands=("paper-grid-merge",),
           functions=("image_spec", "initial_eval_losses"), shipped_settings=True),
    Figure("fig5", rules="fig5", notebook="fig5", commands=("fig5-train", "fig5-analysis"),
           functions=("fig5_train", "fig5_analysis")),
    Figure("fig6", rules="fig6", notebook="fig6", commands=("fig6-runs",), functions=("fig6_runs",)),
    Figure("fig7", rules="fig7", notebook="fig7", commands=("fig7-sharpness",), functions=("fig7_sharpness",)),
    Figure("guideline", rules="guideline", notebook="guideline", commands=("suggest", "guideline-check"),
           functions=("suggest_on", "guideline_check")),
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


def config_sections(figure: Figure) -> list[str]:
    """The config sections the commands behind ``figure`` read (``config.step_sections``; a command run once per
    problem, for the problems the workflow runs it on), less those every step reads."""
    checked = list(config_mod.load()["guideline"])  # the problems the workflow runs suggest and its check on
    each = lambda c: checked if c in config_mod.PROBLEM_STEPS else FEW_SHOT if c in config_mod.IMAGE_STEPS else [None]  # noqa: E731
    read = [s for c in figure.commands for p in each(c) for s in config_mod.step_sections(c, p)]
    return [s for s in dict.fromkeys(read) if s not in config_mod.RUN_SECTIONS]


def by_name(name: str) -> Figure:
    return next(f for f in FIGURES if f.name == name)
