"""Shared figure plumbing: a notebook's inputs, style, grid heatmaps on log axes, provenance stamp, saving.

The notebooks under ``notebooks/`` draw the figures; this module holds what they share.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # the workflow runs headless; notebooks opened by hand still show inline figures
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from mpl_toolkits.axes_grid1 import make_axes_locatable  # noqa: E402

from . import theory  # noqa: E402
from .provenance import stamp as stamp_text  # noqa: E402
from .source_data import SourceData  # noqa: E402
from .stability import stability_brackets  # noqa: E402


def notebook_io(injected, figure: str) -> SimpleNamespace:
    """What a figure notebook reads and writes.

    Run by the workflow, Snakemake injects a ``snakemake`` object (its rule's input, output,
    wildcards): pass it on. Opened by hand, there is none: read the committed source data of
    ``figure`` (``figures/data/<figure>/``), show the figure, write nothing.
    """
    if injected is not None:
        return injected
    root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
    return SimpleNamespace(input=SimpleNamespace(source=str(root / "figures" / "data" / figure / "provenance.json")),
                           output=SimpleNamespace(png=None, pdf=None), wildcards=SimpleNamespace(fig=figure))


def source(notebook: SimpleNamespace) -> SourceData:
    """The source data a notebook draws (``notebook_io``'s input: the folder's provenance.json)."""
    return SourceData(Path(notebook.input.source).parent)


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


class CellMap:
    """An (alpha, beta) grid drawn as the paper draws it: alpha > 0 on log axes (``ax``), alpha = 0
    (joint training, the paper's baseline) as a narrow strip left of them (``strip``, None when
    the grid has no alpha = 0 column). ``cell(alpha, beta)`` is where a cell lies: (axes, x0, x1,
    y0, y1)."""

    def __init__(self, ax, alphas, betas):
        self.ax, self.alphas, self.betas = ax, np.asarray(alphas), np.asarray(betas)
        self.positive = self.alphas[self.alphas > 0]
        self.x_edges, self.y_edges = log_edges(self.positive), log_edges(self.betas)
        self.divider = make_axes_locatable(ax)
        self.strip = None
        if (self.alphas == 0).any():
            self.strip = self.divider.append_axes("left", size="4%", pad=0.06, sharey=ax)
            self.strip.set(xlim=(0, 1), xticks=[0.5], xticklabels=["0"])
            ax.tick_params(labelleft=False)
        ax.set(xscale="log", yscale="log", xlim=self.x_edges[[0, -1]], ylim=self.y_edges[[0, -1]])
        (self.strip or ax).set_ylabel(r"meta-learning rate $\beta$")
        ax.set_xlabel(r"inner learning rate $\alpha$")

    def draw(self, matrix, **mesh):
        """``matrix[beta, alpha]`` (columns in the order of ``alphas``) as coloured cells."""
        m = np.ma.masked_invalid(np.asarray(matrix, dtype=float))
        positive = self.ax.pcolormesh(self.x_edges, self.y_edges, m[:, self.alphas > 0], **mesh)
        if self.strip is not None:
            self.strip.pcolormesh([0, 1], self.y_edges, m[:, self.alphas == 0], **mesh)
        return positive

    def hline(self, beta, **line):
        for a in (self.ax, self.strip):
            if a is not None:
                a.axhline(beta, **line)

    def colorbar(self, mesh, label: str):
        self.ax.figure.colorbar(mesh, cax=self.divider.append_axes("right", size="4%", pad=0.1), label=label)

    def cell(self, alpha, beta):
        j = int(np.searchsorted(self.betas, beta))
        if alpha == 0:
            return self.strip, 0.0, 1.0, self.y_edges[j], self.y_edges[j + 1]
        i = int(np.searchsorted(self.positive, alpha))
        return self.ax, self.x_edges[i], self.x_edges[i + 1], self.y_edges[j], self.y_edges[j + 1]

    def mark(self, cells, **patch):
        """A rectangle over each (alpha, beta) of ``cells``: outlines, hatching."""
        for alpha, beta in cells:
            ax, x0, x1, y0, y1 = self.cell(alpha, beta)
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, **{"fill": False, **patch}))


def cell_map(ax, grid, value: str, **mesh) -> tuple[CellMap, object]:
    """``value`` of every cell of a tidy grid table drawn on a CellMap; returns it and the mesh."""
    alphas, betas, m = grid_matrix(grid, value)
    cells = CellMap(ax, alphas, betas)
    return cells, cells.draw(m, **mesh)


def loss_heatmap(ax, grid, colorbar_label: str = "final training loss",
                 nothing_stable: str = "no cell trained stably") -> CellMap:
    """Fig. 4a/4b/4c: the final loss of every stable cell on a log colour scale (unstable cells blank),
    and a dashed line at the largest stable beta of alpha = 0 (the paper's reference)."""
    loss = grid.final_loss.where(grid.status == "ok")
    finite = loss[np.isfinite(loss)]
    norm = LogNorm(vmin=finite.min(), vmax=finite.max()) if len(finite) else None
    cells, mesh = cell_map(ax, grid.assign(loss=loss), "loss", norm=norm, cmap="viridis")
    if len(finite):
        cells.colorbar(mesh, colorbar_label)
    else:
        ax.text(0.5, 0.5, nothing_stable, transform=ax.transAxes, ha="center", va="center")
    brackets = stability_brackets(grid)
    if np.isfinite(brackets.last_ok.iloc[0]):
        cells.hline(brackets.last_ok.iloc[0], color="k", ls="--", lw=1.2,
                    label=rf"largest stable $\beta$ at $\alpha$ = {brackets.alpha.iloc[0]:g}")
    return cells


def stamp(fig, provenance: dict, extra: str = "") -> None:
    # below the axes: savefig's tight bounding box grows to include it
    fig.text(0.995, -0.01, stamp_text(provenance) + (f" | {extra}" if extra else ""), ha="right", va="top",
             fontsize=5, color="0.45")


def load_json(path) -> dict:
    return json.loads(Path(path).read_text())


def save(fig, png=None, pdf=None, data: SourceData | None = None) -> None:
    """PNG and PDF without timestamps, so an unchanged result gives an unchanged file. Each names, in its
    metadata, the commit that wrote the source data it was drawn from (``data``). With neither path (a
    notebook opened by hand) the figure is shown instead."""
    drawn_from = {"Source": f"maml-convergence {data.meta['git_commit']} {data.folder.name}"} if data else {}
    if png:
        Path(png).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=200, metadata={"Software": None, **drawn_from})
    if pdf:
        Path(pdf).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None,
                                   **({"Subject": drawn_from["Source"]} if data else {})})
    if not png and not pdf:  # under the Agg backend a notebook shows nothing by itself: show the PNG
        from IPython.display import Image, display
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        display(Image(buffer.getvalue()))


