"""What `maml-convergence suggest` saves: its cells against the grid's best, and its cost against the grid's.

    python benchmarks/guideline_vs_grid.py                          # the committed figures/data/guideline/
    python benchmarks/guideline_vs_grid.py --folder my/source/data  # another run's source data

Reads the source data the workflow writes beside figures/guideline.png: per problem, suggest's report,
the check (its recommended and guideline cells trained with the grid's settings: seed, iterations,
evaluation) and the grid. Prints, per problem, the final loss (and on a few-shot problem the held-out
accuracy) after the grid's iterations at the recommended cell, at the guideline's cell and at the grid's
best stable cell (stable: not diverged; few-shot: neither diverged nor rose, definition (b)), on the
report's seed; then the probe's cost (distinct cells x task streams x iterations, and seconds) against
the grid's (cells x iterations of that seed, and the seconds of the whole grid). Last line: one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from maml_convergence.problems import FEW_SHOT  # noqa: E402
from maml_convergence.stability import few_shot_stability  # noqa: E402


def compare(folder: Path, problem: str) -> dict:
    report = json.loads((folder / f"suggestion_{problem}.json").read_text())
    check = pd.read_csv(folder / f"check_{problem}.csv.gz").set_index("suggested")
    grid = pd.read_csv(folder / f"grid_{problem}.csv.gz")
    steps = json.loads((folder / "provenance.json").read_text())["steps"]
    seed = report["settings"]["seed"]
    seed_grid = grid[grid.seed == seed] if "seed" in grid else grid
    if problem in FEW_SHOT:
        n_way = steps[f"grid_{problem}"]["config"][problem]["n_way"]
        seed_grid = few_shot_stability(seed_grid, n_way, "b")
    stable = seed_grid[seed_grid.status == "ok"]
    best = stable.loc[stable.final_loss.idxmin()]
    accuracy = "heldout_accuracy" if problem in FEW_SHOT else None

    def cell(row) -> dict:
        out = {"alpha": float(row.alpha), "beta": float(row.beta), "status": str(row.status),
               "final_loss": float(row.final_loss)}
        if accuracy:
            out[accuracy] = float(row[accuracy])
        return out

    streams, iterations = report["settings"].get("streams", 1), report["settings"]["iterations"]
    probe_cells = len({(r["alpha"], r["beta"]) for r in report["probe"]})
    grid_step = steps[f"grid_{problem}"]
    return {
        "problem": problem, "seed": seed, "grid_iterations": int(grid_step["iterations"]),
        **{name: cell(check.loc[name]) for name in check.index},
        "grid_best": cell(best),
        **({"grid_best_heldout_accuracy": float(stable[accuracy].max())} if accuracy else {}),
        "probe_cost": {"cells": probe_cells, "streams": streams, "iterations": iterations,
                       "cell_iterations": probe_cells * streams * iterations, "seconds": round(report["seconds"], 1),
                       "cut_short": bool(report.get("cut_short"))},
        "grid_cost": {"cells": len(seed_grid), "iterations": int(grid_step["iterations"]),
                      "cell_iterations": len(seed_grid) * int(grid_step["iterations"]),
                      "seconds_whole_grid": round(grid_step["wall_seconds"], 1),
                      "seeds": len(grid_step.get("seeds") or [seed])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=Path(__file__).resolve().parents[1] / "figures" / "data" /
                        "guideline", help="the guideline figure's source data")
    args = parser.parse_args()
    problems = sorted(p.name.removeprefix("suggestion_").removesuffix(".json")
                      for p in args.folder.glob("suggestion_*.json"))
    if not problems:
        sys.exit(f"{args.folder}: no suggestion_<problem>.json (run the workflow, or give --folder)")
    out = {}
    for problem in problems:
        r = out[problem] = compare(args.folder, problem)
        extra = lambda c: f", held-out accuracy {c['heldout_accuracy']:.3f}" if "heldout_accuracy" in c else ""
        print(f"{problem} (seed {r['seed']}, {r['grid_iterations']} iterations as the grid trains):")
        for name in ("recommended", "guideline", "grid_best"):
            if name in r:
                c = r[name]
                print(f"  {name:12s} alpha {c['alpha']:<8.3g} beta {c['beta']:<8.3g} {c['status']:9s} final loss "
                      f"{c['final_loss']:.4g}{extra(c)}")
        p, g = r["probe_cost"], r["grid_cost"]
        print(f"  cost: probe {p['cells']} cells x {p['streams']} streams x {p['iterations']} iterations = "
              f"{p['cell_iterations']:,} cell-iterations in {p['seconds']:.0f} s; grid (one seed) {g['cells']} cells "
              f"x {g['iterations']} = {g['cell_iterations']:,}; whole grid ({g['seeds']} seeds) "
              f"{g['seconds_whole_grid']:.0f} s", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
