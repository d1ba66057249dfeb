"""Time and memory of `maml-convergence suggest` on the paper's problems, on this machine.

    python benchmarks/suggest.py                              # Omniglot and the sinusoid
    python benchmarks/suggest.py --problems omniglot --budget omniglot=300

Each problem runs in a process of its own (`suggest_on`, as `maml-convergence suggest --problem`
does), at the paper's settings (config/config.yaml: Omniglot's 4-block CNN, 112,261 parameters,
32 tasks per meta-batch, 2 inner steps, second order), from the grid's starting parameters, with the
probe the workflow runs (config/config.yaml's `guideline` section: iterations and streams per cell,
null meaning the tool's defaults; its budget, a cap). It reports wall time (the whole call: protocol,
curvature, probe, the MAML Hessian at the answer), peak resident memory of that process (torch
included), the probe's size, both cells and whether the budget cut the probe short. The targets:
within 10 minutes and under 4 GB on a 2-vCPU CPU for the Omniglot CNN, within 60 s for the sinusoid.
Prints a line per problem, then, last, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from maml_convergence import config, experiments, problems, provenance  # noqa: E402

PROBLEMS = (problems.OMNIGLOT, problems.SINUSOID)  # what it times by default


def one(problem: str, budget: float) -> dict:
    """Run in a child process: suggest on ``problem``, and this process's own peak memory."""
    cfg = config.load()
    device = provenance.resolve_device(cfg["device"])
    data_path = None
    if problem in problems.FEW_SHOT:
        from maml_convergence import data
        data.ensure_prepared(problem, config.resolve_path(cfg["data"]["root"]),
                             config.resolve_path(cfg["data"]["mirror"]))
        data_path = experiments.prepared_path(cfg, problem)
    # as `suggest --problem` reads them; a budget of 0 (none given) leaves the config's
    probe = experiments.probe_settings(cfg, problem, budget_seconds=budget or None)
    iterations, streams = probe["iterations"], probe["streams"]
    start = time.perf_counter()
    result = experiments.suggest_on(cfg, problem, device, budget_seconds=probe["budget_seconds"], data_path=data_path,
                                    iterations=iterations, streams=streams, verbose=False)
    summary = result.summary()
    return {"problem": problem, "device": provenance.device_description(device),
            "budget_s": result.settings["budget_seconds"],
            "wall_s": round(time.perf_counter() - start, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "parameters": result.settings["parameters"], "tasks": result.settings["tasks"],
            "probe_cells": len(result.probe), "probe_streams": streams, "probe_iterations": iterations,
            "seconds_per_meta_iteration": round(result.settings["seconds_per_meta_iteration"], 3),
            **{k: summary[k] for k in ("alpha", "beta", "recommended", "guideline", "alpha_edge", "alpha_c",
                                       "lambda_max", "cut_short")}, "notes": result.notes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=sorted(PROBLEMS))
    parser.add_argument("--budget", nargs="*", default=[], help="problem=seconds, overriding the config's")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    budgets = {**dict.fromkeys(PROBLEMS, 0.0), **{k: float(v) for k, v in (b.split("=") for b in args.budget)}}
    if args.one:
        print(json.dumps(one(args.one, budgets[args.one])))
        return
    out = {}
    for problem in args.problems:
        proc = subprocess.run([sys.executable, __file__, "--one", problem, "--budget", f"{problem}={budgets[problem]}"],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{problem}: {proc.stderr.strip().splitlines()[-1]}")
        out[problem] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = out[problem]
        print(f"{problem}: {r['wall_s']} s, {r['peak_rss_gb']} GB, {r['probe_cells']} probe cells x "
              f"{r['probe_streams']} streams x {r['probe_iterations']} iterations; recommended alpha {r['alpha']}, "
              f"beta {r['beta']}" + (" (cut short by the budget)" if r["cut_short"] else ""), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
