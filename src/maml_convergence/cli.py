"""maml-convergence: the guideline tool, the paper-scale grid, the docs' tables, and every workflow step.

    maml-convergence suggest --model mymodels:model --tasks mymodels:sample_tasks
    maml-convergence sinusoid-grid --out results/sinusoid/grid.csv --provenance results/sinusoid/provenance.json

Every command validates the configuration first, writes its outputs atomically
(nothing half-written is left looking complete) and records provenance beside them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from . import __version__
from . import config as config_mod
from . import checkpoint, data, experiments, guideline, paper_grid, provenance, source_data
from .checkpoint import Checkpoint
from .grid import run_grid
from .tasks import ProtocolError

# The Snakefile puts the whole merged config here; a step records it in its provenance (it
# runs with only the sections it reads, passed on its command line).
WORKFLOW_CONFIG_ENV = "MAML_CONVERGENCE_WORKFLOW_CONFIG"

# Every subcommand, registered by @command above its function with the arguments it takes beyond the
# common ones (the configuration; --out, --provenance, --checkpoint, the dataset as it asks).
COMMANDS: dict[str, tuple] = {}


def _number(kind, least: float, strict: bool):
    """An argparse type: a finite ``kind`` at least (or, ``strict``, above) ``least``; anything else is refused
    at parse time with one line naming the option."""
    bound = f"{'>' if strict else '>='} {least:g}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'} "
                                             f"{bound}") from None
        if not math.isfinite(value) or value < least or (strict and value == least):
            raise argparse.ArgumentTypeError(f"{text} is not a number {bound}")
        return value

    parse.__name__ = kind.__name__  # what argparse names in its messages
    return parse


POSITIVE_INT, COUNT = _number(int, 1, False), _number(int, 0, False)
POSITIVE, NONNEGATIVE = _number(float, 0, True), _number(float, 0, False)


def arg(*flags, **options) -> tuple:
    """One argument of a command, as ``argparse``'s ``add_argument`` takes it."""
    return flags, options


def command(name: str, help: str, out: bool = True, provenance: bool = False, checkpoint: bool = False,
            data: bool = False, arguments: list[tuple] = (), defaults: dict | None = None):
    """Register the function below as the subcommand ``name``."""
    def register(func):
        common = {"out": out, "provenance": provenance, "checkpoint": checkpoint, "data": data}
        COMMANDS[name] = (func, help, list(arguments), common, defaults or {})
        return func
    return register


def _config(args) -> dict:
    """The configuration this step reads (``STEP_SECTIONS``), validated. ``args.workflow_config``
    is set to the whole configuration it belongs to, for the provenance."""
    step, dataset = args.command, getattr(args, "dataset", None) or getattr(args, "problem", None)
    if args.config_json:
        try:
            given = json.loads(args.config_json)
        except json.JSONDecodeError as e:
            raise config_mod.ConfigError(f"--config-json is not valid JSON: {e}") from None
        cfg = config_mod.validate(given, sections=config_mod.step_sections(step, dataset))
        whole = os.environ.get(WORKFLOW_CONFIG_ENV)
        args.workflow_config = json.loads(whole) if whole else given
    else:
        cfg = args.workflow_config = config_mod.load(*args.configfile)
    return config_mod.step_config(cfg, step, dataset)


def _record(args, cfg: dict, device: str, wall_seconds: float, run_info: dict | None = None, **extra) -> dict:
    """Provenance of this step: the config it read, the whole config of its run, and what the run
    reported of itself (``run_grid``'s ``run_info``): for a run that resumed after an interruption,
    how often and the time of all its parts; the convolution a grid chose."""
    info = dict(run_info or {})
    wall_seconds += info.pop("earlier_seconds", 0.0)
    return provenance.record(args.experiment, cfg, device, wall_seconds, workflow_config=args.workflow_config,
                             **info, **extra)


def _write_grid(args, spec, cfg, device, on_pace=None, final_params=None):
    """The grid's table and provenance; with ``final_params`` (a path) also the final parameters of its
    stable cells there (``experiments.sinusoid_final_params``), written before the table."""
    start, run_info = time.perf_counter(), {}
    rows = run_grid(spec, checkpoint=_ckpt(args), checkpoint_every=cfg["checkpoint_every"], run_info=run_info,
                    on_pace=on_pace, keep_params=final_params is not None)
    if rows is None:  # on_pace stopped it: the projected time is over the limit
        raise config_mod.ConfigError(on_pace.refusal)
    wall = time.perf_counter() - start
    if final_params is not None:
        _save_torch(final_params, experiments.sinusoid_final_params(spec, rows))
    frame = experiments.grid_frame(rows)
    provenance.atomic_write_text(args.out, frame.to_csv(index=False))
    prov = _record(args, cfg, device, wall, run_info, cells=len(rows), iterations=spec.iterations, order=spec.order,
                   seeds=spec.seeds, inner_steps=spec.inner_steps, fingerprint=spec.fingerprint(),
                   diverged=int((frame.status == "diverged").sum()))
    provenance.write_json(args.provenance, prov)
    checkpoint.discard(_ckpt(args))
    print(f"[{args.experiment}] {len(rows)} cells x {spec.iterations} iterations in {prov['wall_seconds']:.1f} s "
          f"({prov['diverged']} diverged) -> {args.out}")


def _write_cpu_table(args, compute) -> None:
    """A table computed on the CPU from the config alone, with its provenance."""
    cfg = _config(args)
    start = time.perf_counter()
    provenance.atomic_write_text(args.out, compute(cfg).to_csv(index=False))
    provenance.write_json(args.provenance, _record(args, cfg, "cpu", time.perf_counter() - start))


@command("fig2-curves", "beta_c(alpha) curves of Fig. 2", provenance=True)
def cmd_fig2_curves(args):
    _write_cpu_table(args, experiments.fig2_curves)


