"""The paper-scale Fig. 4b grid, accumulated from chunks computed wherever there is time: a GPU or an idle CPU.

The grid is the Omniglot experiment at the paper's settings (the ``omniglot`` section of
config/config.yaml: 35 alphas x 34 betas, 100 iterations, 32 tasks, 2 inner steps, second order),
about a day on a 2-vCPU machine and half an hour on one recent GPU. It is split into
``paper_grid.chunks`` fixed chunks, chunk i holding cells i, i + n, i + 2n, ... in alpha-major order
(as ``image-grid --chunk``), so that every chunk gets its share of the fast-diverging cells and the
cells done so far spread over the whole grid. Each chunk, once complete, is kept in
``paper_grid.folder`` (committed with the figures: about 20 rows each) as ``chunk-<i>.csv`` and
``chunk-<i>.json``; the JSON is written last, so its presence means the chunk is whole.

Chunks may come from different machines and from different versions of the code, so each records its
*key*: what fixes its rows. That is, first, the settings (the grid's, the split, the seed and divergence
rule, the dataset's checksum), which must be equal; and second, the code's *behaviour*, which must agree:
the rows of a few reference cells of the grid's own settings after a few meta-iterations
(``REFERENCE_CELLS``, computed by ``reference`` through the same code that computes a chunk). A refactor
that computes the same numbers keeps every chunk valid; a change that moves a reference number by more
than ``TOLERANCE`` (relative) or changes an outcome is another computation. Chunks that disagree are never
mixed: the command that computes chunks refuses to add one to a folder whose chunks disagree with the code
at hand, and the merge refuses a chunk that disagrees with the others, each with one line naming the file
and the first number that differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path

import pandas as pd
import torch

from . import data, experiments
from .config import ConfigError, grid_values
from .grid import run_grid
from .problems import OMNIGLOT
from .provenance import atomic_write_text, write_json

DATASET = OMNIGLOT
# The settings of an image grid's section that change its rows (not: how it is split into jobs, slots).
RESULT_SETTINGS = ("iterations", "tasks", "eval_tasks", "heldout_tasks", "n_way", "k_shot", "k_query",
                   "inner_steps", "order", "alpha_range", "beta_range", "mantissas")
# An image grid's columns (experiments.GRID_COLUMNS, as a chunk has them): what a merge of no chunk holds.
EMPTY_COLUMNS = ("cell", "alpha", "beta", "status", "diverged_at", "iterations_run", "initial_loss", "last_loss",
                 "final_loss", "final_plain_loss", "final_accuracy", "heldout_loss", "heldout_accuracy",
                 "initial_eval_loss")

# The behaviour that fixes a chunk's rows: these (alpha, beta) cells trained for REFERENCE_ITERATIONS
# meta-iterations with the grid's settings. Three train stably (joint training, a small and a moderate
# alpha: the initialisation, the task stream, the meta-step of either order and the evaluation all show in
# their losses); two diverge (at alpha = beta = 9 the loss is 250x its start after one step and 12,000x after
# two, so the iteration it diverges at moves if the blow-up rule changes anywhere in [250, 12,000]).
REFERENCE_CELLS = ((0.0, 0.3), (0.03, 0.3), (0.1, 0.3), (0.1, 90.0), (9.0, 9.0))
REFERENCE_ITERATIONS = 2
# Outcomes compared exactly; losses within TOLERANCE (relative) of each other, a diverged cell's start only.
OUTCOMES = ("status", "diverged_at", "iterations_run")
LOSSES = ("initial_loss", "last_loss", "final_loss", "final_plain_loss", "heldout_loss")
# What float32 summation order alone moves a cell by after 2 meta-iterations (the native against the unfold
# convolution, which compute the same function): at most 1.2e-3 on the small grid of tests/test_paper_grid.py,
# 6.6e-4 on these reference cells at the paper's settings (docs/gpu-and-cluster.md). The same tolerance is
# accepted between devices; a change of the computation moves these numbers by far more.
TOLERANCE = 2e-3


def settings(cfg: dict, dataset: str, chunks: int, dataset_sha256: str) -> dict:
    """What must be equal between chunks: the grid's settings, the split, the seed, the divergence rule, the data."""
    if cfg[dataset].get("seeds"):
        raise ConfigError(f"config key '{dataset}.seeds': the paper-scale grid is one run at the config's seed; "
                          f"remove it from the config the paper grid reads")
    return {"dataset": dataset, "chunks": chunks, "grid": {k: cfg[dataset][k] for k in RESULT_SETTINGS},
            "seed": cfg["seed"], "blowup_factor": cfg["divergence"]["blowup_factor"],
            "dataset_sha256": dataset_sha256}


