"""The paper's experiments, from a validated config to result tables.

Each function returns plain data; ``cli`` writes it to ``results/`` with provenance.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np
import pandas as pd
import torch

from . import audit, curvature, curvature_mlp, data, guideline, maml, models, problems, sharpness, theory
from .checkpoint import Checkpoint
from .config import ConfigError, grid_values, resolve_path
from .grid import GridSpec, RunOptions, run_grid
from .progress import progress_bar
from .stability import stability_brackets
from .problems import FEW_SHOT, LINEAR, SINUSOID
from .tasks import EVAL_STREAM, LinearRegressionTask, SampledTasks, family

GRID_COLUMNS = ["cell", "alpha", "beta", "seed", "status", "diverged_at", "iterations_run", "initial_loss",
                "last_loss", "final_loss", "final_plain_loss", "final_accuracy", "heldout_loss", "heldout_accuracy"]


def grid_frame(rows: list[dict]) -> pd.DataFrame:
    """The grid's table: the columns of GRID_COLUMNS that its rows have (seed: grids over several
    seeds; accuracies: classification)."""
    frame = pd.DataFrame(rows)
    return frame[[c for c in GRID_COLUMNS if c in frame]]


# --- Fig. 1: task-gradient norms during training ---


def fig1_spec(cfg: dict, device: str) -> GridSpec:
    """Fig. 1: the sinusoid MLP trained with Adam (beta = 1e-3) at alpha = 0 (joint) and 1e-2 (MAML),
    every seed in one vectorised run (a seed fixes its own task stream and initialisation)."""
    sec = cfg["fig1"]
    spec = dataclasses.replace(sinusoid_spec(cfg, device), alphas=list(sec["alphas"]), betas=[sec["beta"]],
                               iterations=sec["iterations"], optimizer=sec["optimizer"], seeds=list(sec["seeds"]))
    return spec.with_run(slots=len(spec.cells()))


def task_gradient_stats(model, params, xs, ys) -> tuple[float, float]:
    """Mean over tasks of ||grad L_i|| and mean over pairs i != j of <grad L_i, grad L_j>."""
    grads = torch.func.vmap(torch.func.grad(lambda p, x, y: maml.task_loss(model, p, x, y)),
                            in_dims=(None, 0, 0))(params, xs, ys)
    flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1).double()
    n = flat.shape[0]
    sq = (flat ** 2).sum(1)
    pair_sum = flat.sum(0).pow(2).sum() - sq.sum()
    return float(sq.sqrt().mean()), float(pair_sum / (n * (n - 1)))


def _resumable_grid(cfg: dict, spec: GridSpec, checkpoint, run_info: dict | None, **options) -> list[dict]:
    """The rows of a step's grid that resumes from ``checkpoint`` (saved every ``checkpoint_every`` seconds);
    what provenance records of the run (``GridResult.run_info``) goes into ``run_info`` when given.
    ``options``: more of ``run_grid``'s (``snapshot_every``)."""
    result = run_grid(spec, checkpoint=checkpoint, checkpoint_every=cfg["checkpoint_every"], **options)
    if result.stopped:  # none of the options given here stops a grid (max_steps, deadline, on_pace)
        raise ValueError(f"a step's grid stopped early; run it without {sorted(options)}")
    if run_info is not None:
        run_info.update(result.run_info)
    return result.rows


def fig1_runs(cfg: dict, device: str, checkpoint=None, run_info: dict | None = None) -> pd.DataFrame:
    """Train both alphas for every seed, then measure the task gradients at every recorded
    iteration, on the meta-batch of that iteration (training tasks) and on a fixed held-out batch."""
    spec = fig1_spec(cfg, device)
    rows = _resumable_grid(cfg, spec, checkpoint, run_info, snapshot_every=cfg["fig1"]["record_every"])
    model = models.build("sinusoid_mlp")
    out = []
    for row in rows:
        if row["status"] != "ok":
            raise RuntimeError(f"Fig. 1 run (seed {row['seed']}, alpha {row['alpha']}) diverged at "
                               f"iteration {row['diverged_at']}")
        problem = dataclasses.replace(spec.problem, seed=row["seed"])
        heldout = problem.sample(EVAL_STREAM)
        for iteration, params in progress_bar(sorted(row["snapshots"].items()), desc="Fig. 1 gradients", leave=False):
            train = problem.sample(min(iteration, spec.iterations - 1))
            for split, batch in (("train", train), ("heldout", heldout)):
                norm, inner = task_gradient_stats(model, params, batch.xs, batch.ys)
                out.append({"seed": row["seed"], "alpha": row["alpha"], "iteration": iteration, "split": split,
                            "grad_norm": norm, "grad_inner_product": inner})
    return pd.DataFrame(out)


# --- Fig. 2: the paper's beta_c(alpha) curves ---


FIG2_EXACT = [(order, steps) for steps in (1, 2) for order in ("second", "first")]  # exact_<order>_n<steps> columns