def _write_reference(args, compute) -> None:
    """A trained reference point and its spectrum, with provenance, as one JSON file."""
    cfg = _config(args)
    device = provenance.resolve_device(cfg["device"])
    start = time.perf_counter()
    ref = compute(cfg, device)
    ref["provenance"] = _record(args, cfg, device, time.perf_counter() - start)
    provenance.write_json(args.out, ref)


@command("linear-reference", "Hessian spectrum at the trained reference point")
def cmd_linear_reference(args):
    _write_reference(args, experiments.linear_reference)


INNER_STEPS = arg("--inner-steps", type=int, choices=[1, 2, 3], default=1,
                  help="inner steps: 1 as in the paper's Fig. 3, 2 for fig3-n2")


@command("linear-grid", "Fig. 3 grid", provenance=True, checkpoint=True, arguments=[
    arg("--order", choices=["second", "first"], required=True), INNER_STEPS,
])
def cmd_linear_grid(args):
    cfg = _config(args)
    args.experiment = f"linear-{args.order}" + (f"-n{args.inner_steps}" if args.inner_steps > 1 else "")
    device = provenance.resolve_device(cfg["device"])
    _write_grid(args, experiments.linear_spec(cfg, args.order, device, inner_steps=args.inner_steps), cfg, device)


@command("sinusoid-grid", "Fig. 4a grid", provenance=True, checkpoint=True, arguments=[
    arg("--final-params", help="also keep the final parameters of every stable cell here (what Fig. 7 reads)"),
])
def cmd_sinusoid_grid(args):
    cfg = _config(args)
    args.experiment = "sinusoid"
    device = provenance.resolve_device(cfg["device"])
    _write_grid(args, experiments.sinusoid_grid_spec(cfg, device), cfg, device, final_params=args.final_params)


@command("linear-audit", "bisected stability boundary on linear regression", provenance=True, arguments=[
    arg("--linear-reference", required=True), INNER_STEPS,
])
def cmd_linear_audit(args):
    cfg = _config(args)
    device = provenance.resolve_device(cfg["device"])
    reference = json.loads(Path(args.linear_reference).read_text())
    start = time.perf_counter()
    table = experiments.linear_audit(cfg, device, reference, inner_steps=args.inner_steps)
    provenance.atomic_write_text(args.out, table.to_csv(index=False))
    spectra = {d["seed"]: d["eigenvalues"] for d in reference["draws"]}
    provenance.write_json(args.provenance, _record(args, cfg, device, time.perf_counter() - start, eigenvalues=spectra,
                                                   inner_steps=args.inner_steps))


@command("sinusoid-reference", "Hessian spectrum at a meta-trained sinusoid point")
def cmd_sinusoid_reference(args):
    _write_reference(args, experiments.sinusoid_reference)


def _write_trained_table(args, compute, extra=lambda cfg: {}) -> pd.DataFrame:
    """The table of a resumable step, ``compute(cfg, device, checkpoint=, run_info=)``, with its
    provenance (plus ``extra(cfg)``); its resume file is removed once both are written."""
    cfg = _config(args)
    device = provenance.resolve_device(cfg["device"])
    start, run_info = time.perf_counter(), {}
    table = compute(cfg, device, checkpoint=_ckpt(args), run_info=run_info)
    provenance.atomic_write_text(args.out, table.to_csv(index=False))
    provenance.write_json(args.provenance, _record(args, cfg, device, time.perf_counter() - start, run_info,
                                                   **extra(cfg)))
    checkpoint.discard(_ckpt(args))
    return table


def _save_torch(path: str, obj) -> None:
    """A torch file for another step to read: written whole or not at all."""
    with provenance.atomic_write(path) as tmp:
        torch.save(obj, tmp)


def _load_torch(path: str):
    """A torch file another step wrote, or one line naming it when it is missing or unreadable."""
    try:
        return torch.load(path, weights_only=False)
    except Exception as e:  # noqa: BLE001 - missing, cut short or not a torch file at all
        raise config_mod.ConfigError(f"{path}: cannot be read ({type(e).__name__}); run the step that writes "
                                     "it again") from None


@command("fig1-runs", "Fig. 1 training runs (every seed) and their task-gradient statistics", provenance=True,
         checkpoint=True)
def cmd_fig1_runs(args):
    _write_trained_table(args, experiments.fig1_runs,
                         lambda cfg: {"seeds": cfg["fig1"]["seeds"], "iterations": cfg["fig1"]["iterations"]})


@command("fig5-train", "Appendix B training run, with parameter snapshots", checkpoint=True)
def cmd_fig5_train(args):
    cfg = _config(args)
    device = provenance.resolve_device(cfg["device"])
    start, run_info = time.perf_counter(), {}
    out = experiments.fig5_train(cfg, device, checkpoint=_ckpt(args), run_info=run_info)
    out["provenance"] = _record(args, cfg, device, time.perf_counter() - start, run_info)
    _save_torch(args.out, out)
    checkpoint.discard(_ckpt(args))


@command("fig5-analysis", "exact T g and H^2 at every snapshot (Fig. 5)", provenance=True, checkpoint=True, arguments=[
    arg("--snapshots", required=True),
])
def cmd_fig5_analysis(args):
    cfg = _config(args)
    saved = _load_torch(args.snapshots)
    resume = Checkpoint(_ckpt(args), saved["fingerprint"], "fig5")
    done = resume.load() or {}
    start, first_new = time.perf_counter(), len(done)
    rows = experiments.fig5_analysis(cfg, saved["snapshots"], done, on_done=resume.save)
    wall = time.perf_counter() - start
    provenance.atomic_write_text(args.out, pd.DataFrame(rows).to_csv(index=False))
    provenance.write_json(args.provenance, _record(
        args, cfg, "cpu", wall, resume.run_info(), train=saved["provenance"], iterations=cfg["fig5"]["iterations"],
        seconds_per_snapshot=wall / max(1, len(saved["snapshots"]) - first_new)))
    resume.remove()


def _mirror(cfg) -> Path | None:
    """The configured mirror folder (relative paths: to the repository), or None for the canonical sources."""
    mirror = config_mod.resolve_path(cfg["data"]["mirror"])
    if mirror is None:
        return None
    if not mirror.is_dir():
        print(f"[data] the mirror folder {mirror} (data.mirror) does not exist: downloading from the canonical "
              f"source instead")
        return None
    print(f"[data] reading the local mirror {mirror}")
    return mirror


