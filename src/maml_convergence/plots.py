"""Shared figure plumbing: style, grid heatmaps on log axes, provenance stamp, saving.

The notebooks under ``notebooks/`` draw the figures; this module holds what they share.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the workflow runs headless; notebooks opened by hand still show inline figures
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from .provenance import stamp as stamp_text  # noqa: E402


def style() -> None:
    sns.set_theme(context="paper", style="ticks", font_scale=1.0)
    plt.rcParams.update({"savefig.bbox": "tight", "figure.dpi": 110})


def log_edges(values) -> np.ndarray:
    """Cell edges for values on a log axis: geometric midpoints, ends mirrored."""
    v = np.log10(np.asarray(sorted(set(values)), dtype=float))
    if len(v) == 1:
        return 10 ** np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return 10 ** np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def grid_matrix(grid, value: str):
    """(alphas, betas, matrix[beta, alpha]) from a tidy grid table."""
    table = grid.pivot(index="beta", columns="alpha", values=value).sort_index().sort_index(axis=1)
    return table.columns.to_numpy(), table.index.to_numpy(), table.to_numpy()


def stamp(fig, provenance: dict, extra: str = "") -> None:
    # below the axes: savefig's tight bounding box grows to include it
    fig.text(0.995, -0.01, stamp_text(provenance) + (f" | {extra}" if extra else ""), ha="right", va="top",
             fontsize=5, color="0.45")


def load_json(path) -> dict:
    return json.loads(Path(path).read_text())


def save(fig, png=None, pdf=None) -> None:
    """PNG and PDF without timestamps, so an unchanged result gives an unchanged file."""
    if png:
        Path(png).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=200, metadata={"Software": None})
    if pdf:
        Path(pdf).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None})
