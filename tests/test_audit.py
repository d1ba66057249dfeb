"""The audit's classifier reads the spectral radius of the engine's own meta-step, so a slowly growing direction is
never hidden by a decaying one; the bisected stability boundary agrees with the exact quadratic theory, and the
claims read it, counting every alpha the same way."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from maml_convergence import audit, claims, theory
from maml_convergence.claims import linear
from maml_convergence.claims import verdicts
from maml_convergence.grid import GridSpec, RunOptions, run_grid
from maml_convergence.tasks import LinearRegressionTask


def hessian(seed: int) -> np.ndarray:
    """The linear-regression task's Hessian, in closed form from its points."""
    x = LinearRegressionTask(seed=seed).sample(0, dtype=__import__("torch").float64).xs[0, :, 0].numpy()
    return 2 * np.array([[np.mean(x * x), np.mean(x)], [np.mean(x), 1.0]])


def spec_of(seed: int, order: str = "second", inner_steps: int = 1) -> GridSpec:
    return GridSpec(model="linear", problem=LinearRegressionTask(seed=seed), alphas=[0.0], betas=[0.1], iterations=10,
                    dtype="float64", order=order, inner_steps=inner_steps, init_seed=seed, run=RunOptions(slots=512))


@pytest.fixture(scope="module")
def setting():
    return spec_of(0), np.linalg.eigvalsh(hessian(0))


def test_a_slowly_growing_top_direction_that_a_falling_loss_hides_is_classified_unstable():
    """Data draw 1, first order, alpha = 1.03 alpha_c, beta = 4.17e-4: the top direction grows by 2.2e-4 a step
    while the low one decays, so the loss falls from iteration 1000 to 2000 (the run-length test read 'stable'),
    yet the iteration diverges: rho > 1, as the exact iteration matrix says."""
    spec, H = spec_of(1, "first"), hessian(1)
    cell = (1.03 * theory.paper_alpha_c(np.linalg.eigvalsh(H)), 4.17e-4)
    runs = [run_grid(dataclasses.replace(spec, pairs=[cell], iterations=n), progress=False).rows[0]
            for n in (1000, 2000)]
    assert runs[1]["final_plain_loss"] < runs[0]["final_plain_loss"]  # the loss hides the growth
    rho = audit.spectral_radii(spec, [cell])[0]
    exact = np.abs(np.linalg.eigvals(theory.iteration_matrix(H, *cell, "first"))).max()
    assert rho == pytest.approx(exact, rel=1e-10) and 1.0001 < rho < 1.0003
    assert audit.unstable(spec, [cell]).tolist() == [True]


@pytest.mark.parametrize("order", ["second", "first"])
@pytest.mark.parametrize("inner_steps", [1, 2])
def test_a_cell_just_inside_the_exact_bound_is_stable_and_one_just_outside_is_not(order, inner_steps):
    spec, H = spec_of(1, order, inner_steps), hessian(1)
    eig = np.linalg.eigvalsh(H)
    alphas = [0.01, 0.5 * theory.paper_alpha_c(eig), 0.9 * theory.paper_alpha_c(eig)]
    bound = theory.exact_beta_bound(alphas, eig, order, inner_steps)
    cells = [(a, f * b) for a, b in zip(alphas, bound) for f in (0.999, 1.001)]
    assert audit.unstable(spec, cells).tolist() == [False, True] * len(alphas)
    exact = [np.abs(np.linalg.eigvals(theory.iteration_matrix(H, a, b, order, inner_steps))).max() for a, b in cells]
    assert audit.spectral_radii(spec, cells) == pytest.approx(exact, rel=1e-10)


def test_a_meta_step_that_is_not_affine_is_refused_naming_the_cell():
    spec = dataclasses.replace(spec_of(0), dtype="float32")  # float32 rounding: off the affine map by ~1e-7
    with pytest.raises(ValueError, match=r"alpha=0.01, beta=0.1 is not affine"):
        audit.spectral_radii(spec, [(0.01, 0.1)])