@command("prepare-data",
         "fetch and prepare a dataset once (shared by every run); write the record of what this run uses", arguments=[
    arg("--dataset", choices=sorted(data.PREPARED), required=True),
])
def cmd_prepare_data(args):
    cfg = _config(args)
    root = config_mod.resolve_path(cfg["data"]["root"])
    start = time.perf_counter()
    record = data.ensure_prepared(args.dataset, root, _mirror(cfg))
    path = data.prepared_path(root, args.dataset)
    print(f"[data] {'reusing' if record['reused'] else 'prepared'} {args.dataset}: {path} (sha256 {record['sha256']})")
    provenance.write_json(args.out, {**record, "provenance": _record(args, cfg, "cpu", time.perf_counter() - start)})


def _image_data(args, cfg) -> str:
    """The prepared dataset an image step reads: ``--data``, or the one the config names, checked
    against the record the workflow's data step made of it (``--dataset-record``)."""
    dataset = getattr(args, "dataset", None) or args.problem
    path = args.data or experiments.prepared_path(cfg, dataset)
    if not args.data and not args.dataset_record and not Path(path).exists():  # by hand: prepare it first
        data.ensure_prepared(dataset, config_mod.resolve_path(cfg["data"]["root"]), _mirror(cfg))
    if args.dataset_record:
        data.check_prepared(path, json.loads(Path(args.dataset_record).read_text()))
    return path


@command("image-grid", "Fig. 4b/4c grid, or one chunk of it", provenance=True, checkpoint=True, data=True, arguments=[
    arg("--dataset", choices=sorted(experiments.IMAGE_DATASETS), required=True),
    arg("--chunk", type=COUNT, help="this chunk's index, 0-based (with --chunks)"),
    arg("--chunks", type=POSITIVE_INT, help="how many chunks the grid is split into"),
    arg("--max-projected-hours", type=POSITIVE, help="stop (keeping the resume file) when the whole grid is "
        "projected to take longer on this device (default: the dataset's max_projected_hours)"),
])
def cmd_image_grid(args):
    cfg = _config(args)
    if (args.chunk is None) != (args.chunks is None) or (args.chunks and not 0 <= args.chunk < args.chunks):
        raise config_mod.ConfigError(f"--chunk {args.chunk} --chunks {args.chunks}: give both, with "
                                     f"0 <= chunk < chunks")
    args.experiment = f"{args.dataset}" + (f"-chunk{args.chunk}of{args.chunks}" if args.chunks else "")
    device = provenance.resolve_device(cfg["device"])
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convolutions
    spec = experiments.image_spec(cfg, args.dataset, device, args.chunk, args.chunks, _image_data(args, cfg))
    _write_grid(args, spec, cfg, device, _ProjectedTime(args, cfg, spec, device))


class _ProjectedTime:
    """``run_grid``'s ``on_pace`` for an image grid: from the pace of its first meta-iterations, say how long
    this step and the whole grid will take on this device and how to go faster; stop above the limit."""

    def __init__(self, args, cfg: dict, spec, device: str):
        alphas, betas = config_mod.grid_values(cfg[args.dataset])
        self.name, self.device = args.experiment, device
        self.share = len(spec.cells()) * spec.iterations  # cell-iterations, at most (diverged cells end early)
        self.whole = len(alphas) * len(betas) * len(cfg[args.dataset].get("seeds") or [None]) * spec.iterations
        self.key = f"{args.dataset}.max_projected_hours"
        given = args.max_projected_hours
        self.limit = cfg[args.dataset]["max_projected_hours"] if given is None else given
        if given is not None:  # checked at parse time
            self.key = "--max-projected-hours"
        self.refusal = ""

    def __call__(self, rate: float) -> bool:
        share_h, whole_h = self.share / rate / 3600, self.whole / rate / 3600
        print(f"[{self.name}] {rate:.3g} cell-iterations/s on {self.device}: this step's {self.share:,} "
              f"cell-iterations take at most {_hours(share_h)}, the whole grid's {self.whole:,} {_hours(whole_h)} "
              f"on this device (cells that diverge end early). Quicker: the reduced grids (make reproduce), a GPU "
              f"(--profile profiles/local-gpu) or a cluster (--profile profiles/slurm); see docs/gpu-and-cluster.md."
              + ("" if self.limit is None else f" Limit: {_hours(self.limit)} ({self.key})."), flush=True)
        if self.limit is None or whole_h <= self.limit:
            return False
        self.refusal = (f"{self.key} = {self.limit:g}: stopped, the whole {self.name} grid is projected to take "
                        f"{_hours(whole_h)} on {self.device}; rerun with a higher limit to resume from where it "
                        f"stopped")
        return True


QUICKER = ("make reproduce (the reduced grids), a GPU (--profile profiles/local-gpu), a cluster (--profile "
           "profiles/slurm) or the paper-scale Fig. 4b a chunk at a time (maml-convergence paper-grid); see "
           "docs/gpu-and-cluster.md")


@command("project-image-grids", "before anything trains: how long the config's image grids take on this device, "
         "and a stop above max_projected_hours", arguments=[])