def reference(cfg: dict, device: str, data_path: str | None = None) -> dict:
    """The rows of REFERENCE_CELLS after REFERENCE_ITERATIONS meta-iterations of the grid's settings, computed
    by the code that computes a chunk (``experiments.image_spec``, ``run_grid``) on ``device``: the outcomes,
    and the losses of the cells that did not diverge (a diverged cell's start only)."""
    spec = dataclasses.replace(experiments.image_spec(cfg, DATASET, device, data_path=data_path),
                               pairs=list(REFERENCE_CELLS), iterations=REFERENCE_ITERATIONS)
    rows = []
    for row in run_grid(spec, progress=False).rows:
        losses = LOSSES if row["status"] == "ok" else LOSSES[:1]
        rows.append({"alpha": row["alpha"], "beta": row["beta"], **{k: row[k] for k in OUTCOMES},
                     **{k: float(row[k]) for k in losses}})
    return {"iterations": REFERENCE_ITERATIONS, "tolerance": TOLERANCE, "cells": rows}


def key(cfg: dict, dataset: str, chunks: int, dataset_sha256: str, behaviour: dict) -> dict:
    """A chunk's key: its settings and the ``reference`` of the code that computed it."""
    return {**settings(cfg, dataset, chunks, dataset_sha256), "reference": behaviour}


def all_pairs(section: dict) -> list[tuple[float, float]]:
    """Every (alpha, beta) cell of the grid, alpha-major."""
    alphas, betas = grid_values(section)
    return [(a, b) for a in alphas for b in betas]


def chunk_pairs(section: dict, chunk: int, chunks: int) -> list[tuple[float, float]]:
    """The (alpha, beta) cells of one chunk, in the order image-grid trains them."""
    return all_pairs(section)[chunk::chunks]


def paths(folder, chunk: int) -> tuple[Path, Path]:
    """(rows, record) of one chunk."""
    folder = Path(folder)
    return folder / f"chunk-{chunk:03d}.csv", folder / f"chunk-{chunk:03d}.json"


def records(folder) -> dict[int, dict]:
    """The records of the complete chunks in ``folder``, by chunk index."""
    found = {}
    for path in sorted(Path(folder).glob("chunk-*.json")):
        try:
            record = json.loads(path.read_text())
            found[int(record["chunk"])] = {**record, "path": str(path)}
        except (ValueError, KeyError) as e:
            raise ConfigError(f"{path}: not a chunk record ({e})") from None
    return found


def _difference(theirs: dict, ours: dict) -> str | None:
    """The first setting in which two keys differ, as text; None when they are equal."""
    for k in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(k), ours.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _difference(a, b)
            if inner:
                return f"{k}.{inner}"
        elif a != b:
            return f"{k} {a!r}, here {b!r}"
    return None


