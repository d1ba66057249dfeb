"""Linear regression: Fig. 3's grids against the paper's alpha_c and beta_c(alpha), and the bisection audit
against the paper's formula and the exact one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import theory
from ..config import paper_scale
from ..problems import LINEAR
from ..stability import stability_brackets
from .results import Results
from .verdicts import CONSISTENT_SHARE, FAIL_SHARE, inside_bracket, per_seed, scale_note, share_verdict


def beta_c_is_the_boundary(cid: str, order: str, grid: pd.DataFrame, eig, iterations: int) -> dict:
    br = stability_brackets(grid)
    a_c = theory.paper_alpha_c(eig)
    cols = br[br.alpha < a_c].copy()
    cols["theory"] = theory.paper_beta_bound(cols.alpha.to_numpy(), eig)
    cols["exact"] = theory.exact_beta_bound(cols.alpha.to_numpy(), eig, order)
    beta_max = grid.beta.max()
    consistent = [inside_bracket(r.theory, r, beta_max) for r in cols.itertuples()]
    exact_consistent = [inside_bracket(r.exact, r, beta_max) for r in cols.itertuples()]
    measured = np.sqrt(cols.last_ok * cols.first_diverged)  # geometric centre of the bracket
    rel = (measured / cols.theory - 1).abs()
    share, verdict = share_verdict(consistent)
    return {
        "id": cid, "panel": f"{order}-order MAML",
        "claim": "beta_c(alpha) = min_i 2/(lambda_i - alpha lambda_i^2) on linear regression (Fig. 3)",
        "short": f"linear regression, {order} order: the paper's beta_c(alpha) is the boundary",
        "verdict": verdict, "why": f"theory inside the measured bracket in {sum(consistent)}/{len(cols)} columns",
        "measured": {"columns": len(cols), "theory_inside_bracket": int(sum(consistent)),
                     "share_inside": share,
                     "median_relative_error": float(np.nanmedian(rel)) if rel.notna().any() else None,
                     "max_relative_error": float(np.nanmax(rel)) if rel.notna().any() else None,
                     "exact_quadratic_inside_bracket": int(sum(exact_consistent)),
                     "brackets": cols.to_dict("records")},
        "summary": (f"theory inside measured bracket in {sum(consistent)}/{len(cols)} alpha columns; "
                    f"median |rel. error| {np.nanmedian(rel):.2f} (bracket centre vs theory); exact "
                    f"quadratic bound inside in {sum(exact_consistent)}/{len(cols)}"),
        "rule": f"holds if theory lies in [last trained beta, first diverged beta] in >= {CONSISTENT_SHARE:.0%} "
                f"of columns with alpha < alpha_c, fails below {FAIL_SHARE:.0%}",
        "rests_on": scale_note(LINEAR, grid, iterations),
    }


def nothing_trains_past_alpha_c(cid: str, order: str, grid: pd.DataFrame, eig, iterations: int,
                                success_loss: float) -> dict:
    """Past alpha_c no beta should train: the black region of Fig. 3 ends at 1/lambda_max.

    'Trains' means final loss below the success threshold (black in Fig. 3). Divergence is not
    required: just past alpha_c first-order MAML grows too slowly to blow up in 500 iterations.
    """
    trains = (grid.status == "ok") & (grid.final_loss < success_loss)
    by_alpha = trains.groupby(grid.alpha).any().sort_index()
    a_c = theory.paper_alpha_c(eig)
    dead = by_alpha[~by_alpha]
    last_trained = by_alpha[by_alpha].index.max() if by_alpha.any() else math.nan
    if len(dead):
        first_dead = dead.index.min()
        before = by_alpha[by_alpha.index < first_dead]
        lo = before.index.max() if len(before) else math.nan
        trains_past = bool(by_alpha[by_alpha.index > first_dead].any())
        inside = (math.isnan(lo) or lo < a_c) and a_c <= first_dead and not trains_past
        verdict = "holds" if inside else "fails"
        measured = (f"no beta trains from alpha = {first_dead:g} (last alpha where one does: {last_trained:g})")
        why = f"none trains from alpha {first_dead:g}" + (", yet some do beyond" if trains_past else "")
        rel = abs(math.sqrt(lo * first_dead) / a_c - 1) if not math.isnan(lo) else None
    else:
        first_dead, lo, rel = math.nan, last_trained, None
        if a_c <= by_alpha.index.max():
            verdict = "fails"
            measured = f"some beta trains at every alpha up to {by_alpha.index.max():g}, past alpha_c"
            why = f"some beta trains up to alpha {by_alpha.index.max():g}"
        else:
            verdict = "inconclusive"
            measured = f"alpha_c lies beyond the grid's largest alpha {by_alpha.index.max():g}"
            why = "alpha_c lies beyond the grid"
    return {
        "id": cid, "panel": f"{order}-order MAML",
        "claim": "alpha_c = 1/lambda_max: past it no beta trains (linear regression, Fig. 3)",
        "short": f"linear regression, {order} order: past alpha_c = 1/lambda_max no beta trains",
        "verdict": verdict, "why": f"alpha_c = {a_c:.3g}; {why}",
        "measured": {"alpha_c_theory": a_c, "first_alpha_none_trains": first_dead,
                     "last_alpha_trained": last_trained, "relative_error": rel,
                     "exact_quadratic_alpha_c": theory.exact_alpha_c(eig, order)},
        "summary": f"alpha_c theory {a_c:.4g}; measured: {measured}",
        "rule": f"holds if 1/lambda_max lies between the last alpha where some beta reaches loss < {success_loss:g} "
                "and the first alpha where none does, with none training beyond",
        "rests_on": scale_note(LINEAR, grid, iterations),
    }


def linear_claims(ids, grid: pd.DataFrame, order: str, iterations: int, success_loss: float, eig: dict) -> list[dict]:
    """C2-alpha and C2-beta of one MAML order, on every data draw (``eig``: each draw's spectrum); ``ids``: their
    ids, "{order}" left to fill."""
    alpha_id, beta_id = (i.format(order=order) for i in ids)
    note = scale_note(LINEAR, grid, iterations)
    return [per_seed("draw", grid, lambda s, g: nothing_trains_past_alpha_c(alpha_id, order, g, eig[s], iterations,
                                                                            success_loss), note),
            per_seed("draw", grid, lambda s, g: beta_c_is_the_boundary(beta_id, order, g, eig[s], iterations), note,
                     ("share of columns inside", lambda m: m["share_inside"]))]


def grid_claims(ids, results: Results) -> list[dict]:
    """C2-alpha and C2-beta of every MAML order whose Fig. 3 grid is given."""
    rows = []
    for path in results.path("linear_grids"):
        prov = results.provenance(path)
        rows += linear_claims(ids, results.table(path), prov["order"], prov["iterations"],
                              prov["config"]["linear"]["success_loss"], results.eigenvalues)
    return rows


AUDIT_SLACK, AUDIT_FAILS = 0.001, 0.10  # formula vs bisected boundary: bracket slack, failure threshold


def _audit_note(audit_cfg: dict, n_alphas: int | str) -> str:
    """Bisection has no counterpart in the paper: compare with this repository's default audit."""
    default = paper_scale()["audit"]
    note = (f"bisection at {n_alphas} alphas, {audit_cfg['rounds']} rounds x {audit_cfg['points']} betas, each "
            "cell classified by the spectral radius of the engine's meta-step")
    if any(audit_cfg[k] < default[k] for k in ("rounds", "points")):
        note += f" (LESS than the default audit: {default['rounds']} rounds x {default['points']} betas)"
    return note


def _with_steps(inner_steps: int) -> str:
    return f" with {inner_steps} inner steps" if inner_steps > 1 else ""


def _exact_name(order: str, inner_steps: int) -> str:
    power = 2 * inner_steps if order == "second" else inner_steps
    if inner_steps == 1:
        return f"2/(lambda (1 - alpha lambda){'^2' if power == 2 else ''}) (exact)"
    return f"2/(lambda (1 - alpha lambda)^{power}) (exact, {inner_steps} inner steps)"


def formula_against_bisection(cid: str, table: pd.DataFrame, order: str, formula: str, eig, audit_cfg: dict,
                              inner_steps: int = 1) -> dict:
    """One formula (paper: the one-step beta_c; exact: ``inner_steps``' own bound) against the bisected boundary of
    one MAML order run with ``inner_steps`` inner steps.

    Every alpha where the formula is defined counts, whether the measured boundary lies inside the beta range or
    outside it (no beta of the range converges, or every one does): there it is inside its bracket when the
    formula lies outside the range on the same side, and its |rel. error| is at least how far the formula is
    from the range's end. An infinite error (a formula of 0 against a measured boundary) is reported as such."""
    a_c = theory.paper_alpha_c(eig)
    t = table[table.order == order]
    if formula == "paper":
        t = t[t.alpha < a_c]  # the paper's beta_c is defined below alpha_c only
    t = t[np.isfinite(t[formula])]
    below, above = t.beta_stable.isna(), ~np.isfinite(t.beta_unstable)  # the boundary is outside the range
    bounded = ~below & ~above
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = pd.concat([(t.beta_measured / t[formula] - 1).abs()[bounded],
                         (t[formula] / t.beta_unstable - 1).clip(lower=0)[below],  # at least this far off
                         (t.beta_stable / t[formula] - 1).clip(lower=0)[above]]).reindex(t.index)
    precision = float((t.beta_unstable / t.beta_stable - 1)[bounded].max()) if bounded.any() else math.nan
    worst = t.loc[rel.fillna(math.inf).idxmax()] if len(t) else None
    off = t[rel > AUDIT_FAILS]
    slack = 1 + AUDIT_SLACK
    inside = (t.beta_stable.fillna(0) <= t[formula] * slack) & (t[formula] <= t.beta_unstable * slack)
    verdict = ("inconclusive" if not len(t) else "holds" if inside.all()
               else "fails" if rel.max() > AUDIT_FAILS else "inconclusive")
    name = "2/(lambda - alpha lambda^2) (paper)" if formula == "paper" else _exact_name(order, inner_steps)
    summary = why = "no comparable alpha"
    if len(t):
        outside = f"; the boundary outside the beta range at {int((~bounded).sum())}, the formula too at " \
                  f"{int((inside & ~bounded).sum())}" if (~bounded).any() else ""
        why = (f"inside {int(inside.sum())}/{len(t)} bisection brackets; max |rel. error| {rel.max():.3g} at alpha "
               f"{worst.alpha:.3g}")
        summary = (f"{len(t)} alphas; |rel. error| median {rel[bounded].median():.3g} (boundary inside the range), "
                   f"max {rel.max():.3g} at alpha={worst.alpha:.3g}"
                   + (f"; > {AUDIT_FAILS:.0%} from alpha = {off.alpha.min():.3g}" if len(off) else "")
                   + f"; inside the bisection bracket (width <= {precision:.2%}) at {int(inside.sum())}/{len(t)}"
                   + outside)
    steps = _with_steps(inner_steps)
    return {"id": cid, "claim": f"{order}-order MAML{steps} on linear regression: beta_c = {name}",
            "short": f"linear regression, {order} order{steps.replace(' with', ',')}: beta_c = {name}",
            "verdict": verdict, "why": why, "summary": summary,
            "measured": {"median_relative_error": float(rel[bounded].median()) if bounded.any() else None,
                         "max_relative_error": float(rel.max()) if len(t) else None,
                         "outside_range": int((~bounded).sum()), "outside_range_inside": int((inside & ~bounded).sum()),
                         "bracket_precision": precision, "rows": t.to_dict("records")},
            "rule": f"holds if the formula lies inside every bisection bracket (+-{AUDIT_SLACK:.1%}; where no beta of "
                    f"the audit's range [{audit_cfg['beta_range'][0]:g}, {audit_cfg['beta_range'][1]:g}] converges, "
                    "below the range; where every beta does, above it), fails if its |rel. error| exceeds "
                    f"{AUDIT_FAILS:.0%} anywhere (to the bracket centre; for a boundary outside the range, at least to "
                    "the range's end), else inconclusive",
            "rests_on": _audit_note(audit_cfg, table[table.order == order].alpha.nunique())}


def every_beta_diverges_past_alpha_c(cid: str, table: pd.DataFrame, order: str, eig, audit_cfg: dict,
                                     inner_steps: int = 1) -> dict:
    a_c = theory.paper_alpha_c(eig)
    past = table[(table.order == order) & (table.alpha > a_c)]
    trains = past[past.beta_stable.notna()]
    predicted = np.isfinite(theory.exact_alpha_c(eig, order, inner_steps))
    verdict = "holds" if len(past) and not len(trains) else "fails" if len(trains) else "inconclusive"
    steps = _with_steps(inner_steps)
    return {"id": cid, "claim": f"{order}-order MAML{steps}: every beta diverges past alpha_c = 1/lambda_max",
            "short": f"linear regression, {order} order{steps.replace(' with', ',')}: every beta diverges past "
                     "alpha_c",
            "verdict": verdict,
            "why": f"{len(trains)}/{len(past)} alphas past alpha_c still converge (exact theory: "
                   f"{'none' if predicted else 'all'})",
            "summary": (f"{len(trains)}/{len(past)} alphas in (alpha_c, 2 alpha_c) still have a converging beta "
                        f"(exact theory predicts {'none' if predicted else 'all'})"),
            "measured": {"alpha_c": a_c, "alphas_past": past.alpha.tolist(),
                         "largest_stable_beta": past.beta_stable.tolist()},
            "rule": "holds if no alpha beyond 1/lambda_max has a beta in the audit's range "
                    f"[{audit_cfg['beta_range'][0]:g}, {audit_cfg['beta_range'][1]:g}] whose meta-iteration converges "
                    "(spectral radius < 1)",
            "rests_on": ""}


def audit_claims(ids, table: pd.DataFrame, eig: dict, audit_cfg: dict, inner_steps: int = 1) -> list[dict]:
    """The audit's rows, per order: the paper's formula and the exact one against the bisected boundary, and
    past alpha_c. ``ids``: their ids in that order, "{order}" left to fill. ``inner_steps``: what the audit ran."""
    rows = []
    for order in table.order.unique():
        t = table[table.order == order]
        paper_id, exact_id, past_id = (i.format(order=order) for i in ids)
        for cid, formula in ((paper_id, "paper"), (exact_id, "exact")):
            rows.append(per_seed("draw", t, lambda s, d: formula_against_bisection(cid, d, order, formula, eig[s],
                                                                                   audit_cfg, inner_steps),
                                 spread_of=("max |rel. error|", lambda m: m["max_relative_error"])))
        past = [int((d.alpha > theory.paper_alpha_c(eig[s])).sum()) for s, d in t.groupby("seed")]
        note = (_audit_note(audit_cfg, f"{min(past)}-{max(past)}" if min(past) < max(past) else past[0])
                + f" per {'draw' if len(past) > 1 else 'run'}, up to 1.9 alpha_c")
        rows.append(per_seed("draw", t, lambda s, d: every_beta_diverges_past_alpha_c(past_id, d, order, eig[s],
                                                                                      audit_cfg, inner_steps), note))
    return rows


def audit(ids, results: Results) -> list[dict]:
    return _audit_of(ids, results, "linear_audit")


def audit_two_steps(ids, results: Results) -> list[dict]:
    """The audit run with 2 inner steps (the paper's image grids' setting): its exact bound, the one-step
    formula, and past 1/lambda_max."""
    return _audit_of(ids, results, "linear_audit_n2")


def _audit_of(ids, results: Results, name: str) -> list[dict]:
    path = results.path(name)
    prov = results.provenance(path)
    return audit_claims(ids, results.table(path), results.eigenvalues, prov["config"]["audit"],
                        prov.get("inner_steps", 1))