def fig2_curves(cfg: dict) -> pd.DataFrame:
    """beta_c(alpha) = 2 / (lambda - alpha lambda^2) for each eigenvalue of the Fig. 2 illustration, and beside
    it the exact bound of a quadratic with that eigenvalue for both orders with one and two inner steps
    (``theory.exact_beta_bound``; 0 where no beta converges)."""
    lams = sorted(cfg["fig2"]["eigenvalues"])
    alpha_max = 1.0 / lams[0]  # past 1/lambda_min every curve has ended
    alphas = np.linspace(0.0, alpha_max, cfg["fig2"]["alpha_points"], endpoint=False)
    frames = [pd.DataFrame({"alpha": alphas, "lambda_index": i, "lambda": lam,
                            "beta_c": theory.paper_beta_c(alphas, lam),
                            **{f"exact_{order}_n{steps}": theory.exact_beta_bound(alphas, [lam], order, steps)
                               for order, steps in FIG2_EXACT}})
              for i, lam in enumerate(lams)]
    return pd.concat(frames, ignore_index=True)


# --- Any problem of the table: its grid from its config section alone ---


def grid_spec(cfg: dict, problem: str, device: str, data_path: str | None = None) -> GridSpec:
    """The (alpha, beta) grid of a problem of the table (``problems``), from its config section: its model and
    task family (``from_config``), once for every seed of ``seeds`` (default: the config's seed) in one vectorised
    run; ``iterations``, and ``inner_steps``, ``order``, ``optimizer``, ``slots`` and ``compile`` where the section
    has them (else 1, second, sgd, 64, no). What ``maml-convergence grid --problem`` trains. The figures' own
    builders add what a figure needs; on linear regression and the sinusoid this is their grid
    (``linear_spec(cfg, "second")``, ``sinusoid_grid_spec``), and a few-shot problem's is ``image_spec``'s
    (chunks, GPU slots)."""
    if problem in FEW_SHOT:
        return image_spec(cfg, problem, device, data_path=data_path)
    row, sec, backend = problems.get(problem), cfg[problem], cfg.get("backend", "engine")
    alphas, betas = grid_values(sec)
    seeds = list(sec.get("seeds") or [cfg["seed"]])
    return GridSpec(model=row.model, problem=family(problem).from_config(problem, sec, seeds[0], data_path=data_path),
                    alphas=alphas, betas=betas, iterations=sec["iterations"], inner_steps=sec.get("inner_steps", 1),
                    order=sec.get("order", "second"), optimizer=sec.get("optimizer", "sgd"),
                    blowup_factor=cfg["divergence"]["blowup_factor"], init_seed=seeds[0], dtype=row.dtype,
                    seeds=seeds, backend=backend,
                    run=RunOptions(device=device, slots=sec.get("slots", 64),
                                   compile=sec.get("compile", False) and backend == "engine"))


# --- Fig. 3: linear regression, its reference point and the audit ---


def linear_spec(cfg: dict, order: str, device: str, seed: int | None = None, inner_steps: int = 1) -> GridSpec:
    """Fig. 3's grid for every data draw of ``linear.seeds`` in one vectorised run (cells
    (alpha, beta, seed)), or for draw ``seed`` alone; ``inner_steps``: 1 as in the paper's Fig. 3, 2 for
    the supplementary fig3-n2."""
    sec, linear = cfg["linear"], problems.get(LINEAR)
    alphas, betas = grid_values(sec)
    first = sec["seeds"][0] if seed is None else seed
    return GridSpec(model=linear.model, problem=family(LINEAR).from_config(LINEAR, sec, first), alphas=alphas,
                    betas=betas, iterations=sec["iterations"], order=order, inner_steps=inner_steps, optimizer="sgd",
                    blowup_factor=cfg["divergence"]["blowup_factor"], init_seed=first, dtype=linear.dtype,
                    seeds=list(sec["seeds"]) if seed is None else None, backend=cfg.get("backend", "engine"),
                    run=RunOptions(device=device, slots=sec["slots"], compile=False))


def linear_reference(cfg: dict, device: str, order: str = "second") -> dict:
    """Train every data draw at the paper's reference (alpha, beta); the Hessian spectrum there.

    The paper reads lambda_i off the Hessian of the training loss 'at the end of the
    training, where alpha = 5e-2 and beta = 7e-1' (Appendix C). For this quadratic the
    Hessian is the same everywhere; we still evaluate it at the trained point, as the paper does.
    Each draw (``linear.seeds``) is its own task, so it has its own spectrum.
    """
    ref = cfg["linear"]["reference"]
    spec = linear_spec(cfg, order, device)
    spec = dataclasses.replace(spec, alphas=[ref["alpha"]], betas=[ref["beta"]]).with_run(slots=len(spec.seeds))
    model = models.build(spec.model)
    draws = []
    for row in run_grid(spec, progress=False, keep_params=True).rows:
        if row["status"] != "ok":
            raise RuntimeError(f"the reference run of draw {row['seed']} (alpha={ref['alpha']}, beta={ref['beta']}) "
                               f"diverged at iteration {row['diverged_at']}; its Hessian is not defined")
        problem = dataclasses.replace(spec.problem, seed=row["seed"])
        batch = problem.sample(0, dtype=torch.float64)
        eig = curvature.loss_hessian_eigenvalues(model, row["final_params"], batch.xs[0], batch.ys[0])
        draws.append({"seed": row["seed"], "final_loss": row["final_loss"], "final_plain_loss": row["final_plain_loss"],
                      "params": {k: v.reshape(-1).tolist() for k, v in row["final_params"].items()},
                      "eigenvalues": eig.tolist(), "closed_form_eigenvalues": linear_eigenvalues(problem).tolist(),
                      "alpha_c": theory.paper_alpha_c(eig)})
    return {"alpha": ref["alpha"], "beta": ref["beta"], "order": order, "draws": draws}