def cmd_project_image_grids(args):
    """The workflow's first step: a calibration of each image grid (seconds), the projected hours of each and of
    all, printed and written; over the config's ``max_projected_hours`` (null: no limit) it stops with one line."""
    cfg = _config(args)
    device = provenance.resolve_device(cfg["device"])
    start = time.perf_counter()
    table = experiments.projected_image_grids(cfg, device)
    total, limit = float(table.hours.sum()), cfg["max_projected_hours"]
    for row in table.itertuples():
        print(f"[projection] {row.dataset}: {row.cells} cells x {row.iterations} iterations at "
              f"{row.cell_iterations_per_second:.3g} cell-iterations/s on {device}: at most {_hours(row.hours)}")
    print(f"[projection] all image grids: at most {_hours(total)} on {device}"
          + ("" if limit is None else f" (limit {_hours(limit)}, max_projected_hours)"))
    provenance.write_json(args.out, {"device": device, "total_hours": total, "max_projected_hours": limit,
                                     "grids": table.to_dict("records"),
                                     "provenance": _record(args, cfg, device, time.perf_counter() - start)})
    if limit is not None and total > limit:
        Path(args.out).unlink()
        raise config_mod.ConfigError(
            f"max_projected_hours = {limit:g}: stopped before anything trained: the image grids are projected to "
            f"take {_hours(total)} on {device} (" + ", ".join(f"{r.dataset} {_hours(r.hours)}"
                                                             for r in table.itertuples())
            + f"); quicker: {QUICKER}; or set max_projected_hours: null to go ahead")


def _hours(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.0f} days"


@command("image-merge", "one grid table from the chunks of an image grid", provenance=True, data=True, arguments=[
    arg("--dataset", choices=sorted(experiments.IMAGE_DATASETS), required=True),
    arg("--chunks", nargs="+", required=True),
    arg("--chunk-provenance", nargs="*", default=[]),
])
def cmd_image_merge(args):
    cfg = _config(args)
    args.experiment = args.dataset
    frames = [pd.read_csv(p) for p in args.chunks]
    grid = experiments.merge_chunks(frames, cfg, args.dataset)
    device = provenance.resolve_device(cfg["device"])
    grid["initial_eval_loss"] = experiments.initial_eval_loss_column(cfg, args.dataset, grid, device,
                                                                     _image_data(args, cfg))
    parts = [json.loads(Path(p).read_text()) for p in args.chunk_provenance]
    provenance.atomic_write_text(args.out, grid.to_csv(index=False))
    prov = _record(args, cfg, "cpu", sum(p["wall_seconds"] for p in parts), cells=len(grid),
                   iterations=cfg[args.dataset]["iterations"], order=cfg[args.dataset]["order"],
                   diverged=int((grid.status == "diverged").sum()), chunks=parts)
    prov["device"] = ", ".join(sorted({p["device"] for p in parts})) or prov["device"]  # where the chunks ran
    provenance.write_json(args.provenance, prov)
    print(f"[{args.dataset}] merged {len(args.chunks)} chunks: {len(grid)} cells -> {args.out}")


@command("paper-grid",
         "compute the next chunks of the paper-scale Fig. 4b not yet kept, within a time budget, on whatever device "
         "there is", out=False, data=True, defaults=dict(dataset=paper_grid.DATASET), arguments=[
    arg("--budget-seconds", type=NONNEGATIVE,
        help="start no chunk after this long, and cut the running one short (it resumes on the next run); "
             "default: no limit"),
    arg("--max-chunks", type=COUNT, help="compute at most this many chunks (0: only check that the chunks kept "
                                         "agree with the code at hand)"),
    arg("--threads", type=POSITIVE_INT, help="CPU threads torch may use (default: torch's own choice); with `nice "
                                             "-n 19`, 1 leaves the other core to other work"),
    arg("--into", help="the folder the chunks are kept in (default: the config's paper_grid.folder)"),
    arg("--scratch", default="results/paper-grid", help="where a chunk's resume file is kept while it runs"),
])
def cmd_paper_grid(args):
    """The chunks of the paper-scale Fig. 4b not yet in the folder, one after the other, each kept the moment it
    is complete; a chunk the budget cuts short keeps its resume file for the next run."""
    cfg = _config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    deadline = time.monotonic() + args.budget_seconds if args.budget_seconds is not None else None
    folder, n = Path(args.into or cfg["paper_grid"]["folder"]), cfg["paper_grid"]["chunks"]
    dataset_path = _image_data(args, cfg)
    settings = paper_grid.settings(cfg, paper_grid.DATASET, n, data.file_hash(Path(dataset_path)))
    found = paper_grid.records(folder)
    remedy = (f"move the chunks in {folder} away to start this grid there, or compute with the settings and "
              "code they were computed with")
    paper_grid.check(found, settings, remedy)  # before the reference cells are computed, to say it at once
    device = provenance.resolve_device(cfg["device"])
    # float32 throughout on every GPU (no TF32), and cuDNN's deterministic algorithms: chunks from different
    # machines then differ by summation order alone (docs/gpu-and-cluster.md says how much that moves)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    start = time.perf_counter()
    expected = paper_grid.key(cfg, paper_grid.DATASET, n, settings["dataset_sha256"],
                              paper_grid.reference(cfg, device, dataset_path))
    print(f"[paper-grid] the reference cells computed in {time.perf_counter() - start:.0f} s on {device}")
    paper_grid.check(found, expected, remedy)
    todo = paper_grid.missing(found, n)[:args.max_chunks]
    agree = ", computed by code that agrees with this" if found else ""
    print(f"[paper-grid] {len(found)} of {n} chunks in {folder}{agree}; up to {len(todo)} more on {device}")
    for chunk in todo:
        if deadline is not None and time.monotonic() >= deadline:
            print(f"[paper-grid] the budget is spent before chunk {chunk}")
            break
        if not _paper_chunk(args, cfg, chunk, expected, device, dataset_path, deadline):
            break


