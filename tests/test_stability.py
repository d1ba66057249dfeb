"""The stability readings shared by the claims and the figures, and the few-shot outcomes."""

import math

import pandas as pd
import pytest

from maml_convergence.stability import (DIVERGED_MULTIPLE, RISE, TRAINED_DROP, chance_p_value, few_shot_outcomes,
                                        few_shot_stability, learned, stability_brackets)

CHANCE = math.log(5)
# 5-way, 15 query images a class, 32 evaluation and 32 held-out tasks: 2,400 predictions behind an accuracy
SECTION = {"n_way": 5, "k_query": 15, "eval_tasks": 32, "heldout_tasks": 32}


def few_shot_grid(final_losses, start=1.6, status=None, accuracy=0.6):
    n = len(final_losses)
    return pd.DataFrame({"alpha": [0.1] * n, "beta": [0.1 * 3 ** i for i in range(n)],
                         "status": status or ["ok"] * n, "initial_loss": [start] * n, "initial_eval_loss": [start] * n,
                         "final_loss": final_losses, "final_accuracy": accuracy, "heldout_accuracy": accuracy})


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
    assert few_shot_outcomes(grid, SECTION).tolist() == ["trained", "flat", "flat", "rose", "rose", "diverged",
                                                         "diverged", "diverged"]


@pytest.mark.parametrize("definition,stable", [("a", [True, True, True, False]), ("b", [True, True, False, False]),
                                               ("c", [True, False, False, False])])
def test_the_three_definitions_of_a_stable_cell(definition, stable):
    grid = few_shot_grid([1.2, 1.6, 2.5, 9.0])  # trained, flat, rose, diverged
    marked = few_shot_stability(grid, SECTION, definition)
    assert (marked.status == "ok").tolist() == stable
    assert marked.outcome.tolist() == ["trained", "flat", "rose", "diverged"]


def test_the_start_is_the_initial_parameters_loss_on_the_same_batch():
    grid = few_shot_grid([1.5]).assign(initial_loss=1.0, initial_eval_loss=1.6)
    assert few_shot_outcomes(grid, SECTION).tolist() == ["flat"]  # against 1.0 it would have risen


def test_brackets_read_the_boundary_off_each_column():
    grid = pd.DataFrame({"alpha": [0.0] * 4 + [0.1] * 3, "beta": [0.1, 1.0, 10.0, 30.0, 0.1, 1.0, 10.0],
                         "status": ["ok", "ok", "diverged", "ok", "diverged", "diverged", "ok"]})
    br = stability_brackets(grid).set_index("alpha")
    assert br.loc[0.0, ["last_ok", "first_diverged", "any_ok"]].tolist() == [1.0, 10.0, True]  # 30 trains, but late
    assert math.isnan(br.loc[0.1, "last_ok"]) and br.loc[0.1, "first_diverged"] == 0.1 and br.loc[0.1, "any_ok"]


def test_the_chance_p_value_is_the_binomial_tail():
    assert chance_p_value(8, 10, 0.5) == pytest.approx(56 / 1024, rel=1e-12)  # 45 + 10 + 1 ways of >= 8 of 10
    assert chance_p_value(10, 10, 0.5) == pytest.approx(1 / 1024, rel=1e-12)
    assert chance_p_value(0, 10, 0.5) == 1.0


def test_a_cell_at_chance_never_trained_however_far_its_loss_fell():
    """A known grid: every cell's loss fell 10 % or more, so each 'trained' under the previous definition; it has
    learned only if its held-out accuracy beats 1/5 with p < 0.01 over 2,400 predictions (480 expected by
    guessing, sd 19.6) and its loss ended below ln 5."""
    grid = pd.concat([few_shot_grid([1.2], accuracy=a) for a in (0.2, 0.21, 0.215, 0.23, 0.6)]
                     + [few_shot_grid([1.8], start=20.2, accuracy=0.3)], ignore_index=True)  # inflated start
    assert learned(grid, SECTION).tolist() == [False, False, False, True, True, False]  # p 0.51, 0.12, 0.036, 2e-4
    assert few_shot_outcomes(grid, SECTION).tolist() == ["flat"] * 3 + ["trained"] * 2 + ["flat"]
    assert few_shot_outcomes(grid, SECTION, "previous").tolist() == ["trained"] * 6
    # alpha = 0, joint training, scores chance by construction: it trains by its fall alone
    assert few_shot_outcomes(grid.assign(alpha=0.0), SECTION).tolist() == ["trained"] * 6
    # without held-out tasks the accuracy on the fixed evaluation batch decides, over as many predictions
    minis = grid.assign(heldout_accuracy=float("nan"), final_accuracy=[0.2, 0.2, 0.2, 0.6, 0.6, 0.6])
    assert learned(minis, {**SECTION, "heldout_tasks": 0}).tolist() == [False] * 3 + [True] * 2 + [False]
