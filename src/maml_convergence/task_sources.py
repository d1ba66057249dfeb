"""Task sources users already have, turned into the sampler ``guideline.suggest`` reads.

The protocol: ``sample_tasks(i)`` is the i-th meta-batch, a pure function of ``i`` (random access, the
same batch however often and in whatever order it is asked for), returned as four tensors (xs, ys, xq, yq):
support inputs and targets, query inputs and targets, each with the task axis first and a task's points
second (classification: integer labels in [0, n_way)). The probe reads stream s's j-th batch at
i = s * 2**20 + j and its fixed evaluation batch at i = ``tasks.EVAL_STREAM`` (2**20 - 1).

``tasks_from(source, ...)`` builds such a sampler from

- **a sequence of meta-batches** (a list of (xs, ys, xq, yq) or ``tasks.Batch``): the first is held apart
  as the evaluation batch, the others are cycled, batch i being ``rest[i % len(rest)]``. A stream then
  starts at its own offset in the list, and with few batches streams share them;
- **a learn2learn ``TaskDataset``** (anything whose ``sample()`` returns one task as (X, y), ways x
  (shots + queries) examples with integer labels): meta-batch i is ``tasks_per_batch`` tasks drawn with
  Python's, NumPy's and torch's global generators seeded from (seed, i), then restored; each task is split
  per class into its first ``shots`` examples (support) and the rest (query), as
  ``learn2learn.data.partition_task`` does. Build the TaskDataset with ``num_tasks=-1`` (learn2learn's
  default): with a fixed number of tasks learn2learn caches each task the first time it is drawn, so a
  task would depend on the order batches are read in;
- **a torchmeta-style meta-dataloader** (an iterable, no random access, of dicts {"train": (x, y),
  "test": (x, y)} or of four tensors, the task axis first): its first ``batches`` + 1 meta-batches are read
  once, then used as a sequence (above);
- **a plain (x, y) dataset** (``len`` and ``[k]`` giving an input tensor and an integer label; a torchvision
  dataset's ``targets`` are read without loading its images): n-way k-shot tasks, ``ways`` classes among
  those with ``shots + queries`` examples and that many examples of each, drawn by a generator seeded from
  (seed, i); labels are renumbered 0..ways-1 in the order the classes were drawn.

A function is already a sampler and comes back as it is. Whatever breaks the protocol stops with one
``ProtocolError`` line saying what was expected.
"""

from __future__ import annotations

import random
from os import PathLike
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from .tasks import EVAL_STREAM, Batch, ProtocolError, as_batch


def tasks_from(source, *, ways: int | None = None, shots: int | None = None, queries: int | None = None,
               tasks_per_batch: int | None = None, batches: int | None = None, seed: int = 0) -> Callable:
    """A sampler ``i -> (xs, ys, xq, yq)`` from ``source``: see the module's docstring for what each kind
    of source needs (a TaskDataset: ``shots``, ``tasks_per_batch``; a loader: ``batches``; a dataset: ``ways``,
    ``shots``, ``queries``, ``tasks_per_batch``)."""
    if callable(source) and not hasattr(source, "sample"):
        return source
    if isinstance(source, (str, bytes, PathLike)):  # a file name is no task source: load it first
        raise ProtocolError(f"cannot read tasks from the {type(source).__name__} {source!r}: expected a function i -> "
                            "meta-batch, a sequence of meta-batches, a learn2learn TaskDataset, a meta-dataloader or "
                            "an (x, y) dataset")
    if callable(getattr(source, "sample", None)):
        return from_task_dataset(source, shots=_needed(shots, "shots", "a TaskDataset"),
                                 tasks_per_batch=_needed(tasks_per_batch, "tasks_per_batch", "a TaskDataset"),
                                 seed=seed)
    if hasattr(source, "__getitem__") and hasattr(source, "__len__"):
        if len(source) == 0:
            raise ProtocolError(f"the task source {type(source).__name__} is empty")
        first = source[0]
        if isinstance(first, Batch) or (isinstance(first, (tuple, list)) and len(first) == 4):
            return from_batches(source)
        if isinstance(first, (tuple, list)) and len(first) == 2:
            what = "an (x, y) dataset"
            return from_dataset(source, ways=_needed(ways, "ways", what), shots=_needed(shots, "shots", what),
                                queries=_needed(queries, "queries", what),
                                tasks_per_batch=_needed(tasks_per_batch, "tasks_per_batch", what), seed=seed)
        raise ProtocolError(f"the task source's items are {_describe(first)}: expected meta-batches "
                            "(xs, ys, xq, yq) or (x, y) examples of a dataset")
    if isinstance(source, Iterable):
        return from_loader(source, batches=_needed(batches, "batches", "a meta-dataloader"))
    raise ProtocolError(f"cannot read tasks from a {type(source).__name__}: expected a function i -> meta-batch, a "
                        "sequence of meta-batches, a learn2learn TaskDataset, a meta-dataloader or an (x, y) dataset")