@pytest.mark.parametrize("order", ["second", "first"])
def test_bisection_brackets_the_exact_bound(setting, order):
    spec, eig = setting
    a_c = theory.paper_alpha_c(eig)
    alphas = [1e-3, 0.5 * a_c, 0.95 * a_c, 1.3 * a_c]
    table = audit.boundary_table(spec, eig, order, alphas, points=8, rounds=2)
    for row in table.itertuples():
        if order == "first" and row.alpha > a_c:
            assert np.isnan(row.beta_stable)          # nothing converges past alpha_c
            continue
        assert row.beta_stable < row.beta_unstable <= row.beta_stable * 1.2
        assert row.beta_stable <= row.exact * 1.001 and row.exact <= row.beta_unstable * 1.001
        assert row.rho_stable < 1 <= row.rho_unstable
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
    settings = {"rounds": 1, "points": 4, "beta_range": [1e-4, 1e2]}
    exact_row = linear.formula_against_bisection("A-exact-second", table, "second", "exact", eig, settings)
    assert exact_row["verdict"] == "holds" and "LESS than the default audit" in exact_row["rests_on"]
    paper_row = linear.formula_against_bisection("A-paper-second", table, "second", "paper", eig, settings)
    assert paper_row["verdict"] == "fails"


@pytest.mark.parametrize("order", ["second"])  # first order at N = 2 is second order at N = 1 (test_theory.py)
def test_with_two_inner_steps_bisection_brackets_the_exact_bound_and_betas_train_past_alpha_c(setting, order):
    """N = 2: (1 - alpha lambda)^(2N) is never negative, so past 1/lambda_max a beta still converges, below the
    exact N-step bound; the paper's one-step formula is off well before alpha_c."""
    spec, eig = setting
    a_c = theory.paper_alpha_c(eig)
    alphas = [0.5 * a_c, 1.3 * a_c]
    table = audit.boundary_table(dataclasses.replace(spec, inner_steps=2), eig, order, alphas, points=8, rounds=2)
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
    settings = {"rounds": 1, "points": 4, "beta_range": [1e-4, 1e2]}
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


def test_past_alpha_c_every_alpha_counts_whether_theory_and_measurement_agree_or_not():
    """First order, N = 1: past alpha_c the exact bound is 0. An alpha where no beta of the range converges agrees
    with it (inside, counted); one where the measurement found a converging beta disagrees, with an infinite
    error that the row reports."""
    eig = [2.0, 10.0]  # alpha_c = 0.1
    alphas = np.array([0.05, 0.11, 0.15])
    table = audit_table(eig, "first", 1, alphas)
    table.loc[1:, "beta_stable"], table.loc[1:, "beta_unstable"] = np.nan, 1e-4  # none converges: agrees
    table["beta_measured"] = np.sqrt(table.beta_stable * table.beta_unstable)
    settings = {"rounds": 1, "points": 4, "beta_range": [1e-4, 1e2]}
    row = linear.formula_against_bisection("A-exact-first", table, "first", "exact", eig, settings)
    assert row["verdict"] == "holds" and "inside 3/3 bisection brackets" in row["why"]
    assert row["measured"]["outside_range"] == 2 == row["measured"]["outside_range_inside"]
    table.loc[2, ["beta_stable", "beta_unstable"]] = 1e-3, 2e-3  # a converging beta past alpha_c: disagrees
    table["beta_measured"] = np.sqrt(table.beta_stable * table.beta_unstable)
    row = linear.formula_against_bisection("A-exact-first", table, "first", "exact", eig, settings)
    assert row["verdict"] == "fails"
    assert "inside 2/3 bisection brackets; max |rel. error| inf at alpha 0.15" in row["why"]


def test_a_draw_that_fails_gives_its_reason_and_an_infinite_error_is_not_dropped_from_the_spread():
    table = pd.DataFrame({"seed": [0, 1, 2], "x": [1.0, 2.0, 3.0]})

    def one(seed, rows):
        bad = seed == 1
        return {"id": "X", "claim": "c", "short": "s", "verdict": "fails" if bad else "holds",
                "why": f"reason {seed}", "summary": f"summary {seed}", "rule": "r", "rests_on": "o",
                "measured": {"error": np.inf if bad else 0.001 * (seed + 1)}}

    row = verdicts.per_seed("draw", table, one, spread_of=("max error", lambda m: m["error"]))
    assert row["verdict"] == "inconclusive"
    assert row["why"] == "holds in 2, fails in 1 of 3 draws; fails in draws 1 (draw 1: reason 1)"
    assert row["summary"].startswith("draw 1 (fails): summary 1; over 3 draws")
    assert row["summary"].endswith("max error over the draws: 0.001-0.003 (median 0.002), and 1 of 3 inf")


def test_a_spread_of_negative_values_reads_min_to_max_not_two_minus_signs():
    assert verdicts.spread([-20.8, -4.79, -16.7]) == "-20.8 to -4.79 (median -16.7)"
    assert verdicts.spread([-1.0, 2.0, None]) == "-1 to 2 (median 0.5), and 1 of 3 none"
    assert verdicts.spread([0.5, 1.5]) == "0.5-1.5 (median 1)"
