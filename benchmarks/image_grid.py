"""Speed of the few-shot grids (Fig. 4b/4c) on whatever device this machine has.

    python benchmarks/image_grid.py                    # a GPU if torch sees one, else the CPU
    python benchmarks/image_grid.py --steps 20 --slots 48

For each dataset, at the paper's settings (config/config.yaml): the grid runner trains a full
set of slots (one cell on a CPU, ``<dataset>.gpu_slots`` cells on a GPU, or --slots) for
--steps meta-iterations after one warm-up step, and the same cells with the reference backend
(`higher`, one cell at a time; skipped where it is not installed). It reports cell-iterations
per second, the FLOPs of one cell-iteration (counted with torch.utils.flop_counter on the
engine's meta-gradient of one cell) and so the achieved TFLOP/s, peak memory, and the paper
grid's projected time from the measured rate (every cell running all its iterations: an upper
bound, since diverged cells stop early). ``matches_reference``: the engine's meta-gradient on
this device equals the reference implementation's (float64, relative 1e-10).
Prints a line per measurement, then, last, one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from maml_convergence import config, experiments, maml, models, provenance  # noqa: E402
from maml_convergence.grid import run_grid  # noqa: E402
from maml_convergence.problems import FEW_SHOT, MINIIMAGENET, OMNIGLOT  # noqa: E402


def peak_memory_gb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GB (whole process)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cell_iterations_per_s(spec, steps: int, device: str) -> float:
    """Meta-iterations of every slot per second: a run of 1 + ``steps`` steps less a run of 1 (the
    first step carries the set-up, data loading and warm-up)."""
    def wall(n):
        sync(device)
        start = time.perf_counter()
        run_grid(spec, progress=False, max_steps=n)
        sync(device)
        return time.perf_counter() - start

    wall(1)  # caches: allocator, cuDNN's choice of kernels, the dataset
    return min(spec.run.slots, len(spec.cells())) * steps / (wall(1 + steps) - wall(1))


def flops_per_cell_iteration(spec, device: str) -> float:
    """FLOPs of one cell's second-order meta-gradient written with plain autograd, one task after
    another: the arithmetic MAML needs, whatever tricks an implementation plays (vmap turns
    convolutions with per-task weights into grouped ones, which a FLOP counter sizes differently)."""
    model = models.build(spec.model).to(device)
    theta = {k: v.to(device).requires_grad_(True) for k, v in models.initial_params(model, spec.init_seed).items()}
    batch = spec.problem.sample(0, device=device)
    with FlopCounterMode(display=False) as counter:
        total = 0.0
        for xs, ys, xq, yq in zip(batch.xs, batch.ys, batch.xq, batch.yq):
            params = dict(theta)
            for _ in range(spec.inner_steps):
                grads = torch.autograd.grad(maml.task_loss(model, params, xs, ys), list(params.values()),
                                            create_graph=spec.order == "second")
                params = {k: v - 0.1 * g for (k, v), g in zip(params.items(), grads)}
            total = total + maml.task_loss(model, params, xq, yq)
        torch.autograd.grad(total / batch.xs.shape[0], list(theta.values()))
    return float(counter.get_total_flops())


def matches_reference(spec, device: str) -> bool | None:
    try:
        from maml_convergence import higher_backend
    except ImportError:
        return None
    model = models.build(spec.model).to(device).double()
    params = {k: v.to(device) for k, v in models.initial_params(model, spec.init_seed, torch.float64).items()}
    batch = spec.problem.sample(0, dtype=torch.float64, device=device, tasks=2)
    engine, _ = maml.meta_gradient(model, params, batch, 0.1, spec.inner_steps, spec.order, spec.run.task_loop)
    reference, _ = higher_backend.meta_gradient(model, params, batch, 0.1, spec.inner_steps, spec.order)
    num = sum(((engine[k] - reference[k]) ** 2).sum() for k in engine) ** 0.5
    den = sum((reference[k] ** 2).sum() for k in reference) ** 0.5
    return bool(num / den <= 1e-10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="timed meta-iterations (default: 2 on a CPU, 10 on a GPU)")
    ap.add_argument("--slots", type=int, default=None,
                    help="cells per vectorised step on a GPU (default: the config's)")
    ap.add_argument("--higher-steps", type=int, default=2)
    ap.add_argument("--configfile", nargs="*", default=[], help="YAML files merged over config/config.yaml")
    args = ap.parse_args()
    cfg = config.load(*args.configfile)
    device = provenance.resolve_device(cfg["device"])
    on_gpu = device.startswith("cuda")
    steps = args.steps or (10 if on_gpu else 2)
    torch.backends.cudnn.benchmark = True
    out = {"device": provenance.device_description(device), "torch": torch.__version__}
    for dataset in FEW_SHOT:
        spec = experiments.image_spec(cfg, dataset, device)
        if on_gpu and args.slots:
            spec = spec.with_run(slots=args.slots)
        # cells that train all the way: alpha > 0 and the smallest betas; iterations never reached: no cell
        # finishes, so no final evaluation is timed
        spec = dataclasses.replace(spec, iterations=steps + 2, pairs=sorted(
            ((a, b) for a, b in spec.cells() if a > 0), key=lambda c: (c[1], c[0]))[:spec.run.slots])
        rate = cell_iterations_per_s(spec, steps, device)
        flops = flops_per_cell_iteration(spec, device)
        reference = dataclasses.replace(spec, backend="higher", pairs=spec.pairs[:1], iterations=args.higher_steps + 2)
        try:
            higher_rate = cell_iterations_per_s(reference, args.higher_steps, device)
        except ImportError:
            higher_rate = None
        paper = config.paper_scale()[dataset]  # the projection is for the paper's grid, whatever was measured
        cells = paper["alphas"] * paper["betas"]
        out[dataset] = {"cells_per_step": min(spec.run.slots, len(spec.cells())),
                        "cell_iterations_per_s": round(rate, 3),
                        "gflop_per_cell_iteration": round(flops / 1e9, 3), "tflops": round(rate * flops / 1e12, 4),
                        "higher_cell_iterations_per_s": None if higher_rate is None else round(higher_rate, 4),
                        "paper_grid_s": round(cells * paper["iterations"] / rate, 1),
                        "matches_reference": matches_reference(spec, device)}
        print(f"{dataset:<13} {json.dumps(out[dataset])}", flush=True)
    o, m = out[OMNIGLOT], out[MINIIMAGENET]
    print(json.dumps({**out, "cell_iterations_per_s": o["cell_iterations_per_s"], "tflops": o["tflops"],
                      "peak_memory_gb": round(peak_memory_gb(device), 2),
                      "omniglot_paper_grid_s": o["paper_grid_s"], "miniimagenet_paper_grid_s": m["paper_grid_s"],
                      "matches_reference": all(d["matches_reference"] is not False for d in (o, m))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