def from_batches(batches: Sequence) -> Callable:
    """The first meta-batch held apart for evaluation, the rest cycled (at least two batches)."""
    if len(batches) < 2:
        raise ProtocolError(f"a sequence of meta-batches needs at least 2 (the first is the evaluation batch), "
                            f"got {len(batches)}")
    checked = [as_batch(b, f"meta-batch {k} of the sequence") for k, b in enumerate(batches)]
    evaluation, rest = checked[0], checked[1:]

    def sample_tasks(i: int) -> Batch:
        return evaluation if i == EVAL_STREAM else rest[i % len(rest)]
    return sample_tasks


def from_loader(loader: Iterable, *, batches: int) -> Callable:
    """The first ``batches`` + 1 meta-batches a (torchmeta-style) loader yields, read once, as a sequence."""
    read = []
    for item in loader:
        read.append(_loader_batch(item, len(read)))
        if len(read) == batches + 1:
            break
    if len(read) < batches + 1:
        raise ProtocolError(f"the meta-dataloader gave {len(read)} meta-batches; {batches} + 1 (evaluation) "
                            "were asked for")
    return from_batches(read)


def from_task_dataset(taskset, *, shots: int, tasks_per_batch: int, seed: int = 0) -> Callable:
    """Meta-batch i: ``tasks_per_batch`` tasks of a learn2learn TaskDataset, drawn under generators seeded
    from (seed, i), each split per class into ``shots`` support and the rest query examples."""
    _positive(shots=shots, tasks_per_batch=tasks_per_batch)

    def sample_tasks(i: int) -> Batch:
        with _seeded(seed, i):
            drawn = [taskset.sample() for _ in range(tasks_per_batch)]
        return _stack([_partition(task, shots, f"task {k} of meta-batch {i}") for k, task in enumerate(drawn)], i)
    return sample_tasks


def from_dataset(dataset, *, ways: int, shots: int, queries: int, tasks_per_batch: int, seed: int = 0) -> Callable:
    """n-way k-shot tasks from an (x, y) dataset: see the module's docstring."""
    _positive(ways=ways, shots=shots, queries=queries, tasks_per_batch=tasks_per_batch)
    labels = getattr(dataset, "targets", None)
    labels = [int(y) for y in (labels if labels is not None else (dataset[k][1] for k in range(len(dataset))))]
    by_class: dict[int, list[int]] = {}
    for k, y in enumerate(labels):
        by_class.setdefault(y, []).append(k)
    eligible = sorted(c for c, members in by_class.items() if len(members) >= shots + queries)
    if len(eligible) < ways:
        raise ProtocolError(f"the dataset has {len(eligible)} classes with at least shots + queries = "
                            f"{shots + queries} examples; {ways}-way tasks need {ways}")

    def example(k: int) -> torch.Tensor:
        x = dataset[k][0]
        if not isinstance(x, torch.Tensor):
            raise ProtocolError(f"dataset[{k}]'s input is a {type(x).__name__}, not a tensor (give the dataset a "
                                "transform such as torchvision's ToTensor)")
        return x

    def sample_tasks(i: int) -> Batch:
        g = torch.Generator().manual_seed(_derived(seed, i))
        parts = []
        for _ in range(tasks_per_batch):
            classes = [eligible[c] for c in torch.randperm(len(eligible), generator=g)[:ways].tolist()]
            picked = [[by_class[c][k] for k in torch.randperm(len(by_class[c]), generator=g)[:shots + queries].tolist()]
                      for c in classes]
            split = [(members[:shots], members[shots:]) for members in picked]
            xs = torch.stack([example(k) for support, _ in split for k in support])
            xq = torch.stack([example(k) for _, query in split for k in query])
            parts.append(Batch(xs, torch.arange(ways).repeat_interleave(shots), xq,
                               torch.arange(ways).repeat_interleave(queries)))
        return _stack(parts, i)
    return sample_tasks