def linear_eigenvalues(problem: LinearRegressionTask) -> np.ndarray:
    """The Hessian spectrum of one linear-regression task in closed form: 2 [[E x^2, E x], [E x, 1]] over its
    points (the loss is quadratic, so it is the same at every parameter)."""
    x = problem.sample(0, dtype=torch.float64).xs[0, :, 0]
    return np.linalg.eigvalsh(2 * np.array([[float((x * x).mean()), float(x.mean())], [float(x.mean()), 1.0]]))


def linear_audit(cfg: dict, device: str, reference: dict, inner_steps: int = 1) -> pd.DataFrame:
    """Bisected stability boundary of linear-regression MAML with ``inner_steps`` inner steps, every draw and
    both orders, with the paper's one-step formula and the exact N-step bound (each draw's own spectrum, from
    ``linear_reference``)."""
    sec = cfg["audit"]
    tables = []
    for draw in reference["draws"]:
        eig = draw["eigenvalues"]
        alphas = audit.audit_alphas(grid_values(cfg["linear"])[0], eig)
        for order in cfg["linear"]["orders"]:
            spec = linear_spec(cfg, order, device, seed=draw["seed"], inner_steps=inner_steps)
            table = audit.boundary_table(spec, eig, order, alphas,
                                         beta_range=tuple(sec["beta_range"]), points=sec["points"],
                                         rounds=sec["rounds"])
            table.insert(0, "seed", draw["seed"])
            tables.append(table)
    return pd.concat(tables, ignore_index=True)


# --- Fig. 4a: sinusoid regression, its reference point and the local bound ---


def sinusoid_spec(cfg: dict, device: str) -> GridSpec:
    """One sinusoid run at the config's ``seed`` (the reference point, Fig. 1 and 5 build on it)."""
    sec, sinusoid = cfg["sinusoid"], problems.get(SINUSOID)
    alphas, betas = grid_values(sec)
    return GridSpec(model=sinusoid.model, problem=family(SINUSOID).from_config(SINUSOID, sec, cfg["seed"]),
                    alphas=alphas, betas=betas,
                    iterations=sec["iterations"], inner_steps=sec["inner_steps"], order=sec["order"],
                    optimizer=sec["optimizer"], blowup_factor=cfg["divergence"]["blowup_factor"],
                    init_seed=cfg["seed"], dtype=sinusoid.dtype,
                    run=RunOptions(device=device, slots=sec["slots"], compile=sec["compile"]))


def sinusoid_grid_spec(cfg: dict, device: str) -> GridSpec:
    """Fig. 4a's grid, once for every seed of ``sinusoid.seeds``, in one vectorised run."""
    spec, seeds, backend = sinusoid_spec(cfg, device), list(cfg["sinusoid"]["seeds"]), cfg.get("backend", "engine")
    spec = dataclasses.replace(spec, seeds=seeds, problem=dataclasses.replace(spec.problem, seed=seeds[0]),
                               init_seed=seeds[0], backend=backend)
    return spec.with_run(compile=spec.run.compile and backend == "engine")


def sinusoid_reference(cfg: dict, device: str) -> dict:
    """Hessian spectrum of the sinusoid training loss at a meta-trained point, for every seed of the Fig. 4a grid.

    Trained with the grid's settings at ``sinusoid.reference``, one run per seed of ``sinusoid.seeds`` (each
    its own task stream and initialisation, as in the grid); the loss is the plain (pre-adaptation) loss
    averaged over the seed's fixed evaluation batch of tasks, on their support points, as in the paper's
    analysis of L. The top level holds the first seed's (Fig. 4a's overlay), ``per_seed`` every seed's.
    """
    ref = cfg["sinusoid"]["reference"]
    spec = sinusoid_grid_spec(cfg, device)
    spec = dataclasses.replace(spec, alphas=[ref["alpha"]], betas=[ref["beta"]], pairs=None).with_run(
        compile=False, slots=len(spec.seeds))
    model = models.build("sinusoid_mlp").double()
    per_seed = []
    for row in run_grid(spec, progress=False, keep_params=True).rows:
        if row["status"] != "ok":
            raise RuntimeError(f"the sinusoid reference run of seed {row['seed']} (alpha={ref['alpha']}, "
                               f"beta={ref['beta']}) diverged at iteration {row['diverged_at']}; choose a reference "
                               "that trains")
        batch = dataclasses.replace(spec.problem, seed=row["seed"]).sample(EVAL_STREAM, dtype=torch.float64)
        params = {k: v.double() for k, v in row["final_params"].items()}

        def loss(p):
            return torch.func.vmap(lambda x, y: maml.task_loss(model, p, x, y))(batch.xs, batch.ys).mean()

        eig = torch.linalg.eigvalsh(curvature.flat_hessian(loss, params)).numpy()
        per_seed.append({"seed": row["seed"], "final_loss": row["final_loss"], "eigenvalues": eig.tolist(),
                         "lambda_max": float(eig.max()), "alpha_c": theory.paper_alpha_c(eig),
                         "negative_eigenvalues": int((eig < 0).sum())})
    return {"alpha": ref["alpha"], "beta": ref["beta"], "iterations": spec.iterations, **per_seed[0],
            "per_seed": per_seed}


