"""How long an image grid will take on this device, said before it is too late: from the pace of a grid's first
meta-iterations (``ProjectedTime``, the grid runner's ``on_pace``), or of a short calibration of every image
grid of the config before anything trains (``over_limit``, on ``experiments.projected_image_grids``' table);
above the configured limit the step stops with one line saying what would be quicker."""

from __future__ import annotations

from .config import grid_values

QUICKER = ("make reproduce (the reduced grids), a GPU (--profile profiles/local-gpu), a cluster (--profile "
           "profiles/slurm) or the paper-scale Fig. 4b a chunk at a time (maml-convergence paper-grid); see "
           "docs/gpu-and-cluster.md")


def hours(value: float) -> str:
    return f"{value * 60:.0f} min" if value < 1 else f"{value:.1f} h" if value < 48 else f"{value / 24:.0f} days"


class ProjectedTime:
    """``run_grid``'s ``on_pace`` for an image grid: from the pace of its first meta-iterations, say how long
    this step and the whole grid will take on this device and how to go faster; stop above the limit
    (``limit``: hours, or None; ``key``: the setting or option it came from)."""

    def __init__(self, name: str, section: dict, spec, device: str, limit: float | None, key: str):
        alphas, betas = grid_values(section)
        self.name, self.device, self.limit, self.key = name, device, limit, key
        self.share = len(spec.cells()) * spec.iterations  # cell-iterations, at most (diverged cells end early)
        self.whole = len(alphas) * len(betas) * len(section.get("seeds") or [None]) * spec.iterations
        self.refusal = ""

    def __call__(self, rate: float) -> bool:
        share_h, whole_h = self.share / rate / 3600, self.whole / rate / 3600
        print(f"[{self.name}] {rate:.3g} cell-iterations/s on {self.device}: this step's {self.share:,} "
              f"cell-iterations take at most {hours(share_h)}, the whole grid's {self.whole:,} {hours(whole_h)} "
              f"on this device (cells that diverge end early). Quicker: the reduced grids (make reproduce), a GPU "
              f"(--profile profiles/local-gpu) or a cluster (--profile profiles/slurm); see docs/gpu-and-cluster.md."
              + ("" if self.limit is None else f" Limit: {hours(self.limit)} ({self.key})."), flush=True)
        if self.limit is None or whole_h <= self.limit:
            return False
        self.refusal = (f"{self.key} = {self.limit:g}: stopped, the whole {self.name} grid is projected to take "
                        f"{hours(whole_h)} on {self.device}; rerun with a higher limit to resume from where it "
                        f"stopped")
        return True


def say(table, device: str, limit: float | None) -> float:
    """Print each image grid's projected time and the total (hours, returned)."""
    total = float(table.hours.sum())
    for row in table.itertuples():
        print(f"[projection] {row.dataset}: {row.cells} cells x {row.iterations} iterations at "
              f"{row.cell_iterations_per_second:.3g} cell-iterations/s on {device}: at most {hours(row.hours)}")
    print(f"[projection] all image grids: at most {hours(total)} on {device}"
          + ("" if limit is None else f" (limit {hours(limit)}, max_projected_hours)"))
    return total


def over_limit(table, device: str, limit: float | None) -> str | None:
    """The one line that stops the run when the image grids together are projected past ``limit``, else None."""
    total = float(table.hours.sum())
    if limit is None or total <= limit:
        return None
    return (f"max_projected_hours = {limit:g}: stopped before anything trained: the image grids are projected to "
            f"take {hours(total)} on {device} (" + ", ".join(f"{r.dataset} {hours(r.hours)}"
                                                            for r in table.itertuples())
            + f"); quicker: {QUICKER}; or set max_projected_hours: null to go ahead")
