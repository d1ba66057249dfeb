"""The stability readings shared by the claims and the figures."""

import math

import pandas as pd

from maml_convergence.stability import chance_level_note, few_shot_stability, stability_brackets


def test_a_classifier_whose_loss_went_up_counts_as_unstable():
    grid = pd.DataFrame({"alpha": [0.1] * 4, "beta": [0.1, 1.0, 10.0, 30.0],
                         "status": ["ok", "ok", "ok", "diverged"],
                         "initial_loss": [1.6] * 4, "initial_eval_loss": [1.6] * 4,
                         "final_loss": [1.2, 1.62, 11.6, float("nan")]})
    marked = few_shot_stability(grid)
    assert marked.status.tolist() == ["ok", "ok", "diverged", "diverged"]
    assert stability_brackets(marked).iloc[0][["last_ok", "first_diverged"]].tolist() == [1.0, 10.0]


def test_a_compared_cell_at_chance_level_is_named_in_the_verdict():
    grid = pd.DataFrame({"alpha": [0.003, 0.003, 1.0], "beta": [1.0, 3.0, 10.0],
                         "final_plain_loss": [1.62, math.log(5) + 2e-4, 2.07]})
    measured = {"alpha_smallest": 0.003,
                "below_first_divergence": {"alpha": 1.0, "beta": 10.0, "smallest_alpha_beta": 3.0},
                "largest_trained": {"alpha": 1.0, "beta": 10.0, "smallest_alpha_beta": 3.0}}
    note = chance_level_note(grid, measured, 5)
    assert "alpha=0.003, beta=3" in note and "beta=10" not in note
    grid.loc[1, "final_plain_loss"] = math.log(5) + 2e-3
    assert chance_level_note(grid, measured, 5) == ""
