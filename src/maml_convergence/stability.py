"""How stable is a cell of an (alpha, beta) grid? The readings the claims and the figures share.

``stability_brackets`` reads the boundary off a grid column by column. For few-shot
classification, where cross-entropy grows only linearly in the logits and rarely blows up the
way a regression loss does, ``few_shot_outcomes`` sorts every cell into one of four outcomes
by rules fixed before the data they judge (the README states them too):

    diverged  the run diverged (not finite, or its loss grew ``blowup_factor`` times), or its
              final loss is above DIVERGED_MULTIPLE x ln(n_way), chance level
    rose      not diverged, but its final loss ended more than RISE above where it started
    trained   its final loss ended at least TRAINED_DROP below where it started, and it learned
    flat      none of these: it neither diverged nor learned (a classifier stuck near chance)

Start and end are the meta-loss of the initial and of the final parameters on the same fixed
batch of tasks (``initial_eval_loss``, ``final_loss``). A cell has *learned* (``learned``) when
it beats chance: its accuracy after adaptation is above 1/n_way with p < CHANCE_P by a one-sided
binomial test on the predictions it was measured on (the held-out tasks' query images where the
grid has them, else the fixed evaluation batch's), and its final loss is below ln(n_way): it beats
chance in accuracy and in loss. (The test takes the predictions as independent; those of one task
share one adapted network, so its p is optimistic, and a cell just past the threshold is weak
evidence.) A cell with alpha = 0, joint training, scores chance by construction (no inner step
adapts to a task's labels) and trains by its fall alone. Until 2026-12 'trained' asked only for the
10 % drop (``definition="previous"``): at a large alpha the inner step inflates the start, and cells
ending at chance accuracy counted as trained.

Three definitions of a stable cell follow, and ``few_shot_stability`` marks every other cell as
diverged:

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
CHANCE_P = 0.01           # learned: accuracy above chance with p < 0.01 (one-sided binomial test)
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


def outcomes(status, start, end, ceiling: float = math.inf, learned=True) -> np.ndarray:
    """Each cell's outcome from its status, start and end loss (arrays): diverged (also: an end above
    ``ceiling``), rose, trained (only where ``learned``) or flat, by the rules of the module's docstring."""
    status, start, end = np.asarray(status), np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    with np.errstate(invalid="ignore"):
        diverged = (status == "diverged") | ~np.isfinite(end) | (end > ceiling)
        dropped = (end <= start * (1 - TRAINED_DROP)) & np.asarray(learned, dtype=bool)
        return np.where(diverged, "diverged", np.where(end > start * (1 + RISE), "rose",
                        np.where(dropped, "trained", "flat")))


def chance_p_value(hits: int, n: int, chance: float) -> float:
    """P(X >= hits) for X ~ Binomial(n, chance): how often guessing does at least this well."""
    if hits <= 0:
        return 1.0
    if hits > n:
        return 0.0
    k = np.arange(hits, n + 1)
    log_terms = (math.lgamma(n + 1) - np.array([math.lgamma(i + 1) + math.lgamma(n - i + 1) for i in k])
                 + k * math.log(chance) + (n - k) * math.log1p(-chance))
    top = log_terms.max()
    return float(min(1.0, math.exp(top) * np.exp(log_terms - top).sum()))


def accuracy_measured(grid: pd.DataFrame, section: dict) -> tuple[str, int]:
    """The accuracy column a cell's learning is judged by and the number of predictions behind it: the held-out
    tasks' query images where the grid measured them, else the fixed evaluation batch's."""
    heldout = section.get("heldout_tasks", 0) and grid.get("heldout_accuracy", pd.Series(dtype=float)).notna().any()
    tasks = section["heldout_tasks"] if heldout else section["eval_tasks"]
    return ("heldout_accuracy" if heldout else "final_accuracy"), tasks * section["n_way"] * section["k_query"]


def learned(grid: pd.DataFrame, section: dict) -> pd.Series:
    """Per cell: did it beat chance (module docstring)? Its accuracy above 1/n_way with p < CHANCE_P on the
    predictions it was measured on, and its final loss below ln(n_way); a cell without them did not."""
    column, n = accuracy_measured(grid, section)
    chance = 1 / section["n_way"]
    accuracy = grid[column] if column in grid else pd.Series(np.nan, index=grid.index)
    p = [chance_p_value(round(a * n), n, chance) if np.isfinite(a) else 1.0 for a in accuracy.astype(float)]
    with np.errstate(invalid="ignore"):
        below = grid.final_loss.astype(float) < math.log(section["n_way"])
    return pd.Series((np.asarray(p) < CHANCE_P) & below.to_numpy() & (grid.status == "ok").to_numpy(),
                     index=grid.index, name="learned")


def few_shot_outcomes(grid: pd.DataFrame, section: dict, definition: str = "learned") -> pd.Series:
    """Each cell's outcome: diverged, rose, trained or flat (see the module's docstring); ``section``: the grid's
    config section (n_way, and where its accuracy was measured). A cell with alpha = 0 (joint training) scores
    chance by construction, since no inner step adapts to a task's labels: it trains by its fall alone.
    ``definition="previous"``: 'trained' without the test that the cell learned, as before 2026-12."""
    start = grid["initial_eval_loss"] if "initial_eval_loss" in grid else grid["initial_loss"]
    beat_chance = (learned(grid, section) | (grid.alpha == 0)) if definition == "learned" else True
    return pd.Series(outcomes(grid.status, start, grid.final_loss, DIVERGED_MULTIPLE * math.log(section["n_way"]),
                              beat_chance), index=grid.index, name="outcome")


def few_shot_stability(grid: pd.DataFrame, section: dict, stable: str = "b",
                       definition: str = "learned") -> pd.DataFrame:
    """The grid with every cell that is not stable under ``stable`` ('a', 'b' or 'c') marked diverged, its
    outcome and whether it learned in columns of their own."""
    out = grid.assign(outcome=few_shot_outcomes(grid, section, definition), learned=learned(grid, section))
    out.loc[~out.outcome.isin(DEFINITIONS[stable][1]), "status"] = "diverged"
    return out