def sinusoid_local_bound(cfg: dict) -> pd.DataFrame:
    """Fig. 4a's local prediction: for every seed of the grid and every alpha of its columns, the top
    eigenvalue of the MAML objective's Hessian at the seed's initial parameters, on its first meta-batch
    (Lanczos on Hessian-vector products, float64), and 2 / that: gradient descent on the MAML objective is
    stable near the start below it. First-order MAML's update is the gradient of no objective: NaN."""
    spec = sinusoid_grid_spec(cfg, "cpu")
    model = models.build(spec.model).double()
    rows = []
    for problem, init in spec.seed_problems():
        params = models.initial_params(model, init, torch.float64)
        batch = problem.sample(0, dtype=torch.float64)
        for alpha in progress_bar(spec.alphas, desc=f"MAML sharpness at the start, seed {problem.seed}", unit="alpha"):
            lam = math.nan if spec.order != "second" else sharpness.maml_sharpness(
                model, params, batch, alpha, spec.inner_steps, k=1, iterations=cfg["sharpness"]["lanczos_iterations"],
                seed=init)[0]
            rows.append({"seed": problem.seed, "alpha": alpha, "lambda_max": lam,
                         "beta_predicted": 2 / lam if lam > 0 else math.inf if lam <= 0 else math.nan})
    return pd.DataFrame(rows)


# --- Fig. 4b, 4c: few-shot classification ---


def prepared_path(cfg: dict, dataset: str) -> str:
    """Where the data step leaves the prepared dataset (see data.py)."""
    return str(data.prepared_path(resolve_path(cfg["data"]["root"]), dataset))


def image_spec(cfg: dict, dataset: str, device: str, chunk: int | None = None, chunks: int | None = None,
               data_path: str | None = None) -> GridSpec:
    """Fig. 4b/4c: the (alpha, beta) grid of the few-shot experiment, or one chunk of it; with the section's
    ``seeds``, once for every seed (cells (alpha, beta, seed), each seed its own task stream and initialisation).

    A chunk is every ``chunks``-th cell starting at ``chunk`` (alpha-major order), so each
    chunk gets its share of the fast-diverging large-alpha cells.
    """
    sec = cfg[dataset]
    alphas, betas = grid_values(sec)
    seeds = list(sec["seeds"]) if sec.get("seeds") else None
    first = seeds[0] if seeds else cfg["seed"]
    problem = family(dataset).from_config(dataset, sec, first, data_path=data_path or prepared_path(cfg, dataset))
    pairs = [(a, b) for a in alphas for b in betas]
    if chunks is not None:
        if not 0 <= chunk < chunks:
            raise ValueError(f"chunk {chunk} is not in [0, {chunks})")
        pairs = pairs[chunk::chunks]
    on_gpu = str(device).startswith("cuda")
    return GridSpec(model=problems.get(dataset).model, problem=problem, alphas=alphas, betas=betas, pairs=pairs,
                    iterations=sec["iterations"], inner_steps=sec["inner_steps"], order=sec["order"],
                    optimizer="sgd", blowup_factor=cfg["divergence"]["blowup_factor"], init_seed=first,
                    dtype=problems.get(dataset).dtype, backend=cfg.get("backend", "engine"), seeds=seeds,
                    run=RunOptions(device=device, slots=sec["gpu_slots"] if on_gpu else 1, task_loop=not on_gpu,
                                   conv="auto"))


def image_grid_pace(cfg: dict, dataset: str, device: str) -> float:
    """Cell-iterations per second of ``dataset``'s image grid on ``device``: a few meta-iterations of its settings,
    timed after one that warms up, on tasks of random pixels of its images' shape (a meta-iteration's cost depends
    on the shapes alone, so no dataset need be prepared yet). Seconds, never minutes."""
    spec = image_spec(cfg, dataset, device, data_path="(random pixels)")
    shape, sec = models.build(spec.model).input_shape, cfg[dataset]

    def random_tasks(i: int):
        g = torch.Generator().manual_seed(i)
        labels = lambda k: torch.arange(sec["n_way"]).repeat_interleave(k).expand(sec["tasks"], -1)
        return (torch.rand((sec["tasks"], sec["n_way"] * sec["k_shot"], *shape), generator=g), labels(sec["k_shot"]),
                torch.rand((sec["tasks"], sec["n_way"] * sec["k_query"], *shape), generator=g), labels(sec["k_query"]))

    pace = []
    probe = dataclasses.replace(spec, problem=SampledTasks(random_tasks), seeds=None,
                                pairs=spec.cells()[:spec.run.slots], iterations=max(spec.iterations, 8))
    run_grid(probe, progress=False, on_pace=lambda rate: pace.append(rate) or True)
    return pace[0]


