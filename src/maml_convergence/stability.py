"""How stable is a cell of an (alpha, beta) grid? The readings the claims and the figures share.

``stability_brackets`` reads the boundary off a grid column by column. For few-shot
classification, where cross-entropy grows only linearly in the logits and rarely blows up the
way a regression loss does, ``few_shot_outcomes`` sorts every cell into one of four outcomes
by rules fixed before the data they judge (the README states them too):

    diverged  the run diverged (not finite, or its loss grew ``blowup_factor`` times), or its
              final loss is above DIVERGED_MULTIPLE x ln(n_way), chance level
    rose      not diverged, but its final loss ended more than RISE above where it started
    trained   its final loss ended at least TRAINED_DROP below where it started
    flat      none of these: it neither diverged nor learned (a classifier stuck near chance)

Start and end are the meta-loss of the initial and of the final parameters on the same fixed
batch of tasks (``initial_eval_loss``, ``final_loss``). Three definitions of a stable cell
follow, and ``few_shot_stability`` marks every other cell as diverged:

    (a) "not diverged"   stable unless diverged
    (b) "not unstable"   stable unless diverged or rose
    (c) "trained"        stable only if trained
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DIVERGED_MULTIPLE = 3.0   # (a): a final loss above 3 ln(n_way) is far worse than guessing
RISE = 0.02               # (b): ended more than 2 % above its start (2 %: cells at chance do not flip on rounding)
TRAINED_DROP = 0.10       # (c): ended at least 10 % below its start
DEFINITIONS = {"a": ("not diverged", {"rose", "trained", "flat"}),
               "b": ("not unstable", {"trained", "flat"}),
               "c": ("trained", {"trained"})}


def stability_brackets(grid: pd.DataFrame) -> pd.DataFrame:
    """Per alpha: the largest trained beta below the first diverged beta, and that beta.

    The true boundary lies in [last_ok, first_diverged]; last_ok is NaN when even the
    smallest beta diverged, first_diverged is NaN when no beta did.
    """
    rows = []
    for alpha, col in grid.sort_values("beta").groupby("alpha"):
        div = col[col.status == "diverged"]
        first_div = div.beta.min() if len(div) else math.nan
        below = col[(col.status == "ok") & ((col.beta < first_div) if len(div) else True)]
        rows.append({"alpha": alpha, "last_ok": below.beta.max() if len(below) else math.nan,
                     "first_diverged": first_div, "any_ok": bool((col.status == "ok").any())})
    return pd.DataFrame(rows).sort_values("alpha").reset_index(drop=True)


def outcomes(status, start, end, ceiling: float = math.inf) -> np.ndarray:
    """Each cell's outcome from its status, start and end loss (arrays): diverged (also: an end above
    ``ceiling``), rose, trained or flat, by the rules of the module's docstring."""
    status, start, end = np.asarray(status), np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    with np.errstate(invalid="ignore"):
        diverged = (status == "diverged") | ~np.isfinite(end) | (end > ceiling)
        return np.where(diverged, "diverged", np.where(end > start * (1 + RISE), "rose",
                        np.where(end <= start * (1 - TRAINED_DROP), "trained", "flat")))


def few_shot_outcomes(grid: pd.DataFrame, n_way: int) -> pd.Series:
    """Each cell's outcome: diverged, rose, trained or flat (see the module's docstring)."""
    start = grid["initial_eval_loss"] if "initial_eval_loss" in grid else grid["initial_loss"]
    return pd.Series(outcomes(grid.status, start, grid.final_loss, DIVERGED_MULTIPLE * math.log(n_way)),
                     index=grid.index, name="outcome")


def few_shot_stability(grid: pd.DataFrame, n_way: int, definition: str = "b") -> pd.DataFrame:
    """The grid with every cell that is not stable under ``definition`` ('a', 'b' or 'c') marked
    diverged, and its outcome in a column of its own."""
    out = grid.assign(outcome=few_shot_outcomes(grid, n_way))
    out.loc[~out.outcome.isin(DEFINITIONS[definition][1]), "status"] = "diverged"
    return out