def _paper_chunk(args, cfg: dict, chunk: int, expected: dict, device: str, dataset_path: str, deadline) -> bool:
    """Compute one chunk and keep it; False when the deadline cut it short (its resume file is kept)."""
    folder, n = Path(args.into or cfg["paper_grid"]["folder"]), expected["chunks"]
    args.experiment = f"paper-grid-chunk{chunk}of{n}"
    spec = experiments.image_spec(cfg, paper_grid.DATASET, device, chunk, n, dataset_path)
    resume = Path(args.scratch) / f"chunk-{chunk:03d}.ckpt"
    start, run_info = time.perf_counter(), {}
    rows = run_grid(spec, checkpoint=resume, checkpoint_every=cfg["checkpoint_every"], deadline=deadline,
                    run_info=run_info)
    if rows is None:
        print(f"[paper-grid] chunk {chunk} cut short by the budget; the next run resumes it from {resume}")
        return False
    frame = experiments.grid_frame(rows)
    start_loss = experiments.initial_eval_losses(cfg, paper_grid.DATASET, sorted(frame.alpha.unique()), device,
                                                 dataset_path)
    frame["initial_eval_loss"] = frame.alpha.map(start_loss)
    wall = time.perf_counter() - start
    paper_grid.save(folder, chunk, frame, {
        "key": expected, "cells": len(frame), "diverged": int((frame.status == "diverged").sum()),
        "provenance": _record(args, cfg, device, wall, run_info, fingerprint=spec.fingerprint(), tf32=False,
                              cudnn_deterministic=True, threads=torch.get_num_threads())})
    resume.unlink(missing_ok=True)
    print(f"[paper-grid] chunk {chunk} of {n}: {len(frame)} cells in {wall:.0f} s -> "
          f"{paper_grid.paths(folder, chunk)[0]}", flush=True)
    return True


@command("paper-grid-merge", "the paper-scale Fig. 4b grid from the chunks kept so far", provenance=True, arguments=[
    arg("--folder", help="the folder of chunks (default: the config's paper_grid.folder)"),
    arg("--dataset-record", required=True,
        help="the record prepare-data wrote of the Omniglot data; every chunk must have been computed on that dataset"),
])
def cmd_paper_grid_merge(args):
    """The paper-scale Fig. 4b grid from the chunks present (all, or some: ``chunks_done`` says how many)."""
    cfg = _config(args)
    folder, n = Path(args.folder or cfg["paper_grid"]["folder"]), cfg["paper_grid"]["chunks"]
    expected = paper_grid.settings(cfg, paper_grid.DATASET, n,
                                   json.loads(Path(args.dataset_record).read_text())["sha256"])
    grid, found = paper_grid.load(folder, expected)
    grid["cell"] = range(len(grid))
    provenance.atomic_write_text(args.out, grid.to_csv(index=False))
    parts = [found[i]["provenance"] for i in sorted(found)]
    prov = _record(args, cfg, "cpu", sum(p["wall_seconds"] for p in parts), cells=len(grid),
                   cells_in_grid=len(paper_grid.all_pairs(cfg[paper_grid.DATASET])), chunks=n,
                   chunks_done=sorted(found), chunk_seconds=[p["wall_seconds"] for p in parts],
                   iterations=cfg[paper_grid.DATASET]["iterations"], order=cfg[paper_grid.DATASET]["order"],
                   diverged=int((grid.status == "diverged").sum()) if len(grid) else 0,
                   chunk_devices=sorted({p["device"] for p in parts}),
                   chunk_commits=sorted({str(p.get("git_commit")) for p in parts}))
    prov["device"] = ", ".join(prov["chunk_devices"]) or "none yet"
    provenance.write_json(args.provenance, prov)
    print(f"[paper-grid] {len(found)} of {n} chunks, {len(grid)} cells -> {args.out}")


@command("claims", "verdicts on the paper's claims", out=False, arguments=[
    arg("--linear-reference", required=True, help="the Hessian spectra of the linear-regression draws"),
    arg("--linear-grids", nargs="+", required=True, help="Fig. 3 grids, one per MAML order (claims C2-*)"),
    arg("--linear-audit", required=True, help="the bisected boundary (claims A-paper-*, A-exact-*, A-alpha_c-*)"),
    arg("--linear-audit-n2", help="the bisected boundary with two inner steps (claims A-*-n2-*)"),
    arg("--sinusoid-grid", required=True, help="Fig. 4a grid (claim C3)"),
    arg("--sinusoid-reference", required=True, help="the Hessian at a meta-trained sinusoid point (A-sinusoid)"),
    arg("--sinusoid-local-bound", help="Fig. 4a's local prediction (claim A-local-sinusoid)"),
    arg("--fig1", help="Fig. 1 gradient table (claim C1)"),
    arg("--fig2", help="Fig. 2 curves (their numbers are kept beside the claims)"),
    arg("--fig5", help="Fig. 5 curvature table (claim C6)"),
    arg("--fig7", help="Fig. 7 sharpness over the sinusoid grid (claim E1)"),
    arg("--omniglot", help="Fig. 4b grid (claims C4, C7-omniglot)"),
    arg("--miniimagenet", help="Fig. 4c grid (claims C5, C7-miniimagenet)"),
    arg("--omniglot-paper",
        help="the paper-scale Fig. 4b grid, complete or not (claims C4-omniglot-paper, C7-omniglot-paper)"),
    arg("--guideline", nargs="*", default=[],
        help="suggest's reports and their checks, in pairs (claims G1-<problem>, G2-<problem>)"),
    arg("--guideline-exact", help="suggest's cells on linear regression against the exact bound (claim G-exact)"),
    arg("--out-json", required=True),
    arg("--out-md", required=True),
])
def cmd_claims(args):
    """Every flag but the outputs is an input of ``claims.evaluate``, by the same name."""
    from . import claims
    cfg = _config(args)
    if len(args.guideline) % 2:
        raise config_mod.ConfigError("--guideline takes pairs: a suggestion report, then its check")
    pairs = zip(args.guideline[::2], args.guideline[1::2])
    inputs = {name: getattr(args, name) for name in claims.INPUTS}
    inputs["guideline"] = {json.loads(Path(s).read_text())["problem"]: (s, c) for s, c in pairs}
    result = claims.evaluate(cfg, inputs)
    provenance.write_json(args.out_json, result)
    provenance.atomic_write_text(args.out_md, claims.to_markdown(result))
    for row in result["claims"]:
        print(f"{row['id']:<10} {row['verdict']:<13} {row['summary']}")


