"""How stable is a cell of an (alpha, beta) grid? The readings the claims and the figures share.

``stability_brackets`` reads the boundary off a grid column by column; ``few_shot_stability``
says when a classifier counts as unstable; ``chance_level_note`` names compared cells that
collapsed to chance level, which no rule here counts as unstable.
"""

from __future__ import annotations

import math

import pandas as pd


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


FEW_SHOT_RISE = 0.02  # a classifier is unstable when its loss ends more than 2 % above its start


def few_shot_stability(grid: pd.DataFrame) -> pd.DataFrame:
    """The grid with a cell counted as diverged when its training loss ended above where it began.

    Cross-entropy grows only linearly in the logits, so an unstable classifier can climb
    from 1.6 to 12 in 100 iterations without ever reaching the 1000x blow-up that marks
    divergence in regression; a loss that went up over meta-training is the sign. Start and
    end are compared on the same fixed batch of tasks (``initial_eval_loss``, the initial
    parameters' loss at the cell's alpha), with 2 % slack so that cells that barely moved
    from chance level do not flip on rounding.
    """
    out = grid.copy()
    start = out["initial_eval_loss"] if "initial_eval_loss" in out else out["initial_loss"]
    worse = (out.status == "ok") & ~(out.final_loss <= start * (1 + FEW_SHOT_RISE))
    out.loc[worse, "status"] = "diverged"
    return out


CHANCE_TOL = 1e-3  # |plain loss - ln(ways)| below this: the network outputs the same logits for every class


def chance_level_note(grid: pd.DataFrame, measured: dict, ways: int) -> str:
    """Which of the cells a few-shot verdict compares ended at chance level.

    A large meta-step can collapse the classifier to one output for every image (loss ln 5,
    gradients zero): it neither diverges nor rises above a start that was near chance anyway,
    so the stability rule counts it as stable. Saying so keeps a verdict from resting unseen on it.
    """
    cells = set()
    for reading in (measured["below_first_divergence"], measured["largest_trained"]):
        cells |= {(measured["alpha_smallest"], reading["smallest_alpha_beta"]), (reading["alpha"], reading["beta"])}
    flat = []
    for alpha, beta in sorted(cells):
        row = grid[(grid.alpha == alpha) & (grid.beta == beta)]
        if len(row) and abs(float(row.final_plain_loss.iloc[0]) - math.log(ways)) < CHANCE_TOL:
            flat.append(f"alpha={alpha:g}, beta={beta:g}")
    if not flat:
        return ""
    return (f"; compared cells at chance level (plain loss ln {ways} +- {CHANCE_TOL:g}, one output for every class, "
            f"counted as stable by the rule): {'; '.join(flat)}")
