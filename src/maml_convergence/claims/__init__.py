"""Verdicts on the paper's claims, computed only from the workflow's result files.

Every number here is read off ``results/``; the verdict rules are stated next to each claim in the generated
table, so a reader can check them by hand. One module per family of claims (``linear``, ``sinusoid``,
``few_shot``, ``guideline``, ``curves``), the shares and tallies they share in ``verdicts``, the tables in
``render``; REGISTRY below is the one place that names every claim's id, what it reads and who judges it.
Adding a claim: its judge in its family's module, one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..problems import FEW_SHOT, LINEAR, MINIIMAGENET, OMNIGLOT, SINUSOID
from . import curves, few_shot, guideline, linear, sinusoid
from .curves import fig2_numbers
from .edge import edge_ratios
from .few_shot import paper_scale_claims
from .linear import audit_claims, linear_claims
from .render import README_BEGIN, README_END, has_verdict_table, to_markdown, verdict_table, with_verdict_table
from .results import INPUTS, LISTS, REQUIRED, Results

__all__ = ["INPUTS", "LISTS", "REQUIRED", "README_BEGIN", "README_END", "REGISTRY", "audit_claims", "edge_ratios",
           "evaluate", "fig2_numbers", "has_verdict_table", "ids_of", "linear_claims", "paper_scale_claims",
           "to_markdown", "verdict_table", "with_verdict_table"]


@dataclass(frozen=True)
class Family:
    """Claims judged together: ``judge(ids, results)`` returns their rows, in the order of ``ids``, for every
    MAML order, dataset or problem the inputs hold ("{order}", "{problem}" in an id; a dict: per dataset).
    Judged only when every input in ``reads`` is given."""

    ids: tuple | dict
    reads: tuple[str, ...]
    judge: Callable


REGISTRY = (  # in the order CLAIMS.md lists them
    Family(("C1",), ("fig1",), curves.gradient_norm),
    Family(("C1-inner",), ("fig1",), curves.inner_products),
    Family(("C2-alpha-{order}", "C2-beta-{order}"), ("linear_reference", "linear_grids"), linear.grid_claims),
    Family(("C3",), ("sinusoid_grid",), sinusoid.edge),
    Family({OMNIGLOT: "C4", MINIIMAGENET: "C5"}, (), few_shot.edge),
    Family({OMNIGLOT: "C7-omniglot", MINIIMAGENET: "C7-miniimagenet"}, (), few_shot.best_cell),
    Family({"C4": "C4-omniglot-paper", "C7-omniglot": "C7-omniglot-paper"}, ("omniglot_paper",), few_shot.paper_scale),
    Family(("A-paper-{order}", "A-exact-{order}", "A-alpha_c-{order}"), ("linear_reference", "linear_audit"),
           linear.audit),
    Family(("A-paper-n2-{order}", "A-exact-n2-{order}", "A-alpha_c-n2-{order}"),
           ("linear_reference", "linear_audit_n2"), linear.audit_two_steps),
    Family(("A-sinusoid",), ("sinusoid_grid", "sinusoid_reference"), sinusoid.trained_point),
    Family(("A-local-sinusoid",), ("sinusoid_grid", "sinusoid_reference", "sinusoid_local_bound"),
           sinusoid.at_the_start),
    Family(("E1",), ("fig7",), sinusoid.edge_of_stability),
    Family(("G1-{problem}", "G2-{problem}"), ("guideline",), guideline.both_cells),
    Family(("G-exact",), ("guideline_exact",), guideline.exact_region),
    Family(("C6",), ("fig5",), curves.tg_against_h2),
)

SETTINGS = (("linear_grids", LINEAR), ("sinusoid_grid", SINUSOID), *((d, d) for d in FEW_SHOT),
            ("linear_audit", "audit"), ("fig2", "fig2"))  # input: config section


def ids_of(judge: Callable):
    """The ids REGISTRY gives ``judge``."""
    return next(f.ids for f in REGISTRY if f.judge is judge)


def _reads_of(family: Family, row: dict) -> tuple[str, ...]:
    """The inputs a row was judged from: its family's, or for a few-shot family the dataset whose id it has."""
    return family.reads or tuple(d for d, cid in family.ids.items() if cid == row["id"])


def evaluate(cfg: dict, inputs: dict) -> dict:
    """Every claim whose inputs are given (``inputs``: name in INPUTS -> result file; see ``results.Results``).
    ``cfg`` needs only its ``claims`` section: every other setting is read from the provenance of the result it
    belongs to, so a verdict always uses the settings its numbers were computed with."""
    results = Results(inputs, cfg["claims"]["near_edge_factor"])
    claims = [{**row, "settings_sha256": results.settings_digest(_reads_of(family, row))}
              for family in REGISTRY if results.has(*family.reads) for row in family.judge(family.ids, results)]
    settings = {"claims": cfg["claims"]}
    for name, section in SETTINGS:
        if results.has(name):
            path = results.path(name)
            settings[section] = results.provenance(path[-1] if name == "linear_grids" else path)["config"][section]
    eig = results.eigenvalues if results.has("linear_reference") else {}
    return {"eigenvalues": {int(s): e.tolist() for s, e in eig.items()}, "claims": claims, "settings": settings,
            "fig2": fig2_numbers(results.table(results.path("fig2"))) if results.has("fig2") else None,
            "sources": results.sources()}
