"""How long a probe `suggest` needs on a small model: the cell each probe length recommends, trained on, against
the best cell of a scan.

    python benchmarks/probe_length.py                        # every case below, probe lengths 5 ... 200
    python benchmarks/probe_length.py --lengths 5 100 --horizon 300

The model is the paper's sinusoid MLP (1-40-40-1, 1,761 parameters) from torch's seed 0; the tasks are one fixed
meta-batch of sinusoid regression (`--tasks` tasks of 10 + 10 points, data seed `--seeds`), the same batch for every
i, so nothing but the probe's length changes between rows, or, with `--streamed`, a fresh meta-batch per i (the
probe then also sees the noise of its task streams). For each case: a scan of every (alpha, beta) on the
half-decade ladder (alpha 0 and 10^-4 ... 1, beta 10^-4 ... 10) trained `--horizon` meta-iterations as the grid
runner trains a cell, its best final loss on the fixed evaluation batch, then `suggest` with each probe length and
the ratio of its recommended cell's (and the guideline cell's) final loss in that scan to the best ("inf": the
cell diverged within the horizon; "-": no cell). The default of `guideline.ITERATIONS` comes from this table.
Prints a line per probe, a line per probe length over every case, then, last, one JSON object. A few minutes on
one core.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from maml_convergence import guideline, models  # noqa: E402
from maml_convergence.grid import GridSpec, RunOptions, run_grid  # noqa: E402
from maml_convergence.tasks import SampledTasks, SinusoidTasks  # noqa: E402

HALF_DECADES = [10 ** (k / 2) for k in range(-8, 3)]


def start_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.sinusoid_mlp()


def rung(value: float) -> int | None:
    return round(2 * math.log10(value)) if value > 0 else None


def scan(sampler, horizon: int) -> dict:
    """Final loss of every ladder cell after ``horizon`` meta-iterations, keyed by (alpha rung, beta rung)."""
    alphas = [0.0] + [a for a in HALF_DECADES if a <= 1.0]
    spec = GridSpec(model=start_model(), problem=SampledTasks(sampler), alphas=alphas, betas=HALF_DECADES,
                    iterations=horizon, run=RunOptions(slots=len(alphas) * len(HALF_DECADES)))
    return {(rung(r["alpha"]), rung(r["beta"])): math.inf if r["status"] == "diverged" else r["final_loss"]
            for r in run_grid(spec, progress=False).rows}


def ratio(cell: dict | None, losses: dict, best: float) -> float | None:
    if not cell:
        return None
    return losses[(rung(cell["alpha"]), rung(cell["beta"]))] / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[5, 10, 25])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 3])
    parser.add_argument("--lengths", type=int, nargs="+", default=[5, 25, 50, 100, 200])
    parser.add_argument("--horizon", type=int, default=300, help="meta-iterations each scanned cell trains")
    parser.add_argument("--streamed", action="store_true", help="a fresh meta-batch per i instead of one fixed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = []
    for tasks in args.tasks:
        for seed in args.seeds:
            source = SinusoidTasks(tasks=tasks, seed=seed)
            fixed = source.sample(0)
            sampler = source.sample if args.streamed else (lambda i, fixed=fixed: fixed)
            losses = scan(sampler, args.horizon)
            best = min(losses.values())
            case = {"tasks": tasks, "seed": seed, "best_loss": best, "probes": {}}
            for length in args.lengths:
                began = time.perf_counter()
                result = guideline.suggest(start_model(), sampler, iterations=length, seed=1, verbose=False)
                row = {"seconds": round(time.perf_counter() - began, 1),
                       "recommended": ratio(result.recommended, losses, best),
                       "guideline": ratio(result.guideline, losses, best)}
                case["probes"][length] = row
                shown = {k: "-" if v is None else f"{v:.2f}" for k, v in row.items() if k != "seconds"}
                print(f"tasks {tasks} seed {seed} probe {length:4d}: recommended {shown['recommended']:>5}, "
                      f"guideline {shown['guideline']:>5} x the best of the scan ({row['seconds']} s)", flush=True)
            cases.append(case)
    for length in args.lengths:
        print(summary(length, [case["probes"][length]["recommended"] for case in cases], args.horizon))
    print(json.dumps({"horizon": args.horizon, "streamed": args.streamed, "cases": cases}))


def summary(length: int, ratios: list, horizon: int) -> str:
    """One line per probe length: how the recommended cells it gave fared, over every case."""
    given = sorted(r for r in ratios if r is not None)
    finite = [r for r in given if math.isfinite(r)]
    median = given[len(given) // 2] if given else math.nan
    return (f"probe {length:4d}: {len(given)} of {len(ratios)} cases answered, {len(given) - len(finite)} diverged "
            f"within {horizon} iterations; the others {min(finite, default=math.nan):.2f}-"
            f"{max(finite, default=math.nan):.2f} x the best, median {median:.2f} (every answer)")


if __name__ == "__main__":
    main()
