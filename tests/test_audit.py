"""The bisected stability boundary agrees with the exact quadratic theory, and the claims read it."""

import numpy as np
import pandas as pd
import pytest

from maml_convergence import audit, theory
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
