"""Cost of one Fig. 5 checkpoint analysis: exact T g, H^2, T g + H^2 for the 1,761-parameter
sinusoid MLP, for the batch loss and per task (100 tasks), plus the matrix-free Lanczos path.

    python benchmarks/curvature_analysis.py

Prints, last, one JSON line: dense_seconds, peak_rss_gb (the whole process), lanczos_seconds
(top-2 eigenvalues of T g + H^2 for the batch loss, matrix-free) and their agreement with dense.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import torch

from maml_convergence import config, curvature, experiments, maml, models, provenance
from maml_convergence.grid import EVAL_STREAM


def main() -> int:
    cfg = config.load()
    spec = experiments.fig5_spec(cfg, "cpu")
    batch = spec.problem.sample(EVAL_STREAM, dtype=torch.float32)
    model = models.build("sinusoid_mlp")
    params = models.initial_params(model, cfg["seed"], torch.float32)
    task_loss = lambda p, x, y: maml.task_loss(model, p, x, y)

    start = time.perf_counter()
    dense = curvature.tg_h2_dense(task_loss, params, batch.xs, batch.ys, task_chunk=cfg["fig5"]["task_chunk"])
    dense_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"dense: {dense_s:.1f} s, peak RSS {peak:.2f} GB", file=sys.stderr)

    f, theta = curvature._flat_fn(
        lambda p: torch.func.vmap(lambda x, y: task_loss(p, x, y))(batch.xs, batch.ys).mean(), params)
    g = torch.func.grad(f)(theta)
    matvec = lambda v: curvature.tg_matvec(f, theta, g, v) + curvature.hvp(f, theta, curvature.hvp(f, theta, v))
    start = time.perf_counter()
    top = curvature.lanczos_top(matvec, theta.numel(), k=2, iterations=60, dtype=torch.float32)
    lanczos_s = time.perf_counter() - start
    ref = dense["batch"]["eig_Tg_plus_H2"]
    rel = max(abs(a - b) / abs(b) for a, b in zip(top, ref))
    print(f"lanczos: {lanczos_s:.1f} s, top-2 {top} vs dense {ref}", file=sys.stderr)
    print(json.dumps({"benchmark": "curvature_analysis", "device": provenance.device_description("cpu"),
                      "parameters": theta.numel(), "tasks": batch.xs.shape[0], "dtype": "float32",
                      "dense_seconds": round(dense_s, 2), "peak_rss_gb": round(peak, 2),
                      "lanczos_seconds": round(lanczos_s, 2), "lanczos_iterations": 60,
                      "lanczos_max_rel_error": rel}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