def projected_image_grids(cfg: dict, device: str) -> pd.DataFrame:
    """Per image grid of the config (every seed, every cell), its pace on ``device`` (``image_grid_pace``) and the
    hours its cell-iterations take at that pace: an upper bound, as a cell that diverges ends early."""
    rows = []
    for dataset in FEW_SHOT:
        alphas, betas = grid_values(cfg[dataset])
        seeds = len(cfg[dataset].get("seeds") or [cfg["seed"]])
        work = len(alphas) * len(betas) * seeds * cfg[dataset]["iterations"]
        rate = image_grid_pace(cfg, dataset, device)
        rows.append({"dataset": dataset, "cells": len(alphas) * len(betas) * seeds, "iterations": cfg[dataset]
                     ["iterations"], "cell_iterations": work, "cell_iterations_per_second": rate,
                     "hours": work / rate / 3600})
    return pd.DataFrame(rows)


def initial_eval_losses(cfg: dict, dataset: str, alphas, device: str, data_path: str | None = None,
                        seed: int | None = None) -> dict:
    """Per alpha, the meta-loss of the initial parameters on the grid's fixed evaluation batch (of ``seed``, one
    of the section's seeds; default: the first, or the config's seed).

    The grid's ``initial_loss`` is measured on iteration 0's batch (4 tasks for MiniImagenet),
    its ``final_loss`` on the fixed batch of ``eval_tasks`` tasks; this puts the start on the
    same batch as the end, so that 'the loss went up' compares like with like.
    """
    spec = image_spec(cfg, dataset, device, data_path=data_path)
    if seed is not None:
        spec = dataclasses.replace(spec, problem=dataclasses.replace(spec.problem, seed=seed), init_seed=seed)
    model = models.build(spec.model).to(device)
    theta0 = {k: v.to(device) for k, v in models.initial_params(model, spec.init_seed).items()}
    batch = spec.problem.eval_batch(getattr(torch, spec.dtype), device)
    return {a: float(maml.meta_loss(model, theta0, batch, a, spec.inner_steps, spec.run.task_loop)) for a in alphas}


def initial_eval_loss_column(cfg: dict, dataset: str, frame: pd.DataFrame, device: str,
                             data_path: str | None = None) -> pd.Series:
    """``initial_eval_losses`` for every row of a grid table: per alpha, and per seed where it has seeds."""
    if "seed" not in frame:
        return frame.alpha.map(initial_eval_losses(cfg, dataset, sorted(frame.alpha.unique()), device, data_path))
    out = pd.Series(math.nan, index=frame.index)
    for seed, rows in frame.groupby("seed"):
        start = initial_eval_losses(cfg, dataset, sorted(rows.alpha.unique()), device, data_path, int(seed))
        out[rows.index] = rows.alpha.map(start)
    return out


def merge_chunks(frames: list[pd.DataFrame], cfg: dict, dataset: str) -> pd.DataFrame:
    """The chunks' rows as one grid table in alpha-major order (seeds inside a cell); every cell exactly once."""
    grid = pd.concat(frames, ignore_index=True).sort_values(["alpha", "beta"], kind="stable")
    alphas, betas = grid_values(cfg[dataset])
    seeds = cfg[dataset].get("seeds") or [None]
    expected = {(a, b, s) for a in alphas for b in betas for s in seeds}
    got = list(zip(grid.alpha, grid.beta, grid.seed if "seed" in grid else [None] * len(grid)))
    if set(got) != expected or len(got) != len(expected):
        raise ValueError(f"{dataset} chunks hold {len(got)} cells ({len(set(got))} distinct), "
                         f"the grid has {len(expected)}")
    grid["cell"] = range(len(grid))
    return grid.reset_index(drop=True)


# --- Fig. 5: T g against H^2 over a long run ---


def fig5_spec(cfg: dict, device: str) -> GridSpec:
    """The paper's Appendix B run: the sinusoid MLP, alpha = beta = 1e-3, 50,000 iterations."""
    sec = cfg["fig5"]
    return dataclasses.replace(sinusoid_spec(cfg, device), alphas=[sec["alpha"]], betas=[sec["beta"]],
                               iterations=sec["iterations"], optimizer="sgd", order="second").with_run(slots=1)


def fig5_train(cfg: dict, device: str, checkpoint=None, run_info: dict | None = None) -> dict:
    spec = fig5_spec(cfg, device)
    (row,) = _resumable_grid(cfg, spec, checkpoint, run_info, snapshot_every=cfg["fig5"]["snapshot_every"])
    if row["status"] != "ok":
        raise RuntimeError(f"the Fig. 5 run diverged at iteration {row['diverged_at']}")
    return {"snapshots": row["snapshots"], "final_loss": row["final_loss"], "fingerprint": spec.fingerprint()}


