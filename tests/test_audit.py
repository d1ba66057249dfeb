"""The bisected stability boundary agrees with the exact quadratic theory, and the claims read it."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from maml_convergence import audit, claims, theory
from maml_convergence.claims import linear
from maml_convergence.grid import GridSpec
from maml_convergence.tasks import LinearRegressionTask


@pytest.fixture(scope="module")
def setting():
    problem = LinearRegressionTask(seed=0)
    batch = problem.sample(0, dtype=__import__("torch").float64)
    x = batch.xs[0, :, 0].numpy()
    H = 2 * np.array([[np.mean(x * x), np.mean(x)], [np.mean(x), 1.0]])
    spec = GridSpec(model="linear", problem=problem, alphas=[0.0], betas=[0.1], iterations=10, dtype="float64",
                    slots=512)
    return spec, np.linalg.eigvalsh(H)


@pytest.mark.slow
@pytest.mark.parametrize("order", ["second", "first"])
def test_bisection_brackets_the_exact_bound(setting, order):
    spec, eig = setting
    a_c = theory.paper_alpha_c(eig)
    alphas = [1e-3, 0.5 * a_c, 0.95 * a_c, 1.3 * a_c]
    table = audit.boundary_table(spec, eig, order, alphas, points=8, rounds=2, iterations=1500)
    for row in table.itertuples():
        if order == "first" and row.alpha > a_c:
            assert np.isnan(row.beta_stable)          # nothing converges past alpha_c
            continue
        assert row.beta_stable < row.beta_unstable <= row.beta_stable * 1.2
        assert row.beta_stable <= row.exact * 1.001 and row.exact <= row.beta_unstable * 1.001
    # the paper's formula is off for second order near alpha_c, exact for first order
    near = table[table.alpha == 0.95 * a_c].iloc[0]
    if order == "second":
        assert near.beta_stable > 1.05 * near.paper
    else:
        assert near.beta_stable <= near.paper <= near.beta_unstable


def test_audit_claim_rules():
    eig = [2.0, 10.0]
    alphas = np.array([1e-3, 0.05, 0.09])
    exact = theory.exact_beta_bound(alphas, eig, "second")
    table = pd.DataFrame({"order": "second", "alpha": alphas, "beta_stable": exact * 0.999,
                          "beta_unstable": exact * 1.001})
    table["beta_measured"] = np.sqrt(table.beta_stable * table.beta_unstable)
    table["paper"] = theory.paper_beta_bound(alphas, eig)
    table["exact"] = exact
    settings = {"iterations": 100, "rounds": 1, "points": 4}
    exact_row = linear.formula_against_bisection("A-exact-second", table, "second", "exact", eig, settings)
    assert exact_row["verdict"] == "holds" and "LESS than the default audit" in exact_row["rests_on"]
    paper_row = linear.formula_against_bisection("A-paper-second", table, "second", "paper", eig, settings)
    assert paper_row["verdict"] == "fails"


@pytest.mark.slow
@pytest.mark.parametrize("order", ["second"])  # first order at N = 2 is second order at N = 1 (test_theory.py)
def test_with_two_inner_steps_bisection_brackets_the_exact_bound_and_betas_train_past_alpha_c(setting, order):
    """N = 2: (1 - alpha lambda)^(2N) is never negative, so past 1/lambda_max a beta still converges, below the
    exact N-step bound; the paper's one-step formula is off well before alpha_c."""
    spec, eig = setting
    a_c = theory.paper_alpha_c(eig)
    alphas = [0.5 * a_c, 1.3 * a_c]
    table = audit.boundary_table(dataclasses.replace(spec, inner_steps=2), eig, order, alphas, points=8, rounds=2,
                                 iterations=1000)
    assert list(table.exact) == pytest.approx(list(theory.exact_beta_bound(alphas, eig, order, 2)))
    for row in table.itertuples():
        assert row.beta_stable < row.beta_unstable <= row.beta_stable * 1.2
        assert row.beta_stable <= row.exact * 1.001 and row.exact <= row.beta_unstable * 1.001
    half = table[table.alpha == 0.5 * a_c].iloc[0]
    assert half.beta_stable > 1.5 * half.paper


def audit_table(eig, order, inner_steps, alphas, width=0.001):
    """A bisection table whose brackets sit tightly around the exact ``inner_steps`` bound, as a correct
    measurement would; every alpha converges for some beta (no alpha_c at even N)."""
    exact = theory.exact_beta_bound(alphas, eig, order, inner_steps)
    table = pd.DataFrame({"seed": 0, "order": order, "alpha": alphas, "beta_stable": exact * (1 - width),
                          "beta_unstable": exact * (1 + width)})
    table["beta_measured"] = np.sqrt(table.beta_stable * table.beta_unstable)
    table["paper"] = theory.paper_beta_bound(alphas, eig)
    table["exact"] = exact
    return table


def test_the_two_step_rows_judge_the_exact_bound_the_one_step_formula_and_past_alpha_c():
    eig = [2.0, 10.0]  # alpha_c = 0.1
    alphas = np.array([1e-3, 0.05, 0.09, 0.11, 0.15])
    settings = {"iterations": 100, "rounds": 1, "points": 4}
    ids = claims.ids_of(linear.audit_two_steps)
    rows = {r["id"]: r for r in claims.audit_claims(ids, audit_table(eig, "second", 2, alphas), {0: eig}, settings,
                                                    inner_steps=2)}
    assert list(rows) == ["A-paper-n2-second", "A-exact-n2-second", "A-alpha_c-n2-second"]
    assert rows["A-exact-n2-second"]["verdict"] == "holds"
    assert "(1 - alpha lambda)^4) (exact, 2 inner steps)" in rows["A-exact-n2-second"]["claim"]
    assert rows["A-paper-n2-second"]["verdict"] == "fails"  # 2/(10 (0.5)^4) = 3.2 at alpha 0.05, not 0.4
    past = rows["A-alpha_c-n2-second"]
    assert past["verdict"] == "fails" and "2/2 alphas past alpha_c still converge (exact theory: all)" in past["why"]
    assert past["claim"].startswith("second-order MAML with 2 inner steps:")
    # a measurement 30 % off the exact bound fails it
    off = audit_table(eig, "first", 2, alphas)
    off["beta_stable"], off["beta_unstable"] = off.beta_stable * 1.3, off.beta_unstable * 1.3
    off["beta_measured"] = off.beta_measured * 1.3
    rows = {r["id"]: r for r in claims.audit_claims(ids, off, {0: eig}, settings, inner_steps=2)}
    assert rows["A-exact-n2-first"]["verdict"] == "fails"