OUTCOME_MARKERS = {"trained": ("o", "tab:green"), "flat": ("o", "0.6"), "rose": ("^", "tab:orange"),
                   "diverged": ("x", "tab:red")}


PROBE_CELL_NAMES = {"recommended": "recommended (trains best, with a margin)", "guideline": "the paper's guideline"}


def probe_map(ax, report: dict, title: str | None = None) -> None:
    """``maml-convergence suggest``'s probe (its report, as JSON): every cell it trained by outcome on log
    axes (alpha = 0 drawn one rung left of the smallest alpha), the measured edge, the recommended and the
    guideline's cell, and
    the curvature's predictions at the start: the paper's beta_c(alpha) and alpha_c, and 2/lambda_max."""
    cells = report["probe"]
    positive = sorted({c["alpha"] for c in cells if c["alpha"] > 0}) or [1.0]
    zero_at = positive[0] / report["settings"]["rung"]
    x = lambda a: zero_at if a == 0 else a
    for outcome, (marker, color) in OUTCOME_MARKERS.items():
        chosen = [c for c in cells if c["outcome"] == outcome]
        if chosen:
            ax.scatter([x(c["alpha"]) for c in chosen], [c["beta"] for c in chosen], marker=marker, color=color,
                       s=22, label=outcome, zorder=3)
    ax.set(xscale="log", yscale="log", xlabel=r"inner learning rate $\alpha$", ylabel=r"meta-learning rate $\beta$")
    lam = report["eigenvalues"]
    if lam and lam[0] and lam[0] > 0:
        a = np.geomspace(positive[0], positive[-1], 400)
        ax.plot(a, theory.paper_beta_bound(a, lam), color="tab:purple", lw=1,
                label=r"paper's $\beta_c(\alpha)$ at the start")
        ax.axhline(2 / lam[0], color="0.5", ls=":", lw=1, label=r"$2/\lambda_{max}$ (gradient descent)")
        ax.axvline(report["alpha_c"], color="tab:purple", ls="--", lw=1, label=rf"$\alpha_c$ = {report['alpha_c']:.3g}")
    if report["alpha_edge"]:
        ax.axvline(report["alpha_edge"], color="k", ls="-.", lw=1, label=f"edge (probe) {report['alpha_edge']:.3g}")
    for name, marker, color in (("recommended", "*", "gold"), ("guideline", "P", "tab:cyan")):
        cell = report.get(name)
        if cell is not None:
            ax.scatter([x(cell["alpha"])], [cell["beta"]], marker=marker, s=160 if marker == "*" else 100, color=color,
                       edgecolor="k", zorder=4, label=rf"{PROBE_CELL_NAMES[name]}: $\alpha$={cell['alpha']:.3g}, "
                                                      rf"$\beta$={cell['beta']:.3g}")
    ticks = [zero_at] + positive
    ax.set_xticks(ticks, ["0"] + [f"{a:.3g}" for a in positive], rotation=45, fontsize=6)
    ax.minorticks_off()
    ax.legend(fontsize=5.5, loc="best")
    settings = report["settings"]
    ax.set_title(title or f"probe: {len(cells)} cells x {settings.get('streams', 1)} streams x "
                          f"{settings['iterations']} iterations", fontsize=8)


