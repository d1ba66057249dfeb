"""Cost of one Fig. 5 checkpoint analysis: exact T g, H^2, T g + H^2 for the 1,761-parameter
sinusoid MLP, for the batch loss and per task (100 tasks).

    python benchmarks/curvature_analysis.py

Times, in one process and in this order: the written-out path the workflow uses
(``curvature_mlp``, float64; peak memory is read right after it), the automatic-differentiation
path any other network would take (``curvature.tg_h2_dense``, float32), and the matrix-free
Lanczos path (top-2 eigenvalues of T g + H^2, batch loss). Prints, last, one JSON line with the
times, the peak RSS of the process after the written-out path, and how far each other path's
numbers are from the written-out ones.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import torch

from maml_convergence import config, curvature, curvature_mlp, experiments, maml, models, provenance
from maml_convergence.tasks import EVAL_STREAM


def max_rel(got: dict, ref: dict) -> float:
    """Largest relative difference over every number of two ``tg_h2`` summaries (eigenvalue lists and norms)."""
    pairs = []
    for scope, numbers in ref.items():
        for key, value in numbers.items():
            pairs += zip(got[scope][key], value) if isinstance(value, list) else [(got[scope][key], value)]
    return max(abs(x - y) / abs(y) for x, y in pairs)


def main() -> int:
    cfg = config.load()
    spec = experiments.fig5_spec(cfg, "cpu")
    batch = spec.problem.sample(EVAL_STREAM, dtype=torch.float32)
    model = models.build("sinusoid_mlp")
    params = models.initial_params(model, cfg["seed"], torch.float32)
    task_loss = lambda p, x, y: maml.task_loss(model, p, x, y)

    start = time.perf_counter()
    written = curvature_mlp.tg_h2(model, params, batch.xs, batch.ys)
    written_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"written out: {written_s:.2f} s, peak RSS {peak:.2f} GB", file=sys.stderr)

    start = time.perf_counter()
    autodiff = curvature.tg_h2_dense(task_loss, params, batch.xs, batch.ys, task_chunk=cfg["fig5"]["task_chunk"])
    autodiff_s = time.perf_counter() - start
    print(f"autodiff: {autodiff_s:.1f} s", file=sys.stderr)

    f, theta = curvature._flat_fn(
        lambda p: torch.func.vmap(lambda x, y: task_loss(p, x, y))(batch.xs, batch.ys).mean(), params)
    g = torch.func.grad(f)(theta)
    matvec = lambda v: curvature.tg_matvec(f, theta, g, v) + curvature.hvp(f, theta, curvature.hvp(f, theta, v))
    start = time.perf_counter()
    top = curvature.lanczos_top(matvec, theta.numel(), k=2, iterations=60, dtype=torch.float32)
    lanczos_s = time.perf_counter() - start
    ref = written["batch"]["eig_Tg_plus_H2"]
    print(f"lanczos: {lanczos_s:.1f} s, top-2 {top} vs written out {ref}", file=sys.stderr)
    print(json.dumps({"benchmark": "curvature_analysis", "device": provenance.device_description("cpu"),
                      "parameters": theta.numel(), "tasks": batch.xs.shape[0],
                      "written_out_seconds": round(written_s, 2), "peak_rss_gb_after_written_out": round(peak, 2),
                      "autodiff_float32_seconds": round(autodiff_s, 2),
                      "autodiff_max_rel_difference": max_rel(autodiff, written),
                      "lanczos_seconds": round(lanczos_s, 2), "lanczos_iterations": 60,
                      "lanczos_max_rel_difference": max(abs(a - b) / abs(b) for a, b in zip(top, ref))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
