"""The commands a user runs: the guideline tool (``suggest``), the paper-scale grid a chunk at a time, the
verdict table and the pages' numbers, the comparison of a run with the committed figures, and the projection
of the image grids' time before anything trains."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

import torch

from . import config as config_mod
from . import experiments, guideline, paper_grid, problems, projection, provenance
from .claims import numbers
from .steps import write_grid
from .step import (COUNT, NONNEGATIVE, POSITIVE, POSITIVE_INT, ReproductionDiffers, Step, arg, command, given,
                   read_claims)


@command("suggest",
         "the (alpha, beta) to use, for a model of one's own or a problem of the paper: the probe's cell that trains "
         "best with a margin from instability (default), or the paper's guideline (--rule paper)", out=False,
         checkpoint=True, data=True, arguments=[
    arg("--problem", choices=problems.NAMES,
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
    if args.problem:
        step = Step(args, device=args.device and provenance.resolve_device(args.device))
        data_path = step.image_data() if args.problem in problems.FEW_SHOT else None
        probe = experiments.probe_settings(step.cfg, args.problem, args.budget_seconds, args.iterations, args.streams)
        result = experiments.suggest_on(step.cfg, args.problem, step.device, budget_seconds=probe["budget_seconds"],
                                        data_path=data_path, iterations=probe["iterations"],
                                        streams=probe["streams"], rule=args.rule, checkpoint=step.checkpoint)
    else:
        step = Step(args, device=provenance.resolve_device(args.device or "auto"), cfg={})
        factory, sampler = _load_object(args.model, "--model"), _load_object(args.tasks, "--tasks")
        model = factory if isinstance(factory, torch.nn.Module) else factory()
        result = guideline.suggest(model, sampler, loss=args.loss, inner_steps=given(args.inner_steps, 1),
                                   order=args.order or "second",
                                   budget_seconds=given(args.budget_seconds, guideline.BUDGET_SECONDS),
                                   device=step.device, seed=args.seed,
                                   iterations=given(args.iterations, guideline.ITERATIONS),
                                   streams=given(args.streams, guideline.STREAMS), rule=args.rule,
                                   checkpoint=step.checkpoint)
    report = json.loads(result.to_json())
    report["problem"] = args.problem or f"{args.model} {args.tasks}"
    report["provenance"] = step.record()
    if args.out:
        provenance.atomic_write_text(args.out, json.dumps(report, indent=1, default=str) + "\n")
    if args.figure:
        from . import plots
        plots.save_probe_figure(report, args.figure)
    step.done()
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


@command("grid", "the (alpha, beta) grid of any problem of the table of problems, from its config section "
         "(docs/extending.md: a problem of one's own)", provenance=True, checkpoint=True, data=True, arguments=[
    arg("--problem", choices=problems.NAMES, required=True, help="a problem of the table (problems.py)"),
])
def cmd_grid(args):
    """``experiments.grid_spec``'s grid of ``--problem``: its table (``--out``) and provenance."""
    args.experiment = args.problem
    step = Step(args)
    data_path = step.image_data() if args.problem in problems.FEW_SHOT else None
    write_grid(step, experiments.grid_spec(step.cfg, args.problem, step.device, data_path))


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
    """The chunks of the paper-scale Fig. 4b not yet in the folder (``paper_grid.compute``)."""
    step = Step(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    deadline = time.monotonic() + args.budget_seconds if args.budget_seconds is not None else None

    def record(name, wall_seconds, run_info, **extra):
        step.name, step.run_info = name, run_info
        return step.record(wall_seconds, **extra)

    paper_grid.compute(step.cfg, args.into or step.cfg["paper_grid"]["folder"], step.image_data(), step.device,
                       record, deadline=deadline, max_chunks=args.max_chunks, scratch=args.scratch)


@command("project-image-grids", "before anything trains: how long the config's image grids take on this device, "
         "and a stop above max_projected_hours", arguments=[])
def cmd_project_image_grids(args):
    """The workflow's first step: a calibration of each image grid (seconds), the projected hours of each and of
    all, printed and written; over the config's ``max_projected_hours`` (null: no limit) it stops with one line."""
    step = Step(args)
    table = experiments.projected_image_grids(step.cfg, step.device)
    limit = step.cfg["max_projected_hours"]
    total = projection.say(table, step.device, limit)
    provenance.write_json(args.out, {"device": step.device, "total_hours": total, "max_projected_hours": limit,
                                     "grids": table.to_dict("records"), "provenance": step.record()})
    refusal = projection.over_limit(table, step.device, limit)
    if refusal:
        Path(args.out).unlink()
        raise config_mod.ConfigError(refusal)


@command("verdict-table", "the claims' verdict table (the README's), from claims.json", out=False, arguments=[
    arg("--claims", default="figures/claims.json"),
    arg("--update", help="rewrite the table's block in this file (README.md) instead of printing it"),
])
def cmd_verdict_table(args):
    from . import claims
    result = read_claims(args.claims)
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


@command("update-docs", "write the README's verdict table, every marked number of the pages from claims.json and "
         "docs/figures.md's tables of figures", out=False, arguments=[
    arg("--claims", default="figures/claims.json", help="the claims the pages quote (beside the figures' source "
        "data, data/<figure>/)"),
    arg("--pages", nargs="+", default=[*numbers.PAGES, "docs/figures.md"], help="the pages to write"),
])
def cmd_update_docs(args):
    """The README's verdict table (between its markers), every ``<!-- n: name -->`` number of the pages (these
    from claims.json, read only where a page has them) and the generated tables of docs/figures.md (from the
    table of figures and each notebook's caption)."""
    from . import captions, claims
    read = {}

    def result():
        if not read:
            read["claims"] = read_claims(args.claims)
        return read["claims"]

    for page in map(Path, args.pages):
        text = page.read_text()
        if claims.README_BEGIN in text:
            text = claims.with_verdict_table(text, result())
        if numbers.MARK.search(text):
            try:
                text = numbers.with_numbers(text, numbers.Data(result(), Path(args.claims).parent))
            except KeyError as e:
                raise config_mod.ConfigError(f"{page}: {e.args[0]}") from None
        if captions.has_figure_tables(text):
            text = captions.with_figure_tables(text)
        provenance.atomic_write_text(page, text)
        print(f"[update-docs] {page}: {len(numbers.MARK.findall(text))} numbers"
              + (", the tables of figures" if captions.has_figure_tables(text) else ""))


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
    step = Step(args, device="cpu")
    reference = reproduction.Reference.of(config_mod.resolve_path(step.cfg["reproduction"]["reference"]),
                                          Path(args.figures))
    result = reproduction.reproduction(args.claims, Path(args.figures), reference)
    text = reproduction.to_markdown(result)
    provenance.write_json(args.out_json, result)
    provenance.atomic_write_text(args.out_md, text)
    print(text, end="")
    if result["differs"]:
        raise ReproductionDiffers(f"not reproduced: the verdict of {', '.join(result['differs'])} differs from "
                                  f"{reference} ({args.out_md})")