def _behaviour_difference(theirs: dict, ours: dict) -> str | None:
    """The first reference number in which two behaviours differ beyond TOLERANCE (an outcome, at all), as
    text; None when they agree."""
    if theirs.get("iterations") != ours.get("iterations") or \
            [(c["alpha"], c["beta"]) for c in theirs.get("cells", [])] != list(REFERENCE_CELLS):
        return "reference of other cells or iterations (" + json.dumps(theirs)[:60] + "...)"
    for a, b in zip(theirs["cells"], ours.get("cells", [])):
        cell = f"reference cell alpha {a['alpha']:g}, beta {a['beta']:g}"
        for k in OUTCOMES:
            if a[k] != b[k]:
                return f"{cell}: {k} {a[k]!r}, here {b[k]!r}"
        for k in LOSSES:
            x, y = a.get(k), b.get(k)
            if x is None or y is None:
                continue  # a diverged cell's: its outcome, compared above, says it all
            relative = abs(x - y) / abs(x) if x else math.inf * abs(y)
            if not relative <= TOLERANCE:
                return f"{cell}: {k} {x:.7g}, here {y:.7g} (relative difference {relative:.2g} > {TOLERANCE:g})"
    return None


def difference(theirs: dict, ours: dict) -> str | None:
    """How the key ``theirs`` is incompatible with ``ours``, as text: the first setting that differs, else the
    first reference number that differs beyond TOLERANCE; None when they are compatible. ``ours`` without a
    reference (a ``settings`` dict): the settings alone."""
    diff = _difference({k: v for k, v in theirs.items() if k != "reference"},
                       {k: v for k, v in ours.items() if k != "reference"})
    if diff or "reference" not in ours:
        return diff
    return _behaviour_difference(theirs.get("reference") or {}, ours["reference"])


def check(found: dict[int, dict], expected: dict, remedy: str) -> None:
    """Every chunk in ``found`` is compatible with the key ``expected``, or one line naming the first that is
    not and why."""
    for chunk, record in sorted(found.items()):
        diff = difference(record.get("key", {}), expected)
        if diff:
            raise ConfigError(f"{record['path']}: computed for another grid or by code that computes otherwise "
                              f"({diff}); {remedy}")


def missing(found: dict[int, dict], chunks: int) -> list[int]:
    return [i for i in range(chunks) if i not in found]


def save(folder, chunk: int, rows: pd.DataFrame, record: dict) -> None:
    """One complete chunk: its rows, then its record (with the rows' sha256), each written atomically."""
    table, meta = paths(folder, chunk)
    table.parent.mkdir(parents=True, exist_ok=True)
    text = rows.to_csv(index=False)
    atomic_write_text(table, text)
    write_json(meta, {"chunk": chunk, **record, "rows_sha256": hashlib.sha256(text.encode()).hexdigest()})


def load(folder, expected: dict, found: dict[int, dict] | None = None) -> tuple[pd.DataFrame, dict[int, dict]]:
    """The rows of every complete chunk in ``folder`` (alpha-major order) and their records (``found``, when
    the caller has read them already).

    Refuses, with one line naming the file, a chunk whose settings are not those of ``expected`` (a
    ``settings`` dict) or whose reference disagrees with the first chunk's, rows that are not those the
    record was written with (a hand-edited or cut file), or rows that are not the chunk's cells.
    """
    found = records(folder) if found is None else found
    if found:
        first = found[min(found)]["key"].get("reference") or {}
        check(found, {**expected, "reference": first}, "chunks of different grids or behaviours are not merged")
    frames = []
    for chunk, record in sorted(found.items()):
        table = paths(folder, chunk)[0]
        if not table.exists():
            raise ConfigError(f"{table}: missing, though {record['path']} records it")
        text = table.read_text()
        if hashlib.sha256(text.encode()).hexdigest() != record["rows_sha256"]:
            raise ConfigError(f"{table}: its contents are not those its record {record['path']} was written with")
        rows = pd.read_csv(table)
        if list(zip(rows.alpha, rows.beta)) != chunk_pairs(expected["grid"], chunk, expected["chunks"]):
            raise ConfigError(f"{table}: its cells are not chunk {chunk} of {expected['chunks']}")
        frames.append(rows.assign(chunk=chunk))
    if not frames:  # the columns a chunk of an image grid has, no row
        return pd.DataFrame(columns=[*EMPTY_COLUMNS, "chunk"]), found
    grid = pd.concat(frames, ignore_index=True).sort_values(["alpha", "beta"], kind="stable")
    return grid.reset_index(drop=True), found