def fig5_analysis(cfg: dict, snapshots: dict, fingerprint: str, checkpoint=None,
                  run_info: dict | None = None) -> list[dict]:
    """Exact T g, H^2, T g + H^2 at every snapshot, for the batch loss and per task.

    The loss is the inner-step loss of the sinusoid tasks (support points) on one fixed
    batch of tasks. The paper's ReLU MLP goes through ``curvature_mlp`` (written out, float64);
    any other network through automatic differentiation (``curvature.tg_h2_dense``, float32,
    several times slower: the README has timings). Tests hold the two paths to the same numbers.
    ``fingerprint``: the training run's (the snapshots'); ``checkpoint``: the step's resume file, saved after
    every snapshot (each takes minutes); ``run_info`` receives its record and ``seconds_per_snapshot``.
    """
    spec = fig5_spec(cfg, "cpu")
    batch = spec.problem.sample(EVAL_STREAM, dtype=torch.float32)
    model = models.build("sinusoid_mlp")
    task_loss = lambda p, x, y: maml.task_loss(model, p, x, y)

    computed = []  # the snapshots this run analyses (the others come from the resume file)

    def analysis(iteration) -> list[dict]:
        computed.append(iteration)
        params = {k: v.float() for k, v in snapshots[iteration].items()}
        if curvature_mlp.applies(model):
            out, method = curvature_mlp.tg_h2(model, params, batch.xs, batch.ys), "written out, float64"
        else:
            out = curvature.tg_h2_dense(task_loss, params, batch.xs, batch.ys, task_chunk=cfg["fig5"]["task_chunk"])
            method = "autodiff, float32"
        return [{"iteration": iteration, "scope": scope, "method": method, **{
            f"{name}_{i + 1}" if name.startswith("eig") else name: (v[i] if name.startswith("eig") else v)
            for name, v in summary.items() for i in (range(len(v)) if name.startswith("eig") else [0])}}
            for scope, summary in out.items()]

    resume, started = Checkpoint(checkpoint, fingerprint, "fig5"), time.perf_counter()
    done = resume.map(sorted(snapshots), analysis, 0.0, "Fig. 5 curvature", "snapshot")
    if run_info is not None:
        run_info.update(resume.run_info(),
                        seconds_per_snapshot=(time.perf_counter() - started) / max(1, len(computed)))
    return [row for it in sorted(done) for row in done[it]]


# --- Fig. 6: sharpness over training on both sides of the boundary ---


def fig6_cells(grid: pd.DataFrame, alphas, seed: int) -> list[tuple[float, float, str]]:
    """(alpha, beta, side) on both sides of the measured boundary of one seed's grid: at each of ``alphas``,
    the largest stable beta below the column's first divergence, and that first diverged beta."""
    brackets = stability_brackets(grid[grid.seed == seed] if "seed" in grid else grid)
    cells = []
    for alpha in alphas:
        column = brackets[np.isclose(brackets.alpha, alpha, rtol=1e-9, atol=0)]
        if not len(column):
            raise ConfigError(f"config key 'fig6.alphas': {alpha:g} is not an alpha of the sinusoid grid "
                              f"({', '.join(f'{a:g}' for a in brackets.alpha)})")
        r = column.iloc[0]
        cells += [(r.alpha, beta, side) for beta, side in ((r.last_ok, "stable"), (r.first_diverged, "diverged"))
                  if np.isfinite(beta)]
    return cells


def fig6_runs(cfg: dict, device: str, grid: pd.DataFrame, checkpoint=None,
              run_info: dict | None = None) -> pd.DataFrame:
    """Fig. 6: the cells of ``fig6_cells`` (seed ``cfg['seed']``) trained again with the grid's settings, and
    the sharpness monitor every ``fig6.every`` iterations: the MAML objective's top Hessian eigenvalue at the
    parameters of that iteration, on its meta-batch, against 2 / beta. A diverging cell is followed until
    its last finite parameters."""
    spec = sinusoid_spec(cfg, device)
    every = cfg["fig6"]["every"]
    cells = fig6_cells(grid, cfg["fig6"]["alphas"], spec.problem.seed)
    spec = dataclasses.replace(spec, pairs=[(a, b) for a, b, _ in cells]).with_run(slots=len(cells), compile=False)
    rows = _resumable_grid(cfg, spec, checkpoint, run_info, snapshot_every=every)
    model = models.build(spec.model).double()
    out = []
    work = [(cell, row, it) for cell, row in zip(cells, rows) for it in sorted(row["snapshots"])]
    monitors = {}
    for (alpha, beta, side), row, it in progress_bar(work, desc="Fig. 6 sharpness", unit="snapshot"):
        monitor = monitors.setdefault((alpha, beta), sharpness.SharpnessMonitor(
            model, alpha, beta, every=every, inner_steps=spec.inner_steps,
            iterations=cfg["sharpness"]["lanczos_iterations"]))
        params = {k: v.double() for k, v in row["snapshots"][it].items()}
        batch = spec.problem.sample(it, dtype=torch.float64)
        monitor(it, params, batch)
        meta = float(maml.meta_loss(model, params, batch, alpha, spec.inner_steps))
        out.append({"alpha": alpha, "beta": beta, "side": side, "status": row["status"],
                    "diverged_at": row["diverged_at"], "iteration": it, "meta_loss": meta,
                    **{k: v for k, v in monitor.history[-1].items() if k != "step"}})
    return pd.DataFrame(out)


# --- Fig. 7: the edge of stability over the whole sinusoid grid ---