def _partition(task, shots: int, where: str) -> Batch:
    if not (isinstance(task, (tuple, list)) and len(task) >= 2 and all(isinstance(t, torch.Tensor) for t in task[:2])):
        raise ProtocolError(f"{where}: TaskDataset.sample() must return (X, y) tensors; it returned "
                            f"{_describe(task)}")
    x, y = task[0], task[1]
    if y.dim() != 1 or y.is_floating_point() or len(y) != len(x):
        raise ProtocolError(f"{where}: expected X (examples, ...) and integer labels y (examples,); got X "
                            f"{tuple(x.shape)} and y {tuple(y.shape)} {y.dtype}")
    support, query = [], []
    for c in torch.unique(y).tolist():
        members = torch.nonzero(y == c).flatten()
        if len(members) <= shots:
            raise ProtocolError(f"{where}: class {c} has {len(members)} examples; shots = {shots} leaves none for "
                                "the query (sample shots + queries examples a class, e.g. KShots(dataset, 2 * shots))")
        support.append(members[:shots])
        query.append(members[shots:])
    s, q = torch.cat(support), torch.cat(query)
    return Batch(x[s], y[s], x[q], y[q])


def _stack(parts: list[Batch], i: int) -> Batch:
    try:
        return Batch(*(torch.stack([getattr(p, f) for p in parts]) for f in ("xs", "ys", "xq", "yq")))
    except RuntimeError as error:
        shapes = sorted({(tuple(p.xs.shape), tuple(p.xq.shape)) for p in parts})
        raise ProtocolError(f"the tasks of meta-batch {i} differ in shape (support, query inputs: {shapes}): every "
                            f"task needs the same ways, shots and queries ({str(error).splitlines()[0]})") from None


def _loader_batch(item, k: int) -> Batch:
    if isinstance(item, dict) and {"train", "test"} <= item.keys():
        (xs, ys), (xq, yq) = item["train"][:2], item["test"][:2]
        return as_batch((xs, ys, xq, yq), f"meta-batch {k} of the loader")
    return as_batch(item, f"meta-batch {k} of the loader (a dict {{'train': (x, y), 'test': (x, y)}} or four tensors)")


class _seeded:
    """Python's, NumPy's and torch's global generators seeded from (seed, i) inside, restored after."""

    def __init__(self, seed: int, i: int):
        self.value = _derived(seed, i)

    def __enter__(self):
        self.saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(self.value)
        np.random.seed(self.value % 2**32)
        torch.manual_seed(self.value)

    def __exit__(self, *exc):
        random.setstate(self.saved[0])
        np.random.set_state(self.saved[1])
        torch.set_rng_state(self.saved[2])


def _derived(seed: int, i: int) -> int:
    # Distinct per (seed, i): the probe's indices stay below 2**32.
    return int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1, dtype=np.uint32)[0])


def _needed(value, name: str, what: str):
    if value is None:
        raise ProtocolError(f"tasks_from needs {name}= for {what}")
    return value


def _positive(**counts) -> None:
    for name, value in counts.items():
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ProtocolError(f"{name} must be an integer >= 1, got {value!r}")


def _describe(value) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}: " + ", ".join(
            f"{tuple(v.shape)}" if isinstance(v, torch.Tensor) else type(v).__name__ for v in value)
    return type(value).__name__