def compute(cfg: dict, folder, dataset_path: str, device: str, record, *, deadline: float | None = None,
            max_chunks: int | None = None, scratch="results/paper-grid") -> None:
    """The chunks of ``folder`` not yet there, one after the other, each kept the moment it is complete; a chunk
    the ``deadline`` (a ``time.monotonic()`` value) cuts short keeps its resume file in ``scratch`` for the next
    run. First the chunks kept are checked against the settings, then against the reference cells computed by
    the code at hand. ``record(name, wall_seconds, run_info, **extra)``: a chunk's provenance."""
    folder, n = Path(folder), cfg["paper_grid"]["chunks"]
    found = records(folder)
    remedy = (f"move the chunks in {folder} away to start this grid there, or compute with the settings and "
              "code they were computed with")
    sha256 = data.file_hash(Path(dataset_path))
    check(found, settings(cfg, DATASET, n, sha256), remedy)  # before the reference cells, to say it at once
    # float32 throughout on every GPU (no TF32), and cuDNN's deterministic algorithms: chunks from different
    # machines then differ by summation order alone (docs/gpu-and-cluster.md says how much that moves)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    start = time.perf_counter()
    expected = key(cfg, DATASET, n, sha256, reference(cfg, device, dataset_path))
    print(f"[paper-grid] the reference cells computed in {time.perf_counter() - start:.0f} s on {device}")
    check(found, expected, remedy)
    todo = missing(found, n)[:max_chunks]
    agree = ", computed by code that agrees with this" if found else ""
    print(f"[paper-grid] {len(found)} of {n} chunks in {folder}{agree}; up to {len(todo)} more on {device}")
    for chunk in todo:
        if deadline is not None and time.monotonic() >= deadline:
            print(f"[paper-grid] the budget is spent before chunk {chunk}")
            break
        if not _compute_chunk(cfg, folder, chunk, expected, device, dataset_path, record, deadline, Path(scratch)):
            break


def _compute_chunk(cfg: dict, folder: Path, chunk: int, expected: dict, device: str, dataset_path: str, record,
                   deadline, scratch: Path) -> bool:
    """Compute one chunk and keep it; False when the deadline cut it short (its resume file is kept)."""
    n = expected["chunks"]
    spec = experiments.image_spec(cfg, DATASET, device, chunk, n, dataset_path)
    resume = scratch / f"chunk-{chunk:03d}.ckpt"
    start = time.perf_counter()
    result = run_grid(spec, checkpoint=resume, checkpoint_every=cfg["checkpoint_every"], deadline=deadline)
    if result.stopped:
        print(f"[paper-grid] chunk {chunk} cut short by the budget; the next run resumes it from {resume}")
        return False
    frame = experiments.grid_frame(result.rows)
    start_loss = experiments.initial_eval_losses(cfg, DATASET, sorted(frame.alpha.unique()), device, dataset_path)
    frame["initial_eval_loss"] = frame.alpha.map(start_loss)
    wall = time.perf_counter() - start
    save(folder, chunk, frame, {
        "key": expected, "cells": len(frame), "diverged": int((frame.status == "diverged").sum()),
        "provenance": record(f"paper-grid-chunk{chunk}of{n}", wall, result.run_info, fingerprint=spec.fingerprint(),
                             tf32=False, cudnn_deterministic=True, threads=torch.get_num_threads())})
    resume.unlink(missing_ok=True)
    print(f"[paper-grid] chunk {chunk} of {n}: {len(frame)} cells in {wall:.0f} s -> {paths(folder, chunk)[0]}",
          flush=True)
    return True
