"""The workflow's steps, one command each (Snakemake runs them; each also runs alone): what each computes and
writes. The configuration, device, clock, resume file and provenance are the ``Step``'s; the computations are
``experiments``' and ``claims``'."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from . import config as config_mod
from . import data, experiments, guideline, paper_grid, problems, provenance, source_data
from .grid import run_grid
from .projection import ProjectedTime
from .step import COUNT, POSITIVE, POSITIVE_INT, Step, arg, command, image_data, load_torch, mirror, save_torch

INNER_STEPS = arg("--inner-steps", type=int, choices=[1, 2, 3], default=1,
                  help="inner steps: 1 as in the paper's Fig. 3, 2 for fig3-n2")


def write_grid(step: Step, spec, on_pace=None, final_params=None) -> None:
    """The grid's table and provenance; with ``final_params`` (a path) also the final parameters of its
    stable cells there (``experiments.sinusoid_final_params``), written before the table."""
    step.clock()
    result = run_grid(spec, checkpoint=step.checkpoint, checkpoint_every=step.cfg["checkpoint_every"],
                      on_pace=on_pace, keep_params=final_params is not None)
    if result.stopped:  # on_pace stopped it: the projected time is over the limit
        raise config_mod.ConfigError(on_pace.refusal)
    step.run_info.update(result.run_info)
    rows = result.rows
    wall = step.seconds
    if final_params is not None:
        save_torch(final_params, experiments.sinusoid_final_params(spec, rows))
    frame = experiments.grid_frame(rows)
    diverged = int((frame.status == "diverged").sum())
    prov = step.write_table(frame, wall, cells=len(rows), iterations=spec.iterations, order=spec.order,
                            seeds=spec.seeds, inner_steps=spec.inner_steps, fingerprint=spec.fingerprint(),
                            diverged=diverged)
    print(f"[{step.name}] {len(rows)} cells x {spec.iterations} iterations in {prov['wall_seconds']:.1f} s "
          f"({diverged} diverged) -> {step.args.out}")


def _trained_table(args, compute, extra=lambda cfg: {}) -> pd.DataFrame:
    """The table of a resumable step, ``compute(cfg, device, checkpoint=, run_info=)``, with its provenance
    (plus ``extra(cfg)``)."""
    step = Step(args)
    table = compute(step.cfg, step.device, checkpoint=step.checkpoint, run_info=step.run_info)
    step.write_table(table, **extra(step.cfg))
    return table


@command("fig2-curves", "beta_c(alpha) curves of Fig. 2", provenance=True)
def cmd_fig2_curves(args):
    step = Step(args, device="cpu")
    step.write_table(experiments.fig2_curves(step.cfg))


@command("sinusoid-local-bound",
         "Fig. 4a's local prediction: 2/lambda_max of the MAML objective's Hessian at each seed's initial parameters, "
         "per alpha", provenance=True)
def cmd_sinusoid_local_bound(args):
    step = Step(args, device="cpu")
    step.write_table(experiments.sinusoid_local_bound(step.cfg))


@command("linear-reference", "Hessian spectrum at the trained reference point")
def cmd_linear_reference(args):
    step = Step(args)
    step.write_json(experiments.linear_reference(step.cfg, step.device))


@command("sinusoid-reference", "Hessian spectrum at a meta-trained sinusoid point")
def cmd_sinusoid_reference(args):
    step = Step(args)
    step.write_json(experiments.sinusoid_reference(step.cfg, step.device))


@command("linear-grid", "Fig. 3 grid", provenance=True, checkpoint=True, arguments=[
    arg("--order", choices=["second", "first"], required=True), INNER_STEPS,
])
def cmd_linear_grid(args):
    args.experiment = f"linear-{args.order}" + (f"-n{args.inner_steps}" if args.inner_steps > 1 else "")
    step = Step(args)
    write_grid(step, experiments.linear_spec(step.cfg, args.order, step.device, inner_steps=args.inner_steps))


@command("sinusoid-grid", "Fig. 4a grid", provenance=True, checkpoint=True, arguments=[
    arg("--final-params", help="also keep the final parameters of every stable cell here (what Fig. 7 reads)"),
])
def cmd_sinusoid_grid(args):
    args.experiment = problems.SINUSOID
    step = Step(args)
    write_grid(step, experiments.sinusoid_grid_spec(step.cfg, step.device), final_params=args.final_params)


@command("linear-audit", "bisected stability boundary on linear regression", provenance=True, arguments=[
    arg("--linear-reference", required=True), INNER_STEPS,
])
def cmd_linear_audit(args):
    step = Step(args)
    reference = json.loads(Path(args.linear_reference).read_text())
    step.clock()
    table = experiments.linear_audit(step.cfg, step.device, reference, inner_steps=args.inner_steps)
    step.write_table(table, eigenvalues={d["seed"]: d["eigenvalues"] for d in reference["draws"]},
                     inner_steps=args.inner_steps)


@command("fig1-runs", "Fig. 1 training runs (every seed) and their task-gradient statistics", provenance=True,
         checkpoint=True)
def cmd_fig1_runs(args):
    _trained_table(args, experiments.fig1_runs,
                   lambda cfg: {"seeds": cfg["fig1"]["seeds"], "iterations": cfg["fig1"]["iterations"]})


@command("fig5-train", "Appendix B training run, with parameter snapshots", checkpoint=True)
def cmd_fig5_train(args):
    step = Step(args)
    out = experiments.fig5_train(step.cfg, step.device, checkpoint=step.checkpoint, run_info=step.run_info)
    out["provenance"] = step.record()
    save_torch(args.out, out)
    step.done()


@command("fig5-analysis", "exact T g and H^2 at every snapshot (Fig. 5)", provenance=True, checkpoint=True, arguments=[
    arg("--snapshots", required=True),
])
def cmd_fig5_analysis(args):
    step = Step(args, device="cpu")
    saved = load_torch(args.snapshots)
    step.clock()
    rows = experiments.fig5_analysis(step.cfg, saved["snapshots"], saved["fingerprint"], checkpoint=step.checkpoint,
                                     run_info=step.run_info)
    step.write_table(pd.DataFrame(rows), train=saved["provenance"], iterations=step.cfg["fig5"]["iterations"])


@command("fig6-runs", "Fig. 6: sharpness over training in cells on both sides of the Fig. 4a boundary", provenance=True,
         checkpoint=True, arguments=[
    arg("--sinusoid-grid", required=True),
])
def cmd_fig6_runs(args):
    grid = pd.read_csv(args.sinusoid_grid)
    _trained_table(args, lambda cfg, device, **run: experiments.fig6_runs(cfg, device, grid, **run))


@command("fig7-sharpness", "Fig. 7: lambda_max beta / 2 at the final parameters of every stable cell of the Fig. 4a "
         "grid (one seed)", provenance=True, checkpoint=True, arguments=[
    arg("--sinusoid-grid", required=True),
    arg("--final-params", required=True, help="the sinusoid-grid step's --final-params file"),
])
def cmd_fig7_sharpness(args):
    grid = pd.read_csv(args.sinusoid_grid)
    final = load_torch(args.final_params)
    _trained_table(args, lambda cfg, device, **run: experiments.fig7_sharpness(cfg, device, grid, final, **run),
                   lambda cfg: {"iterations": cfg["sinusoid"]["iterations"],
                                "lanczos_iterations": cfg["sharpness"]["lanczos_iterations"]})


@command("prepare-data",
         "fetch and prepare a dataset once (shared by every run); write the record of what this run uses", arguments=[
    arg("--dataset", choices=sorted(problems.FEW_SHOT), required=True),
])
def cmd_prepare_data(args):
    step = Step(args, device="cpu")
    root = config_mod.resolve_path(step.cfg["data"]["root"])
    record = data.ensure_prepared(args.dataset, root, mirror(step.cfg))
    path = data.prepared_path(root, args.dataset)
    print(f"[data] {'reusing' if record['reused'] else 'prepared'} {args.dataset}: {path} (sha256 {record['sha256']})")
    provenance.write_json(args.out, {**record, "provenance": step.record()})


@command("image-grid", "Fig. 4b/4c grid, or one chunk of it", provenance=True, checkpoint=True, data=True, arguments=[
    arg("--dataset", choices=sorted(problems.FEW_SHOT), required=True),
    arg("--chunk", type=COUNT, help="this chunk's index, 0-based (with --chunks)"),
    arg("--chunks", type=POSITIVE_INT, help="how many chunks the grid is split into"),
    arg("--max-projected-hours", type=POSITIVE, help="stop (keeping the resume file) when the whole grid is "
        "projected to take longer on this device (default: the dataset's max_projected_hours)"),
])
def cmd_image_grid(args):
    if (args.chunk is None) != (args.chunks is None) or (args.chunks and not 0 <= args.chunk < args.chunks):
        raise config_mod.ConfigError(f"--chunk {args.chunk} --chunks {args.chunks}: give both, with "
                                     f"0 <= chunk < chunks")
    args.experiment = f"{args.dataset}" + (f"-chunk{args.chunk}of{args.chunks}" if args.chunks else "")
    step = Step(args)
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convolutions
    spec = experiments.image_spec(step.cfg, args.dataset, step.device, args.chunk, args.chunks, step.image_data())
    section = step.cfg[args.dataset]
    limit, key = ((section["max_projected_hours"], f"{args.dataset}.max_projected_hours")
                  if args.max_projected_hours is None else (args.max_projected_hours, "--max-projected-hours"))
    write_grid(step, spec, ProjectedTime(step.name, section, spec, step.device, limit, key))


@command("image-merge", "one grid table from the chunks of an image grid", provenance=True, data=True, arguments=[
    arg("--dataset", choices=sorted(problems.FEW_SHOT), required=True),
    arg("--chunks", nargs="+", required=True),
    arg("--chunk-provenance", nargs="*", default=[]),
])
def cmd_image_merge(args):
    args.experiment = args.dataset
    step = Step(args)
    grid = experiments.merge_chunks([pd.read_csv(p) for p in args.chunks], step.cfg, args.dataset)
    grid["initial_eval_loss"] = experiments.initial_eval_loss_column(step.cfg, args.dataset, grid, step.device,
                                                                     step.image_data())
    parts = [json.loads(Path(p).read_text()) for p in args.chunk_provenance]
    provenance.atomic_write_text(args.out, grid.to_csv(index=False))
    prov = step.record(sum(p["wall_seconds"] for p in parts), device="cpu", cells=len(grid),
                       iterations=step.cfg[args.dataset]["iterations"], order=step.cfg[args.dataset]["order"],
                       diverged=int((grid.status == "diverged").sum()), chunks=parts)
    prov["device"] = ", ".join(sorted({p["device"] for p in parts})) or prov["device"]  # where the chunks ran
    provenance.write_json(args.provenance, prov)
    print(f"[{args.dataset}] merged {len(args.chunks)} chunks: {len(grid)} cells -> {args.out}")


@command("paper-grid-merge", "the paper-scale Fig. 4b grid from the chunks kept so far", provenance=True, arguments=[
    arg("--folder", help="the folder of chunks (default: the config's paper_grid.folder)"),
    arg("--dataset-record", required=True,
        help="the record prepare-data wrote of the Omniglot data; every chunk must have been computed on that dataset"),
])
def cmd_paper_grid_merge(args):
    """The paper-scale Fig. 4b grid from the chunks present (all, or some: ``chunks_done`` says how many)."""
    step = Step(args, device="cpu")
    cfg, section = step.cfg, step.cfg[paper_grid.DATASET]
    folder, n = Path(args.folder or cfg["paper_grid"]["folder"]), cfg["paper_grid"]["chunks"]
    expected = paper_grid.settings(cfg, paper_grid.DATASET, n,
                                   json.loads(Path(args.dataset_record).read_text())["sha256"])
    grid, found = paper_grid.load(folder, expected)
    grid["cell"] = range(len(grid))
    parts = [found[i]["provenance"] for i in sorted(found)]
    provenance.atomic_write_text(args.out, grid.to_csv(index=False))
    prov = step.record(sum(p["wall_seconds"] for p in parts), cells=len(grid),
                       cells_in_grid=len(paper_grid.all_pairs(section)), chunks=n, chunks_done=sorted(found),
                       chunk_seconds=[p["wall_seconds"] for p in parts], iterations=section["iterations"],
                       order=section["order"], diverged=int((grid.status == "diverged").sum()) if len(grid) else 0,
                       chunk_devices=sorted({p["device"] for p in parts}),
                       chunk_commits=sorted({str(p.get("git_commit")) for p in parts}))
    prov["device"] = ", ".join(prov["chunk_devices"]) or "none yet"
    provenance.write_json(args.provenance, prov)
    print(f"[paper-grid] {len(found)} of {n} chunks, {len(grid)} cells -> {args.out}")


@command("suggest-exact", "suggest on linear regression, whose stable region is known exactly: both cells of every "
         "data draw, order and number of inner steps against the exact bound (claim G-exact)", provenance=True,
         checkpoint=True)
def cmd_suggest_exact(args):
    frame = _trained_table(args, experiments.suggest_exact)
    print(f"[suggest-exact] {frame[['seed', 'order', 'inner_steps']].drop_duplicates().shape[0]} runs of suggest -> "
          f"{args.out}")


@command("guideline-check", "train suggest's recommended and guideline cells as cells of their problem's grid",
         provenance=True, checkpoint=True, data=True, arguments=[
    arg("--problem", choices=problems.NAMES, required=True),
    arg("--suggestion", required=True, help="the report suggest wrote (--out)"),
])
def cmd_guideline_check(args):
    suggestion = json.loads(Path(args.suggestion).read_text())
    cells = {name: (suggestion[name]["alpha"], suggestion[name]["beta"]) for name in guideline.CELLS
             if suggestion.get(name) is not None}

    def check(cfg, device, **run):
        if not cells:  # nothing to train: the table is empty, and G1 and G2 read the report's missing cells
            return pd.DataFrame(columns=["alpha", "beta", "status", "final_loss", "suggested"])
        data_path = image_data(args, cfg) if args.problem in problems.FEW_SHOT else None
        return experiments.guideline_check(cfg, args.problem, device, cells, data_path, **run)

    frame = _trained_table(args, check, lambda cfg: {"cells": cells})
    if frame.empty:
        print(f"[guideline] {args.problem}: {args.suggestion} holds neither cell; nothing to train")
    for row in frame.itertuples():
        print(f"[guideline] {args.problem}: the {row.suggested} cell, alpha {row.alpha:.4g}, beta {row.beta:.4g}, "
              f"trained as a grid cell: {row.status}, final loss {row.final_loss:.4g}")


@command("claims", "verdicts on the paper's claims", out=False, arguments=[
    arg("--inputs", nargs="+", required=True,
        help="name=path of each result the claims read, named as in claims.INPUTS (the claims rule passes its "
             "inputs so); a name given again adds a file: linear_grids (one per MAML order), guideline (per "
             "problem, suggest's report, then its check)"),
    arg("--out-json", required=True),
    arg("--out-md", required=True),
])
def cmd_claims(args):
    """``claims.evaluate`` on the results named in ``--inputs``."""
    from . import claims
    step = Step(args, device="cpu")
    given: dict[str, list[str]] = {}
    for name, _, path in (item.partition("=") for item in args.inputs):
        if name not in claims.INPUTS or not path:
            raise config_mod.ConfigError(f"--inputs: {name}={path} is not name=path with a name of claims.INPUTS "
                                         f"({', '.join(claims.INPUTS)})")
        if given.get(name) and name not in claims.LISTS:
            raise config_mod.ConfigError(f"--inputs: {name} given twice; it names one file")
        given.setdefault(name, []).append(path)
    if missing := [name for name in claims.REQUIRED if name not in given]:
        raise config_mod.ConfigError(f"--inputs: {', '.join(missing)} missing; the claims need them")
    if len(given.get("guideline", [])) % 2:
        raise config_mod.ConfigError("--inputs: guideline takes pairs: a suggestion report, then its check")
    inputs = {name: paths if name in claims.LISTS else paths[0] for name, paths in given.items()}
    guideline = inputs.pop("guideline", [])
    inputs["guideline"] = {json.loads(Path(s).read_text())["problem"]: (s, c)
                           for s, c in zip(guideline[::2], guideline[1::2])}
    result = claims.evaluate(step.cfg, inputs)
    provenance.write_json(args.out_json, result)
    provenance.atomic_write_text(args.out_md, claims.to_markdown(result))
    for row in result["claims"]:
        print(f"{row['id']:<10} {row['verdict']:<13} {row['summary']}")


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
