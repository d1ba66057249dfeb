"""Seconds per meta-iteration of the few-shot CNNs (Fig. 4b/4c), on this machine's CPU or a GPU.

    python benchmarks/image_meta_iteration.py              # about 3 minutes on a 2-vCPU machine
    python benchmarks/image_meta_iteration.py --repeats 5

One meta-iteration = the second-order meta-gradient of a paper-sized task batch (5-way 1-shot,
15 queries, 2 inner steps; 32 tasks for Omniglot, 4 for MiniImagenet) plus the SGD update, on
real episodes from data/prepared/ (run `snakemake --cores 1 results/data/omniglot.json
results/data/miniimagenet.json` first). The ways of computing it:
  task_loop   the engine as the grid runs it on a CPU: inner steps vmapped over tasks, query
              passes one task after another (plain convolutions, fused batch norm)
  task_loop_written_bn
              task_loop with the query passes' batch norm written out like the inner steps'
              (the engine before the query passes used F.batch_norm's kernel)
  vmap        the engine fully vmapped over tasks (what the grid uses on a GPU)
  higher      the reference backend: one task after another with `higher`
  conv_floor  task_loop on the same network with its batch norms removed: not the paper's model,
              a lower bound on what any batch-norm implementation could reach on this machine
Prints a table, then, last, one JSON line with the medians in seconds.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from torch import nn

from maml_convergence import config, experiments, higher_backend, maml, models, problems, provenance
from maml_convergence.tasks import FewShotTasks


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, oneDNN primitive caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def without_batch_norm(model: nn.Module) -> nn.Module:
    stripped = copy.deepcopy(model)
    for i, layer in enumerate(stripped.features):
        if isinstance(layer, models.TaskBatchNorm):
            stripped.features[i] = nn.Identity()
    return stripped


def with_written_query_batch_norm(model: nn.Module) -> nn.Module:
    written = copy.deepcopy(model)
    written.first_order_kwargs = {}
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-higher", action="store_true")
    args = ap.parse_args()
    cfg = config.load()
    device = provenance.resolve_device(cfg["device"])
    result = {"device": provenance.device_description(device)}
    for dataset in problems.FEW_SHOT:
        sec = cfg[dataset]
        model = models.build(problems.get(dataset).model).to(device)
        params = {k: v.to(device) for k, v in models.initial_params(model, 0).items()}
        problem = FewShotTasks(dataset, experiments.prepared_path(cfg, dataset), tasks=sec["tasks"])
        batch = problem.sample(0, device=device)
        alpha = 0.1

        def engine(task_loop, model=model, params=params):
            def step():
                grads, loss = maml.meta_gradient(model, params, batch, alpha, sec["inner_steps"], "second", task_loop)
                new = {k: p - 0.1 * grads[k] for k, p in params.items()}
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                return new
            return step

        ways = {"task_loop": engine(True), "task_loop_written_bn": engine(True, with_written_query_batch_norm(model)),
                "vmap": engine(False)}
        if not args.skip_higher:
            ways["higher"] = lambda: higher_backend.meta_gradient(model, params, batch, alpha, sec["inner_steps"])
        bare = without_batch_norm(model)
        ways["conv_floor"] = engine(True, bare, {k: v.to(device) for k, v in models.initial_params(bare, 0).items()})
        for name, fn in ways.items():
            seconds = median_seconds(fn, args.repeats)
            result[f"{dataset}_{name}_s"] = round(seconds, 4)
            print(f"{dataset:<13} {name:<20} {seconds:8.3f} s per meta-iteration ({sec['tasks']} tasks)", flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