def save_probe_figure(report: dict, path) -> None:
    """The probe of one ``suggest`` report as a small figure at ``path`` (PNG or PDF by its suffix)."""
    style()
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    probe_map(ax, report)
    path = Path(path)
    save(fig, png=path if path.suffix != ".pdf" else None, pdf=path if path.suffix == ".pdf" else None)
    plt.close(fig)


def probe_overlay(cells: CellMap, report: dict) -> None:
    """A ``suggest`` report's probe cells (by outcome), its recommended cell (star) and the paper's guideline
    (plus) over a grid's CellMap; the axes grow to show probe cells outside the grid."""
    def place(points):
        by_axes = {}
        for alpha, beta in points:
            on_strip = alpha == 0 and cells.strip is not None
            by_axes.setdefault(on_strip, []).append((0.5 if on_strip else alpha, beta))
        return {(cells.strip if k else cells.ax): v for k, v in by_axes.items() if v}

    for outcome, (marker, color) in OUTCOME_MARKERS.items():
        chosen = [(c["alpha"], c["beta"]) for c in report["probe"] if c["outcome"] == outcome]
        for ax, xy in place(chosen).items():
            ax.scatter(*zip(*xy), marker=marker, color=color, s=18, zorder=3, linewidths=1,
                       edgecolors="k" if marker == "o" else None, label=f"probe: {outcome}" if ax is cells.ax else None)
    for name, marker, color in (("recommended", "*", "gold"), ("guideline", "P", "tab:cyan")):
        cell = report.get(name)
        if cell is not None:
            for ax, xy in place([(cell["alpha"], cell["beta"])]).items():
                ax.scatter(*zip(*xy), marker=marker, s=170 if marker == "*" else 110, color=color, edgecolor="k",
                           zorder=4, label=rf"{PROBE_CELL_NAMES[name]}: $\alpha$={cell['alpha']:.3g}, "
                                       rf"$\beta$={cell['beta']:.3g}" if ax is cells.ax else None)
    alphas = [c["alpha"] for c in report["probe"] if c["alpha"] > 0]
    betas = [c["beta"] for c in report["probe"]]
    if alphas:
        lo, hi = cells.ax.get_xlim()
        cells.ax.set_xlim(min(lo, min(alphas) / 1.5), max(hi, max(alphas) * 1.5))
    lo, hi = cells.ax.get_ylim()
    cells.ax.set_ylim(min(lo, min(betas) / 1.5), max(hi, max(betas) * 1.5))
