"""The stability readings shared by the claims and the figures, and the few-shot outcomes."""

import math

import pandas as pd
import pytest

from maml_convergence.stability import (DIVERGED_MULTIPLE, RISE, TRAINED_DROP, few_shot_outcomes, few_shot_stability,
                                        stability_brackets)

CHANCE = math.log(5)


def few_shot_grid(final_losses, start=1.6, status=None):
    n = len(final_losses)
    return pd.DataFrame({"alpha": [0.1] * n, "beta": [0.1 * 3 ** i for i in range(n)],
                         "status": status or ["ok"] * n, "initial_loss": [start] * n, "initial_eval_loss": [start] * n,
                         "final_loss": final_losses})


def test_each_outcome_follows_its_rule_at_its_threshold():
    start = 1.6
    losses = [start * (1 - TRAINED_DROP),            # trained: exactly 10 % below
              start * (1 - TRAINED_DROP) + 1e-9,     # flat: just short of it
              start * (1 + RISE),                    # flat: exactly 2 % above is not yet a rise
              start * (1 + RISE) + 1e-9,             # rose
              DIVERGED_MULTIPLE * CHANCE,            # rose: at the chance-level multiple, not above it
              DIVERGED_MULTIPLE * CHANCE + 1e-9,     # diverged: above 3 ln 5
              float("nan"),                          # diverged: not finite
              1.0]                                   # diverged: the grid said so (blow-up)
    grid = few_shot_grid(losses, start, status=["ok"] * 7 + ["diverged"])
    assert few_shot_outcomes(grid, 5).tolist() == ["trained", "flat", "flat", "rose", "rose", "diverged", "diverged",
                                                   "diverged"]


@pytest.mark.parametrize("definition,stable", [("a", [True, True, True, False]), ("b", [True, True, False, False]),
                                               ("c", [True, False, False, False])])
def test_the_three_definitions_of_a_stable_cell(definition, stable):
    grid = few_shot_grid([1.2, 1.6, 2.5, 9.0])  # trained, flat, rose, diverged
    marked = few_shot_stability(grid, 5, definition)
    assert (marked.status == "ok").tolist() == stable
    assert marked.outcome.tolist() == ["trained", "flat", "rose", "diverged"]


def test_the_start_is_the_initial_parameters_loss_on_the_same_batch():
    grid = few_shot_grid([1.5]).assign(initial_loss=1.0, initial_eval_loss=1.6)
    assert few_shot_outcomes(grid, 5).tolist() == ["flat"]  # against 1.0 it would have risen


def test_brackets_read_the_boundary_off_each_column():
    grid = pd.DataFrame({"alpha": [0.0] * 4 + [0.1] * 3, "beta": [0.1, 1.0, 10.0, 30.0, 0.1, 1.0, 10.0],
                         "status": ["ok", "ok", "diverged", "ok", "diverged", "diverged", "ok"]})
    br = stability_brackets(grid).set_index("alpha")
    assert br.loc[0.0, ["last_ok", "first_diverged", "any_ok"]].tolist() == [1.0, 10.0, True]  # 30 trains, but late
    assert math.isnan(br.loc[0.1, "last_ok"]) and br.loc[0.1, "first_diverged"] == 0.1 and br.loc[0.1, "any_ok"]
