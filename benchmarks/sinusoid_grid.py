"""Speed of the grid engine against a per-cell `higher` loop, and the paper's Fig. 4a grid end to end.

    python benchmarks/sinusoid_grid.py            # about 4 minutes on a 2-vCPU machine
    python benchmarks/sinusoid_grid.py --skip-paper-grid

Prints progress, then, last, one JSON line:
  engine_ms_per_cell_iter   torch.func engine, cells vmapped in slots (warm, compiled per config)
  higher_ms_per_cell_iter   the same cells, one at a time, with `higher`
  speedup_vs_higher         their ratio (same cells, same run, same machine)
  paper_grid_seconds        wall time of the full 36 x 27 cell x 500 iteration grid, compile included
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import torch

from maml_convergence import config, experiments, higher_backend, models, provenance
from maml_convergence.grid import run_grid


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engine-cells", type=int, default=64)
    ap.add_argument("--engine-iterations", type=int, default=60)
    ap.add_argument("--higher-cells", type=int, default=2)
    ap.add_argument("--higher-iterations", type=int, default=10)
    ap.add_argument("--skip-paper-grid", action="store_true")
    args = ap.parse_args()

    cfg = config.load()
    device = provenance.resolve_device(cfg["device"])
    paper = experiments.sinusoid_spec(cfg, device)
    # Cells that train (no divergence), so both backends do the full work on every one.
    alphas = [1e-3, 3e-3, 1e-2, 3e-2, 5e-2, 7e-2, 9e-2, 1e-1]
    betas = [1e-2, 2e-2, 3e-2, 4e-2, 5e-2, 6e-2, 7e-2, 8e-2]
    cells = [(a, b) for a in alphas for b in betas][: args.engine_cells]
    spec = dataclasses.replace(paper, alphas=alphas, betas=betas, iterations=args.engine_iterations)

    run_grid(spec, progress=False)  # warm-up: compiles, fills inductor's cache
    rows, engine_s = timed(lambda: run_grid(spec, progress=False).rows)
    engine_work = sum(r["iterations_run"] for r in rows[: len(cells)])
    engine_ms = 1e3 * engine_s / engine_work
    print(f"engine: {engine_work} cell-iterations in {engine_s:.2f} s -> {engine_ms:.3f} ms per cell-iteration",
          file=sys.stderr)

    model = models.build("sinusoid_mlp").to(device)
    theta0 = models.initial_params(model, paper.init_seed, torch.float32)
    stream = lambda i: paper.problem.sample(i).to(device)
    higher_s, higher_work, check = 0.0, 0, None
    for a, b in cells[: args.higher_cells]:
        (params, losses), s = timed(lambda: higher_backend.train_cell(
            model, theta0, stream, a, b, args.higher_iterations, paper.inner_steps, paper.order))
        higher_s += s
        higher_work += args.higher_iterations
        check = check or (a, b, losses)
    higher_ms = 1e3 * higher_s / higher_work
    print(f"higher: {higher_work} cell-iterations in {higher_s:.2f} s -> {higher_ms:.1f} ms per cell-iteration",
          file=sys.stderr)

    # Same numbers from both backends, so the speed comparison compares like with like.
    a, b, losses = check
    same = dataclasses.replace(paper, alphas=[a], betas=[b], iterations=args.higher_iterations).with_run(
        slots=1, compile=False)
    (row,) = run_grid(same, progress=False).rows
    agree = abs(row["last_loss"] - losses[-1]) <= 1e-4 * abs(losses[-1])
    print(f"check: last meta-loss engine {row['last_loss']:.6f} vs higher {losses[-1]:.6f} -> "
          f"{'agree' if agree else 'DISAGREE'}", file=sys.stderr)

    result = {"benchmark": "sinusoid_grid", "device": provenance.device_description(device),
              "torch": torch.__version__, "slots": paper.run.slots, "compile": paper.run.compile,
              "engine_ms_per_cell_iter": round(engine_ms, 4), "higher_ms_per_cell_iter": round(higher_ms, 2),
              "speedup_vs_higher": round(higher_ms / engine_ms, 1), "backends_agree": agree}
    if not args.skip_paper_grid:
        rows, paper_s = timed(lambda: run_grid(paper).rows)
        result.update(paper_grid_seconds=round(paper_s, 1), paper_grid_cells=len(rows),
                      paper_grid_iterations=paper.iterations,
                      paper_grid_diverged=sum(r["status"] == "diverged" for r in rows),
                      paper_grid_cell_iterations_run=sum(r["iterations_run"] for r in rows))
    print(json.dumps(result))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