def sinusoid_final_params(spec: GridSpec, rows: list[dict]) -> dict:
    """What the sinusoid grid keeps for Fig. 7: the final parameters of every cell that did not diverge
    (rows of ``run_grid(spec, keep_params=True)``), stacked along the first axis, with those cells' ids
    (the grid table's ``cell``) and the grid's fingerprint."""
    kept = [r for r in rows if r["status"] == "ok"]
    names = list(kept[0]["final_params"]) if kept else []
    return {"fingerprint": spec.fingerprint(), "cells": [r["cell"] for r in kept],
            "params": {k: torch.stack([r["final_params"][k].detach().cpu() for r in kept]) for k in names}}


def fig7_resume_fingerprint(final_params: dict, seeds, lanczos: int) -> str:
    """What Fig. 7's resume file is for: the kept parameters' grid (its settings and backend), the seeds read
    and the Lanczos steps."""
    return f"{final_params['fingerprint']}-seeds{'-'.join(map(str, seeds))}-lanczos{lanczos}"


def fig7_sharpness(cfg: dict, device: str, grid: pd.DataFrame, final_params: dict, checkpoint=None,
                   run_info: dict | None = None) -> pd.DataFrame:
    """Fig. 7: for every cell of every seed of the Fig. 4a grid (``grid``, its table) that did not diverge, the
    top eigenvalue of the MAML objective's Hessian at the cell's final parameters, as the grid kept them
    (``final_params``, from ``sinusoid_final_params``), on the seed's fixed evaluation batch (Lanczos on
    Hessian-vector products, float64), with ratio = lambda_max beta / 2: gradient descent on that objective is
    stable near those parameters below 1 (the edge of stability, Cohen et al. 2021). ``checkpoint``: the step's
    resume file."""
    spec = sinusoid_spec(cfg, device)
    if spec.order != "second":
        raise ConfigError("config key 'sinusoid.order': Fig. 7 reads the MAML objective's Hessian, which "
                          "first-order MAML's update is not the gradient of; set it to second")
    if not isinstance(final_params, dict) or final_params.get("fingerprint") != sinusoid_grid_spec(
            cfg, device).fingerprint():
        raise ConfigError("the sinusoid grid's final parameters were kept by a grid of other settings than "
                          "config sections 'sinusoid' and 'backend'; run its sinusoid-grid step again")
    kept = {c: i for i, c in enumerate(final_params["cells"])}
    stable = grid[grid.status == "ok"]
    if missing := [c for c in stable.cell if c not in kept]:
        raise ConfigError(f"the sinusoid grid's final parameters lack {len(missing)} of its stable cells "
                          f"(cell {missing[0]} first); run its sinusoid-grid step again")
    seeds, lanczos = sorted(int(s) for s in grid.seed.unique()), cfg["sharpness"]["lanczos_iterations"]
    resume = Checkpoint(checkpoint, fig7_resume_fingerprint(final_params, seeds, lanczos), "fig7")
    model = models.build(spec.model).double()
    batches = {s: dataclasses.replace(spec.problem, seed=s).eval_batch(torch.float64, "cpu") for s in seeds}
    cells = {(r.seed, r.alpha, r.beta): r.cell for r in stable.itertuples()}

    def at_final_params(key) -> float:
        seed, alpha, _ = key
        params = {k: v[kept[cells[key]]].double() for k, v in final_params["params"].items()}
        return sharpness.maml_sharpness(model, params, batches[seed], alpha, spec.inner_steps, k=1,
                                        iterations=lanczos, seed=seed)[0]

    done = resume.map(cells, at_final_params, cfg["checkpoint_every"], "Fig. 7 sharpness at the final parameters",
                      "cell")
    if run_info is not None:
        run_info.update(resume.run_info())
    out = grid[["seed", "alpha", "beta", "status", "diverged_at", "final_loss"]].reset_index(drop=True)
    out["lambda_max"] = [done.get((s, a, b), math.nan) for s, a, b in zip(out.seed, out.alpha, out.beta)]
    out["ratio"] = out.lambda_max * out.beta / 2
    return out


# --- The guideline tool on the paper's problems ---


def problem_spec(cfg: dict, problem: str, device: str, data_path: str | None = None) -> GridSpec:
    """A problem of the table as a single run at the config's seed: its model, task stream, inner steps, order,
    iterations and evaluation, as its grid trains each cell (linear regression: second order)."""
    if problem == LINEAR:
        return linear_spec(cfg, "second", device, seed=cfg["seed"])
    if problem == SINUSOID:
        return sinusoid_spec(cfg, device).with_run(compile=False)
    spec = grid_spec(cfg, problem, device, data_path=data_path)  # one run: the config's seed, not the grid's seeds
    return dataclasses.replace(spec, seeds=None, problem=dataclasses.replace(spec.problem, seed=cfg["seed"]),
                               init_seed=cfg["seed"]).with_run(compile=False)


def probe_settings(cfg: dict, problem: str, budget_seconds: float | None = None, iterations: int | None = None,
                   streams: int | None = None) -> dict:
    """``suggest``'s settings on one of the paper's problems: each as given, else the config's ``guideline``
    section's for the problem, else the tool's default."""
    section = cfg["guideline"].get(problem, {})
    pick = lambda given, key, default: next(v for v in (given, section.get(key), default) if v is not None)  # noqa: E731
    return {"budget_seconds": pick(budget_seconds, "budget_seconds", guideline.BUDGET_SECONDS),
            "iterations": pick(iterations, "iterations", guideline.ITERATIONS),
            "streams": pick(streams, "streams", guideline.STREAMS)}


