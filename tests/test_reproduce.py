"""The committed numbers come out again.

figures/claims.json (and the CLAIMS.md written from it) is what the workflow computed at the
paper's settings. Here the cheap parts are recomputed from scratch, at those settings, and held
to it: Fig. 2's curves; the linear-regression reference spectra and both Fig. 3 grids of every
data draw (claims C2-*); the audit's bisection of every data draw (claims A-*). All of it is float64
arithmetic on the CPU: verdicts and the summaries' text must be identical, and every number within
RTOL (what differs between BLAS builds and thread counts, nothing more). The sinusoid grid (float32,
about 200 s a seed here) and the long runs of Fig. 1 and 5 are not recomputed.
"""

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import figures_predate_the_workflow
from maml_convergence import claims, config, experiments
from maml_convergence.claims import linear
from maml_convergence.grid import run_grid

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "figures" / "claims.json"
RTOL = 1e-9

pytestmark = pytest.mark.slow  # recomputes at the paper's settings: minutes


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(COMMITTED.read_text())


@pytest.fixture(scope="module")
def paper():
    return config.load()


def same_numbers(got, want, path="") -> list[str]:
    """Where two JSON-like trees differ: structure and strings exactly, numbers within RTOL."""
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            return [f"{path}: keys {sorted(got) if isinstance(got, dict) else got} != {sorted(want)}"]
        return [d for k in want for d in same_numbers(got[k], want[k], f"{path}.{k}")]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: {got} != {want}"]
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in same_numbers(g, w, f"{path}[{i}]")]
    if isinstance(want, float) or isinstance(got, float):
        g, w = float("nan" if got is None else got), float("nan" if want is None else want)
        ok = (math.isnan(g) and math.isnan(w)) or g == w or abs(g - w) <= RTOL * max(abs(g), abs(w))
        return [] if ok else [f"{path}: {got!r} != {want!r}"]
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


def as_judged(committed_row: dict) -> dict:
    """A committed row as its judge returns it: without the settings digest the claims step adds to every row."""
    return {k: v for k, v in committed_row.items() if k != "settings_sha256"}


def json_round_trip(tree):
    """As the claims step writes it (numpy numbers, NaN and tuples become what figures/claims.json holds)."""
    return json.loads(json.dumps(tree, default=str))


def test_claims_md_is_the_committed_numbers(committed):
    if figures_predate_the_workflow(ROOT):
        pytest.skip(figures_predate_the_workflow(ROOT))
    assert (ROOT / "figures" / "CLAIMS.md").read_text() == claims.to_markdown(committed)


def test_the_committed_numbers_were_computed_at_the_papers_settings(committed, paper):
    for section in ("linear", "audit", "fig2"):
        assert committed["settings"][section] == paper[section], f"figures/claims.json: {section} is not the paper's"


def test_fig2_comes_out_again(committed, paper):
    assert same_numbers(claims.fig2_numbers(experiments.fig2_curves(paper)), committed["fig2"]) == []


@pytest.fixture(scope="module")
def reference(paper):
    return experiments.linear_reference(paper, "cpu")


def spectra(reference) -> dict:
    return {d["seed"]: np.asarray(d["eigenvalues"]) for d in reference["draws"]}


def test_the_reference_spectra_come_out_again(committed, reference):
    got = {str(s): e.tolist() for s, e in spectra(reference).items()}
    assert same_numbers(got, committed["eigenvalues"]) == []


@pytest.mark.parametrize("order", ["second", "first"])
def test_the_fig3_grids_and_claims_c2_come_out_again(committed, paper, reference, order, tmp_path):
    spec = experiments.linear_spec(paper, order, "cpu")
    path = tmp_path / "grid.csv"
    experiments.grid_frame(run_grid(spec, progress=False).rows).to_csv(path, index=False)  # as the workflow writes it
    rows = claims.linear_claims(claims.ids_of(linear.grid_claims), pd.read_csv(path), order, spec.iterations,
                                paper["linear"]["success_loss"], spectra(reference))
    want = {c["id"]: c for c in committed["claims"]}
    for row in json_round_trip(rows):
        if "why" not in want[row["id"]]:  # written before rows had a short claim and a why: hold the rest
            row = {k: v for k, v in row.items() if k not in ("short", "why")}
        assert same_numbers(row, as_judged(want[row["id"]]), row["id"]) == []


@pytest.mark.parametrize("inner_steps,suffix,name", [(1, "", "audit"), (2, "-n2", "audit_two_steps")])
def test_the_audit_and_its_claims_come_out_again(committed, paper, reference, inner_steps, suffix, name):
    """Every data draw, both orders: the audit measures rho from one meta-step per point, so all of it is seconds."""
    want = {c["id"]: c for c in committed["claims"]}
    if f"A-exact{suffix}-second" not in want:
        pytest.skip(f"figures/claims.json predates the audit with {inner_steps} inner steps: run `make reproduce`")
    table = experiments.linear_audit(paper, "cpu", reference, inner_steps)
    table = pd.read_csv(io.StringIO(table.to_csv(index=False)))  # as the claims step reads the workflow's CSV
    rows = claims.audit_claims(claims.ids_of(getattr(linear, name)), table, spectra(reference), paper["audit"],
                               inner_steps)
    assert len(rows) == 6
    for row in json_round_trip(rows):
        assert same_numbers(row, as_judged(want[row["id"]]), row["id"]) == []


@pytest.mark.parametrize("order", ["second", "first"])
def test_the_two_step_fig3_grids_come_out_as_their_committed_source_data(paper, order, tmp_path):
    committed_grid = ROOT / "figures" / "data" / "fig3-n2" / f"grid_{order}.csv.gz"
    if not committed_grid.exists():
        pytest.skip("figures/data/fig3-n2 is not there yet: run `make reproduce`")
    spec = experiments.linear_spec(paper, order, "cpu", inner_steps=2)
    path = tmp_path / "grid.csv"
    experiments.grid_frame(run_grid(spec, progress=False).rows).to_csv(path, index=False)  # as the workflow writes it
    got, want = pd.read_csv(path), pd.read_csv(committed_grid)
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    assert same_numbers(json_round_trip(got.to_dict("records")), json_round_trip(want.to_dict("records"))) == []
