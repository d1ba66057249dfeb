"""Shared figure plumbing: a notebook's inputs, style, grid heatmaps on log axes, provenance stamp, saving.

The notebooks under ``notebooks/`` draw the figures; this module holds what they share.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # the workflow runs headless; notebooks opened by hand still show inline figures
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from .provenance import stamp as stamp_text  # noqa: E402
from .stability import stability_brackets  # noqa: E402


def notebook_io(injected, default_input: dict, **default_wildcards) -> SimpleNamespace:
    """What a figure notebook reads and writes.

    Run by the workflow, Snakemake injects a ``snakemake`` object (its rule's input, output,
    wildcards): pass it on. Opened by hand, there is none: read the workflow's results from the
    repository (``default_input``, paths relative to it), show the figure, write nothing.
    """
    if injected is not None:
        return injected
    root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
    inputs = {k: str(root / v) if isinstance(v, str) else [str(root / p) for p in v] for k, v in default_input.items()}
    return SimpleNamespace(input=SimpleNamespace(**inputs), output=SimpleNamespace(png=None, pdf=None),
                           wildcards=SimpleNamespace(**default_wildcards))


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


def loss_heatmap(ax, grid, colorbar_label: str = "final training loss"):
    """Fig. 4a/4b/4c: the final loss of every stable cell on a log colour scale over log (alpha, beta)
    axes, unstable cells blank, and a dashed line at the largest stable beta of the smallest alpha
    (the paper's reference). Returns the grid's alphas and betas."""
    alphas, betas, m = grid_matrix(grid.assign(loss=grid.final_loss.where(grid.status == "ok")), "loss")
    if np.isfinite(m).any():
        mesh = ax.pcolormesh(log_edges(alphas), log_edges(betas), np.ma.masked_invalid(m),
                             norm=LogNorm(vmin=np.nanmin(m), vmax=np.nanmax(m)), cmap="viridis")
        ax.figure.colorbar(mesh, ax=ax, label=colorbar_label)
    else:
        ax.text(0.5, 0.5, "no cell trained stably", transform=ax.transAxes, ha="center", va="center")
    brackets = stability_brackets(grid)
    if np.isfinite(brackets.last_ok.iloc[0]):
        ax.axhline(brackets.last_ok.iloc[0], color="k", ls="--", lw=1.2,
                   label=rf"largest stable $\beta$ at $\alpha$ = {brackets.alpha.iloc[0]:g}")
    ax.set(xscale="log", yscale="log", xlabel=r"inner learning rate $\alpha$", ylabel=r"meta-learning rate $\beta$",
           xlim=log_edges(alphas)[[0, -1]], ylim=log_edges(betas)[[0, -1]])
    return alphas, betas


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
