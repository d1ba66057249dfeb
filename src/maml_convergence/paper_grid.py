"""The paper-scale Fig. 4b grid, accumulated from chunks computed wherever a GPU is at hand.

The grid is the Omniglot experiment at the paper's settings (the ``omniglot`` section of
config/config.yaml: 35 alphas x 34 betas, 100 iterations, 32 tasks, 2 inner steps, second order),
about 20 hours on a 2-vCPU machine and half an hour on one recent GPU. It is split into
``paper_grid.chunks`` fixed chunks, chunk i holding cells i, i + n, i + 2n, ... in alpha-major order
(as ``image-grid --chunk``), so that every chunk gets its share of the fast-diverging cells and the
cells done so far spread over the whole grid. Each chunk, once complete, is kept in
``paper_grid.folder`` (committed with the figures: about 20 rows each) as ``chunk-<i>.csv`` and
``chunk-<i>.json``; the JSON is written last, so its presence means the chunk is whole.

Chunks may come from different machines, so each records its *key*: what fixes its rows up to
floating-point rounding (the grid's settings, the split, the dataset's checksum, the engine's code).
Chunks with different keys are never mixed: the command that computes chunks refuses to add one to a
folder that holds another key's, and the merge refuses a chunk that disagrees with the others, each
with one line naming the file.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pandas as pd

from .config import ConfigError, grid_values
from .provenance import atomic_write_text, write_json

DATASET = "omniglot"
# The settings of an image grid's section that change its rows (not: how it is split into jobs, slots).
RESULT_SETTINGS = ("iterations", "tasks", "eval_tasks", "heldout_tasks", "n_way", "k_shot", "k_query",
                   "inner_steps", "order", "alpha_range", "beta_range", "mantissas")
# An image grid's columns (experiments.GRID_COLUMNS, as a chunk has them): what a merge of no chunk holds.
EMPTY_COLUMNS = ("cell", "alpha", "beta", "status", "diverged_at", "iterations_run", "initial_loss", "last_loss",
                 "final_loss", "final_plain_loss", "final_accuracy", "heldout_loss", "heldout_accuracy",
                 "initial_eval_loss")
# The modules whose code computes a cell: the meta-step, the grid runner, the model, the task stream.
ENGINE_MODULES = ("maml.py", "grid.py", "models.py", "tasks.py")


def code_hash(sources: list[str]) -> str:
    """A hash of Python sources that comments and docstrings do not change."""
    digest = hashlib.sha256()
    for source in sources:
        tree = ast.parse(source)
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        digest.update(ast.dump(tree).encode())
    return digest.hexdigest()[:16]


def engine_fingerprint() -> str:
    """The code that computes a cell (ENGINE_MODULES), hashed: a chunk computed by other code is another
    computation, even when its settings are the same; an edited comment or docstring is not."""
    return code_hash([(Path(__file__).parent / name).read_text() for name in ENGINE_MODULES])


def key(cfg: dict, dataset: str, chunks: int, dataset_sha256: str) -> dict:
    """What a chunk's rows depend on; two chunks may be merged only when their keys are equal."""
    return {"dataset": dataset, "chunks": chunks, "grid": {k: cfg[dataset][k] for k in RESULT_SETTINGS},
            "seed": cfg["seed"], "blowup_factor": cfg["divergence"]["blowup_factor"],
            "backend": cfg.get("backend", "engine"), "dataset_sha256": dataset_sha256,
            "engine": engine_fingerprint()}


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


def check(found: dict[int, dict], expected: dict, remedy: str) -> None:
    """Every chunk in ``found`` has the key ``expected``, or one line naming the first that does not."""
    for chunk, record in sorted(found.items()):
        diff = _difference(record.get("key", {}), expected)
        if diff:
            raise ConfigError(f"{record['path']}: computed for another grid ({diff}); {remedy}")


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

    Refuses, with one line naming the file, a chunk of another key than ``expected``, rows that are not
    those the record was written with (a hand-edited or cut file), or rows that are not the chunk's cells.
    """
    found = records(folder) if found is None else found
    check(found, expected, "chunks of different grids are not merged")
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