def suggest_on(cfg: dict, problem: str, device: str, *, budget_seconds: float, data_path: str | None = None,
               iterations: int = guideline.ITERATIONS, streams: int = guideline.STREAMS, rule: str = "recommended",
               checkpoint=None, verbose: bool = True) -> guideline.Suggestion:
    """``maml-convergence suggest --problem``: the guideline tool on one of the paper's problems, from the
    starting parameters and the task stream its grid's cells of seed ``cfg['seed']`` have."""
    return _suggest_on_spec(cfg, problem_spec(cfg, problem, device, data_path), device, budget_seconds=budget_seconds,
                            iterations=iterations, streams=streams, rule=rule, checkpoint=checkpoint, verbose=verbose)


def _suggest_on_spec(cfg: dict, spec: GridSpec, device: str, *, budget_seconds: float, iterations: int, streams: int,
                     rule: str = "recommended", checkpoint=None, verbose: bool = True) -> guideline.Suggestion:
    """The guideline tool from the starting parameters, task stream, inner steps and order of a grid's cells."""
    dtype = getattr(torch, spec.dtype)
    model = models.build(spec.model).to(dtype)
    start = models.initial_params(model, spec.init_seed, dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(start[name])
    return guideline.suggest(model, lambda i: spec.problem.sample(i, dtype=dtype), inner_steps=spec.inner_steps,
                             order=spec.order,
                             budget_seconds=budget_seconds, device=device, seed=cfg["seed"], iterations=iterations,
                             streams=streams, rule=rule, checkpoint=checkpoint, verbose=verbose)


def suggest_exact(cfg: dict, device: str, checkpoint=None, run_info: dict | None = None) -> pd.DataFrame:
    """The guideline tool held to an exact answer: ``suggest`` on linear regression, for every data draw of the
    ``linear`` section, each MAML order and each number of inner steps of ``guideline_exact``, from the start
    Fig. 3's grid has. The stable region is known exactly there (``theory.exact_beta_bound`` with the draw's
    Hessian in closed form): per run, both cells, their margin rung (the next beta rung up, which the probe found
    stable), the exact bound at their alpha and the exact spectral radius of the cell's iteration (how fast it
    converges: inside the region, a rho near 1 all but stands still). ``checkpoint``: the step's resume file."""
    sec = cfg["guideline_exact"]
    runs = [(seed, order, n) for seed in cfg["linear"]["seeds"] for order in cfg["linear"]["orders"]
            for n in sec["inner_steps"]]
    resume = Checkpoint(checkpoint, json.dumps([cfg["linear"], sec, cfg["seed"]], sort_keys=True), "suggest-exact")

    def one_run(run) -> list[dict]:
        seed, order, n = run
        spec = linear_spec(cfg, order, device, seed=seed, inner_steps=n)
        result = _suggest_on_spec(cfg, spec, device, budget_seconds=sec["budget_seconds"],
                                  iterations=sec["iterations"], streams=sec["streams"], verbose=False)
        eig = linear_eigenvalues(spec.problem)
        rows = []
        for name in guideline.CELLS:
            cell = getattr(result, name) or {}
            alpha, beta = cell.get("alpha", math.nan), cell.get("beta", math.nan)
            bound = float(theory.exact_beta_bound(alpha, eig, order, n)[0]) if cell else math.nan
            rho = float(np.abs(1 - beta * theory.quadratic_rates(alpha, eig, order, n)).max()) if cell else math.nan
            rows.append({"seed": seed, "order": order, "inner_steps": n, "cell": name, "alpha": alpha, "beta": beta,
                         "margin_beta": cell.get("margin_beta", math.nan), "exact_bound": bound, "rho": rho,
                         "alpha_c": theory.paper_alpha_c(eig), "cut_short": result.cut_short,
                         "probe_cells": len(result.probe)})
        return rows

    done = resume.map(runs, one_run, cfg["checkpoint_every"], "suggest on linear regression", "run")
    if run_info is not None:
        run_info.update(resume.run_info())
    return pd.DataFrame([row for run in runs for row in done[run]])


def guideline_check(cfg: dict, problem: str, device: str, cells: dict, data_path: str | None = None,
                    checkpoint=None, run_info: dict | None = None) -> pd.DataFrame:
    """``suggest``'s cells (``cells``: name -> (alpha, beta), its recommended and guideline cells) trained as
    their problem's grid trains a cell: a grid table with the name in ``suggested`` (and the start on the
    evaluation batch, ``initial_eval_loss``, for a few-shot problem). A cell named twice is trained once."""
    spec = problem_spec(cfg, problem, device, data_path)
    pairs = list(dict.fromkeys(cells.values()))
    spec = dataclasses.replace(spec, pairs=pairs).with_run(slots=1)
    trained = grid_frame(_resumable_grid(cfg, spec, checkpoint, run_info))
    frame = pd.concat([trained.iloc[[pairs.index(cell)]].assign(suggested=name) for name, cell in cells.items()],
                      ignore_index=True)
    if problem in FEW_SHOT:
        frame["initial_eval_loss"] = initial_eval_loss_column(cfg, problem, frame, device, data_path)
    return frame