def _read_claims(path) -> dict:
    """A claims.json, or one line naming it when it is missing or not one."""
    try:
        result = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise config_mod.ConfigError(f"{path}: no such file; the workflow's claims step writes it "
                                     "(snakemake --cores all)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise config_mod.ConfigError(f"{path}: not a claims file (not JSON: {e})") from None
    if not isinstance(result, dict) or not isinstance(result.get("claims"), list):
        raise config_mod.ConfigError(f"{path}: not a claims file (no list of claims)")
    return result


@command("update-docs", "write the README's verdict table and every marked number of the pages from claims.json",
         out=False, arguments=[
    arg("--claims", default="figures/claims.json", help="the claims the pages quote (beside the figures' source "
        "data, data/<figure>/)"),
    arg("--pages", nargs="+", default=["README.md", "docs/results.md", "docs/running.md", "docs/gpu-and-cluster.md"],
        help="the pages to write"),
])
def cmd_update_docs(args):
    """The README's verdict table (between its markers) and every ``<!-- n: name -->`` number of the pages."""
    from . import claims
    from .claims import numbers
    result = _read_claims(args.claims)
    found = numbers.Data(result, Path(args.claims).parent)
    for page in map(Path, args.pages):
        text = page.read_text()
        if claims.README_BEGIN in text:
            text = claims.with_verdict_table(text, result)
        try:
            text = numbers.with_numbers(text, found)
        except KeyError as e:
            raise config_mod.ConfigError(f"{page}: {e.args[0]}") from None
        provenance.atomic_write_text(page, text)
        print(f"[update-docs] {page}: {len(numbers.MARK.findall(text))} numbers")


@command("reproduction", "compare a run's claims and source data with a committed reference: did it reproduce?",
         out=False, arguments=[
    arg("--claims", required=True, help="the claims.json this run computed"),
    arg("--figures", default="figures", help="the folder this run wrote the figures' source data to (data/<figure>)"),
    arg("--out-json", required=True),
    arg("--out-md", required=True),
])
def cmd_reproduction(args):
    """The comparison (``reproduction``): a table printed and written, its last line the sum; exit 1 naming the
    claims whose verdict differs."""
    from . import reproduction
    cfg = _config(args)
    reference = reproduction.Reference.of(config_mod.resolve_path(cfg["reproduction"]["reference"]),
                                          Path(args.figures))
    result = reproduction.reproduction(args.claims, Path(args.figures), reference)
    text = reproduction.to_markdown(result)
    provenance.write_json(args.out_json, result)
    provenance.atomic_write_text(args.out_md, text)
    print(text, end="")
    if result["differs"]:
        raise ReproductionDiffers(f"not reproduced: the verdict of {', '.join(result['differs'])} differs from "
                                  f"{reference} ({args.out_md})")


@command("sinusoid-local-bound",
         "Fig. 4a's local prediction: 2/lambda_max of the MAML objective's Hessian at each seed's initial parameters, "
         "per alpha", provenance=True)
def cmd_sinusoid_local_bound(args):
    _write_cpu_table(args, experiments.sinusoid_local_bound)


@command("fig6-runs", "Fig. 6: sharpness over training in cells on both sides of the Fig. 4a boundary", provenance=True,
         checkpoint=True, arguments=[
    arg("--sinusoid-grid", required=True),
])
def cmd_fig6_runs(args):
    grid = pd.read_csv(args.sinusoid_grid)
    _write_trained_table(args, lambda cfg, device, **run: experiments.fig6_runs(cfg, device, grid, **run))


@command("fig7-sharpness", "Fig. 7: lambda_max beta / 2 at the final parameters of every stable cell of the Fig. 4a "
         "grid (one seed)", provenance=True, checkpoint=True, arguments=[
    arg("--sinusoid-grid", required=True),
    arg("--final-params", required=True, help="the sinusoid-grid step's --final-params file"),
])
def cmd_fig7_sharpness(args):
    grid = pd.read_csv(args.sinusoid_grid)
    final = _load_torch(args.final_params)
    _write_trained_table(args, lambda cfg, device, **run: experiments.fig7_sharpness(cfg, device, grid, final, **run),
                         lambda cfg: {"iterations": cfg["sinusoid"]["iterations"],
                                      "lanczos_iterations": cfg["sharpness"]["lanczos_iterations"]})


@command("verdict-table", "the claims' verdict table (the README's), from claims.json", out=False, arguments=[
    arg("--claims", default="figures/claims.json"),
    arg("--update", help="rewrite the table's block in this file (README.md) instead of printing it"),
])
def cmd_verdict_table(args):
    from . import claims
    result = _read_claims(args.claims)
    if not claims.has_verdict_table(result):
        raise config_mod.ConfigError(f"{args.claims}: written by an older version (no short claim or why); "
                                     "rerun the workflow's claims step")
    if not args.update:
        print(claims.verdict_table(result, "figures/CLAIMS.md"))
        return
    try:
        text = claims.with_verdict_table(Path(args.update).read_text(), result)
    except ValueError as e:
        raise config_mod.ConfigError(f"{args.update}: {e}") from None
    provenance.atomic_write_text(args.update, text)


@command("source-data", "keep the results a figure draws on beside it, as its source data", out=False, arguments=[
    arg("--figure", required=True),
    arg("--inputs", nargs="+", required=True,
        help="name=path of each result file; name_provenance=path for the provenance of the step behind table name"),
    arg("--out-dir", required=True),
])
def cmd_source_data(args):
    pairs = [item.partition("=") for item in args.inputs]
    if any(not name or not path for name, _, path in pairs):
        raise config_mod.ConfigError(f"--inputs: expected name=path pairs, got {' '.join(args.inputs)}")
    record = source_data.write(args.figure, {name: path for name, _, path in pairs}, args.out_dir)
    print(f"[source-data] {args.figure}: {len(record['files'])} files -> {args.out_dir}")


def _load_object(spec: str, option: str):
    """``pkg.module:name`` -> that object, importable from the current directory too."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise config_mod.ConfigError(f"{option} {spec}: expected pkg.module:name")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - the user's module: report whatever stops its import in one line
        raise config_mod.ConfigError(f"{option} {spec}: cannot import {module_name}: {type(e).__name__}: {e}") from None
    finally:
        sys.path.remove(os.getcwd())
    if not hasattr(module, name):
        raise config_mod.ConfigError(f"{option} {spec}: {module_name} has no {name}")
    return getattr(module, name)


@command("suggest",
         "the (alpha, beta) to use, for a model of one's own or a problem of the paper: the probe's cell that trains "
         "best with a margin from instability (default), or the paper's guideline (--rule paper)", out=False,
         checkpoint=True, data=True, arguments=[
    arg("--problem", choices=experiments.GUIDELINE_PROBLEMS,
        help="one of the paper's problems, with its settings from the config"),
    arg("--model", help="pkg.module:factory, a function that returns the nn.Module (or the module)"),
    arg("--tasks", help="pkg.module:sampler: a function i -> the i-th meta-batch (xs, ys, xq, yq), each with the "
        "task axis first and a task's points second, the same batch for the same i (random access; the probe "
        "evaluates on i = 2**20 - 1), or a list of meta-batches (the first held apart for evaluation); "
        "guideline.tasks_from makes one from a learn2learn TaskDataset, a meta-dataloader or an (x, y) dataset"),
    arg("--loss", default="auto", choices=["auto", "cross_entropy", "mse"],
        help="auto: cross-entropy for integer labels, else mean squared error"),
    arg("--inner-steps", type=POSITIVE_INT, help="inner steps (default: the problem's, or 1)"),
    arg("--order", choices=["second", "first"], help="MAML order (default: the problem's, or second)"),
    arg("--budget-seconds", type=POSITIVE,
        help="time budget: stops the probe early, never changes it (default: the config's guideline section, or "
        f"{guideline.BUDGET_SECONDS:g})"),
    arg("--iterations", type=POSITIVE_INT,
        help=f"meta-iterations per probe cell (default: the config's, else {guideline.ITERATIONS})"),
    arg("--streams", type=POSITIVE_INT,
        help=f"task streams per probe cell (default: the config's, else {guideline.STREAMS})"),
    arg("--rule", choices=guideline.RULES, default="recommended",
        help="the answer: the cell that trains best with a margin (recommended), or the paper's guideline (paper)"),
    arg("--device", choices=["auto", "cpu", "cuda"], help="default: the config's"),
    arg("--seed", type=int, default=0,
        help="Lanczos start vectors (--model: the model's own parameters are the start)"),
    arg("--out", help="the whole report as JSON: recommendation, curvature, every probe cell"),
    arg("--figure", help="a figure of the probe (.png or .pdf)"),
])
def cmd_suggest(args):
    """The guideline tool: on a problem of the paper (``--problem``, settings from the config) or on a model
    and task sampler of one's own (``--model``, ``--tasks``). Progress on stderr, one JSON line last."""
    if (args.problem is None) == (args.model is None) or (args.model is None) != (args.tasks is None):
        raise config_mod.ConfigError("give --problem, or --model and --tasks")
    start = time.perf_counter()
    if args.problem:
        cfg = _config(args)
        device = provenance.resolve_device(args.device or cfg["device"])
        settings = cfg["guideline"].get(args.problem, {})
        budget = _given(args.budget_seconds, settings.get("budget_seconds"), guideline.BUDGET_SECONDS)
        data_path = _image_data(args, cfg) if args.problem in experiments.IMAGE_DATASETS else None
        result = experiments.suggest_on(cfg, args.problem, device, budget, data_path,
                                        _given(args.iterations, settings.get("iterations"), guideline.ITERATIONS),
                                        _given(args.streams, settings.get("streams"), guideline.STREAMS),
                                        rule=args.rule, checkpoint=_ckpt(args))
    else:
        cfg, args.workflow_config = {}, {}
        factory, sampler = _load_object(args.model, "--model"), _load_object(args.tasks, "--tasks")
        model = factory if isinstance(factory, torch.nn.Module) else factory()
        device = provenance.resolve_device(args.device or "auto")
        result = guideline.suggest(model, sampler, loss=args.loss, inner_steps=_given(args.inner_steps, 1),
                                   order=args.order or "second",
                                   budget_seconds=_given(args.budget_seconds, guideline.BUDGET_SECONDS),
                                   device=device, seed=args.seed,
                                   iterations=_given(args.iterations, guideline.ITERATIONS),
                                   streams=_given(args.streams, guideline.STREAMS), rule=args.rule,
                                   checkpoint=_ckpt(args))
    report = json.loads(result.to_json())
    report["problem"] = args.problem or f"{args.model} {args.tasks}"
    report["provenance"] = _record(args, cfg, device, time.perf_counter() - start)
    if args.out:
        provenance.atomic_write_text(args.out, json.dumps(report, indent=1, default=str) + "\n")
    if args.figure:
        from . import plots
        plots.save_probe_figure(report, args.figure)
    checkpoint.discard(_ckpt(args))
    print(json.dumps(result.summary()))
    if result.recommended is None and result.guideline is None:
        if not args.problem:
            raise guideline.NoRecommendation("; ".join(result.notes))
        # in the workflow the report records it, and claims G1 and G2 read "no cell": a result, not a failure
        print("maml-convergence: suggest found neither cell: " + "; ".join(result.notes), file=sys.stderr)
        return
    if result.alpha is None:  # the report holds the other cell: a result to judge, not a failure of the step
        cell = "recommended" if result.rule == "recommended" else "guideline"
        print(f"maml-convergence: no {cell} cell: " + "; ".join(result.notes), file=sys.stderr)


@command("suggest-exact", "suggest on linear regression, whose stable region is known exactly: both cells of every "
         "data draw, order and number of inner steps against the exact bound (claim G-exact)", provenance=True,
         checkpoint=True)
def cmd_suggest_exact(args):
    frame = _write_trained_table(args, experiments.suggest_exact)
    print(f"[suggest-exact] {frame[['seed', 'order', 'inner_steps']].drop_duplicates().shape[0]} runs of suggest -> "
          f"{args.out}")


@command("guideline-check", "train suggest's recommended and guideline cells as cells of their problem's grid",
         provenance=True, checkpoint=True, data=True, arguments=[
    arg("--problem", choices=experiments.GUIDELINE_PROBLEMS, required=True),
    arg("--suggestion", required=True, help="the report suggest wrote (--out)"),
])
def cmd_guideline_check(args):
    suggestion = json.loads(Path(args.suggestion).read_text())
    cells = {name: (suggestion[name]["alpha"], suggestion[name]["beta"]) for name in guideline.CELLS
             if suggestion.get(name) is not None}

    def check(cfg, device, **run):
        if not cells:  # nothing to train: the table is empty, and G1 and G2 read the report's missing cells
            return pd.DataFrame(columns=["alpha", "beta", "status", "final_loss", "suggested"])
        data_path = _image_data(args, cfg) if args.problem in experiments.IMAGE_DATASETS else None
        return experiments.guideline_check(cfg, args.problem, device, cells, data_path, **run)

    frame = _write_trained_table(args, check, lambda cfg: {"cells": cells})
    if frame.empty:
        print(f"[guideline] {args.problem}: {args.suggestion} holds neither cell; nothing to train")
    for row in frame.itertuples():
        print(f"[guideline] {args.problem}: the {row.suggested} cell, alpha {row.alpha:.4g}, beta {row.beta:.4g}, "
              f"trained as a grid cell: {row.status}, final loss {row.final_loss:.4g}")


def _given(*values):
    """The first value that was given (not None): an option, then a setting, then the default."""
    return next(v for v in values if v is not None)


def _ckpt(args):
    return Path(args.checkpoint) if args.checkpoint else None


class _Parser(argparse.ArgumentParser):
    """A command line mistake is one line naming the option, and exit 2 (the usage is in --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message}\n")


# The help of options several commands share, where the command does not give its own.
SHARED_HELP = {
    "--out": "the file this command writes its result to", "--provenance": "its provenance record (JSON)",
    "--out-json": "the result as JSON", "--out-md": "the result as a markdown table",
    "--dataset": "the image dataset", "--order": "MAML order", "--problem": "the paper's problem",
    "--claims": "the claims.json to read", "--sinusoid-grid": "the Fig. 4a grid table (sinusoid-grid's --out)",
    "--linear-reference": "the linear-regression reference (linear-reference's --out)",
    "--snapshots": "the parameter snapshots fig5-train wrote", "--chunks": "the chunk tables to merge",
    "--chunk-provenance": "the chunks' provenance records", "--figure": "the figure whose source data this is",
    "--out-dir": "the figure's source-data folder (figures/data/<figure>)",
}

# What a user runs; the other commands are the workflow's steps (each also runs alone).
USER_COMMANDS = ("suggest", "paper-grid", "verdict-table", "update-docs", "reproduction", "project-image-grids")


def build_parser() -> argparse.ArgumentParser:
    steps = [n for n in COMMANDS if n not in USER_COMMANDS]
    p = _Parser(prog="maml-convergence", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="the workflow's steps (Snakemake runs them; each also runs alone, "
                       "`maml-convergence STEP --help`):\n  " + "\n  ".join(
                           f"{n:<22} {COMMANDS[n][1]}" for n in steps))
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    order = lambda kv: USER_COMMANDS.index(kv[0]) if kv[0] in USER_COMMANDS else len(USER_COMMANDS)
    for name, (func, help, arguments, common, defaults) in sorted(COMMANDS.items(), key=order):
        listed = {"help": help} if name in USER_COMMANDS else {}  # the steps are listed below, in the epilog
        s = sub.add_parser(name, description=help, **listed)
        g = s.add_mutually_exclusive_group()
        g.add_argument("--configfile", nargs="*", default=[],
                       help="YAML files merged over config/config.yaml, in order")
        g.add_argument("--config-json", help="the sections of the configuration this step reads, as JSON "
                                             "(what the Snakemake rules pass)")
        if common["out"]:
            s.add_argument("--out", required=True, help=SHARED_HELP["--out"])
        if common["provenance"]:
            s.add_argument("--provenance", required=True, help=SHARED_HELP["--provenance"])
        if common["checkpoint"]:
            s.add_argument("--checkpoint", help="resume file, kept while the run is incomplete")
        if common["data"]:  # a step that reads a prepared image dataset
            s.add_argument("--data", help="the prepared dataset (default: under the config's data.root)")
            s.add_argument("--dataset-record", help="the record prepare-data wrote; the dataset must still match it")
        for flags, options in arguments:
            s.add_argument(*flags, **{"help": SHARED_HELP.get(flags[0]), **options})
        # the module's function by name at parse time, so a replaced cmd_* (a test's stand-in) is what runs
        s.set_defaults(func=globals()[func.__name__], experiment=name, **defaults)
    return p


def _terminate(signum, frame):
    raise KeyboardInterrupt  # Snakemake and cluster schedulers stop jobs with SIGTERM


class ReproductionDiffers(RuntimeError):
    """A run's verdicts differ from the committed reference's (the message names the claims)."""


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args.func(args)
    except (config_mod.ConfigError, data.DataError, ProtocolError) as e:
        print(f"maml-convergence: {e}", file=sys.stderr)
        return 2
    except guideline.NoRecommendation as e:
        print(f"maml-convergence: no recommendation: {e}", file=sys.stderr)
        return 1
    except ReproductionDiffers as e:
        print(f"maml-convergence: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, RuntimeError) as e:
        # An interrupt that lands inside one of torch's TorchScript kernels (a Hessian-vector product's
        # backward, say) comes out as a RuntimeError: it is still an interruption.
        if isinstance(e, RuntimeError) and "KeyboardInterrupt" not in str(e):
            raise
        kept = getattr(args, "checkpoint", None) and Path(args.checkpoint).exists()
        print("maml-convergence: interrupted; " + (f"rerun the same command to resume from {args.checkpoint}" if kept
              else "nothing was kept to resume from" + (" (give --checkpoint FILE to keep it)"
                                                        if hasattr(args, "checkpoint") else "")), file=sys.stderr)
        return 130
    return 0

