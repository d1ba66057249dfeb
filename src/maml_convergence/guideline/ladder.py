"""The probe's numbers: the tool's defaults, and the half-decade ladders its alpha and beta step on."""

from __future__ import annotations

import math

from ..stability import DEFINITIONS

RUNG = math.sqrt(10)        # the probe's ladders step by half a decade
ALPHA_SAFETY = RUNG         # the guideline's alpha lies at least one rung below the edge
ALPHA_RUNGS = 3             # alpha ladder: alpha_c x 10^(j/2) for j in [-3, 3], rounded to half-decades
BETA_RUNGS = (-4, 6)        # a column's search may go this many rungs below / above its start
EXTEND = 3                  # at most this many rungs added above (below) the ladder while its top alpha trains
                            # (while the recommended alpha is too near its bottom)
BELOW_BEST = 2              # the ladder reaches at least this many rungs below the recommended alpha
STREAMS = 2                 # task streams every probe cell trains on
ITERATIONS = 100            # meta-iterations per probe cell: on a small model, 5 recommend cells that end at twice
                            # the best loss, 25-50 sometimes one that diverges later, 100 none that does
                            # (benchmarks/probe_length.py); an expensive model passes fewer (the Omniglot probe: 5)
BUDGET_SECONDS = 600.0      # what stops a probe early unless told otherwise
RULES = ("recommended", "paper")  # which cell suggest answers with
CELLS = ("recommended", "guideline")  # the two cells a report holds (rule "paper" answers with "guideline")
LANCZOS = 20                # Hessian-vector products per top-eigenvalue estimate
MAML_HESSIAN_COST = 3.0     # the MAML Hessian's Lanczos against the loss Hessian's, in time (measured ~2-3x)
STABLE = DEFINITIONS["b"][1]


def _half_decade(value: float) -> float:
    return _rung_value(_rung(value))


def _rung(value: float) -> int:
    return int(round(2 * math.log10(value)))


def _rung_value(rung: int) -> float:
    """10^(rung/2), written as the decimal it is (1, 3.16..., 10): the same float whatever rounding led there."""
    return float(f"{10 ** (rung / 2):.12g}")


def _ladder(alpha_c: float) -> list[float]:
    center = _rung(alpha_c) if math.isfinite(alpha_c) and alpha_c > 0 else 0
    return [_rung_value(center + j) for j in range(-ALPHA_RUNGS, ALPHA_RUNGS + 1)]


def _fmt(value) -> str:
    return "none" if value is None else f"{value:.4g}"
