"""Task distributions: the paper's regression tasks (linear, sinusoid), few-shot classification on
Omniglot and MiniImagenet, and a sampler function of one's own (``SampledTasks``).

A batch holds tensors with the task axis first: ``xs, ys`` adapt the parameters in the inner
steps, ``xq, yq`` score the adapted parameters.
Every batch is a pure function of (seed, iteration), so a grid of cells can
share one task stream and a resumed run sees the tasks it would have seen.

Each distribution is a task family (``TaskFamily``): what the grid runner asks of it, so the runner never asks
which family it has. The families the table of problems names (``problems.Problem.family``) are in
``FAMILIES`` and are also built from their config section (``from_config``).
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from . import problems
from .problems import MINIIMAGENET, OMNIGLOT

STREAM_SPAN = 2**20  # iterations of one seed's task stream
EVAL_STREAM = STREAM_SPAN - 1  # the iteration index reserved for the final evaluation batch


@dataclass(frozen=True)
class Batch:
    xs: torch.Tensor
    ys: torch.Tensor
    xq: torch.Tensor
    yq: torch.Tensor

    def to(self, device=None, dtype=None) -> "Batch":
        return Batch(*(t.to(device=device, dtype=dtype) for t in (self.xs, self.ys, self.xq, self.yq)))


class ProtocolError(ValueError):
    """A model or task sampler given to the package does not do what was expected; the message says what."""


class TaskStream(Protocol):
    def get(self, pairs: list[tuple[int, int]]) -> Batch:
        """One batch per (seed index, iteration), stacked along a leading slot axis."""


class TaskFamily(Protocol):
    """A task distribution as the grid runner uses it: a frozen dataclass whose ``seed`` picks its task stream
    (a seed's tasks are ``dataclasses.replace(tasks, seed=s)``), and whose fields, with its class name, are what
    a grid's fingerprint records of it."""

    seed: int

    def sample(self, iteration: int, dtype=torch.float32, device=None) -> Batch:
        """The meta-batch of ``iteration``: a pure function of (seed, iteration)."""

    def eval_batch(self, dtype, device) -> Batch:
        """The fixed batch every cell's final loss is measured on."""

    def heldout_batch(self, dtype, device) -> Batch | None:
        """The fixed batch of held-out tasks a cell's final accuracy is measured on; None: the family has none."""

    @classmethod
    def stream(cls, per_seed: list, iterations: int, dtype, device) -> TaskStream:
        """The batches a grid of ``iterations`` meta-iterations reads: ``per_seed`` holds this family's tasks
        once for every seed of the run, each its own task stream."""

    # A family the table of problems names (FAMILIES) also builds itself from its config section:
    # ``from_config(name, section, seed, data_path=None)``, a classmethod.


def stack_batches(batches) -> Batch:
    """Batches stacked along a new leading axis, field by field."""
    return Batch(*(torch.stack([getattr(b, f) for b in batches]) for f in ("xs", "ys", "xq", "yq")))


class StackedStream:
    """Regression batches are small: every batch the grid will see (``n`` per seed) is made up front, on the
    device."""

    def __init__(self, per_seed, n: int, dtype, device):
        self.data = stack_batches([stack_batches([tasks.sample(i, dtype=dtype) for i in range(n)])
                                   for tasks in per_seed]).to(device)
        self.device = device

    def get(self, pairs: list[tuple[int, int]]) -> Batch:
        sdx = torch.tensor([s for s, _ in pairs], device=self.device)
        idx = torch.tensor([it % self.data.xs.shape[1] for _, it in pairs], device=self.device)
        return Batch(*(getattr(self.data, f)[sdx, idx] for f in ("xs", "ys", "xq", "yq")))


class SampledStream:
    """Batches of a sampler of one's own (``SampledTasks``), made when first asked for; the most recent
    ones are kept, so slots that walk through the same iterations do not sample them again."""

    KEEP = 64

    def __init__(self, per_seed, dtype, device):
        self.per_seed, self.dtype, self.device = per_seed, dtype, device
        self.kept: OrderedDict = OrderedDict()

    def one(self, key) -> Batch:
        if key in self.kept:
            self.kept.move_to_end(key)
        else:
            self.kept[key] = self.per_seed[key[0]].sample(key[1], dtype=self.dtype, device=self.device)
            while len(self.kept) > self.KEEP:
                self.kept.popitem(last=False)
        return self.kept[key]

    def get(self, pairs: list[tuple[int, int]]) -> Batch:
        return stack_batches([self.one(key) for key in pairs])


FIELDS = ("xs", "ys", "xq", "yq")


def as_batch(value, source: str) -> Batch:
    """``value`` as a Batch: a Batch, or four tensors (xs, ys, xq, yq) with the task axis first and the
    points of a task second, inputs float, targets float (regression) or integer (class labels)."""
    expected = (f"{source} must return a Batch or four tensors (xs, ys, xq, yq): support inputs and targets, "
                f"query inputs and targets, each with the task axis first and a task's points second")
    if isinstance(value, Batch):
        parts = [value.xs, value.ys, value.xq, value.yq]
    elif isinstance(value, (tuple, list)) and len(value) == 4:
        parts = list(value)
    else:
        raise ProtocolError(f"{expected}; it returned {type(value).__name__}"
                            + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""))
    for name, t in zip(FIELDS, parts):
        if not isinstance(t, torch.Tensor):
            raise ProtocolError(f"{expected}; its {name} is a {type(t).__name__}, not a torch.Tensor")
        if t.dim() < 2:
            raise ProtocolError(f"{expected}; its {name} has shape {tuple(t.shape)}: it needs (tasks, points, ...)")
    xs, ys, xq, yq = parts
    if len({t.shape[0] for t in parts}) != 1:
        raise ProtocolError(f"{expected}; their task axes differ: " + ", ".join(
            f"{n} {tuple(t.shape)}" for n, t in zip(FIELDS, parts)))
    for x, y, split in ((xs, ys, "support"), (xq, yq, "query")):
        if x.shape[1] != y.shape[1]:
            raise ProtocolError(f"{expected}; the {split} inputs {tuple(x.shape)} and targets {tuple(y.shape)} "
                                "differ in their number of points (axis 1)")
        if not x.is_floating_point():
            raise ProtocolError(f"{expected}; the {split} inputs are {x.dtype}, not floating point")
    if ys.is_floating_point() != yq.is_floating_point():
        raise ProtocolError(f"{expected}; support targets are {ys.dtype} but query targets {yq.dtype}: both "
                            "class labels (integer) or both regression targets (float)")
    return Batch(xs, ys, xq, yq)


class ReservedEvaluation:
    """For a family whose fixed evaluation batch is the sample of the reserved iteration ``EVAL_STREAM`` and which
    has no held-out tasks (the regression families, a sampler of one's own)."""

    def eval_batch(self, dtype, device) -> Batch:
        return self.sample(EVAL_STREAM, dtype=dtype, device=device)

    def heldout_batch(self, dtype, device) -> None:
        return None


@dataclass(frozen=True)
class SampledTasks(ReservedEvaluation):
    """Meta-batches from a function of the iteration: ``sample_tasks(i)`` returns the i-th meta-batch
    (``as_batch``'s protocol). Floating tensors take the run's dtype; integer class labels stay integers.
    Used for models and tasks of the user's own (``guideline.suggest``)."""

    sample_tasks: Callable
    # The task stream: stream s reads the sampler's batches s * STREAM_SPAN + i (stream 0: 0, 1, 2, ...),
    # so streams are disjoint ranges of its batches; the fixed evaluation batch EVAL_STREAM is every stream's.
    seed: int = 0

    def sample(self, iteration: int, dtype=torch.float32, device=None) -> Batch:
        index = iteration if iteration == EVAL_STREAM else self.seed * STREAM_SPAN + iteration
        batch = as_batch(self.sample_tasks(index), f"sample_tasks({index})")
        return Batch(*(t.to(device=device, dtype=dtype if t.is_floating_point() else None)
                       for t in (batch.xs, batch.ys, batch.xq, batch.yq)))

    @classmethod
    def stream(cls, per_seed, iterations: int, dtype, device) -> SampledStream:
        return SampledStream(per_seed, dtype, device)


def _generator(seed: int, stream: int) -> torch.Generator:
    # Distinct, reproducible streams per (seed, iteration): STREAM_SPAN iterations per seed.
    return torch.Generator().manual_seed(int(seed) * STREAM_SPAN + int(stream))


@dataclass(frozen=True)
class SinusoidTasks(ReservedEvaluation):
    """y = A sin(x - phase), A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5] (Finn et al. 2017).

    Support and query points are drawn independently from the same task.
    """

    tasks: int = 100
    k_support: int = 10
    k_query: int = 10
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)
    seed: int = 0

    def sample(self, iteration: int, dtype=torch.float32, device=None) -> Batch:
        g = _generator(self.seed, iteration)
        amp = _uniform(g, (self.tasks, 1, 1), self.amplitude)
        phase = _uniform(g, (self.tasks, 1, 1), self.phase)
        x = _uniform(g, (self.tasks, self.k_support + self.k_query, 1), self.x_range)
        y = amp * torch.sin(x - phase)
        k = self.k_support
        return Batch(x[:, :k], y[:, :k], x[:, k:], y[:, k:]).to(dtype=dtype).to(device)

    @classmethod
    def stream(cls, per_seed, iterations: int, dtype, device) -> StackedStream:
        return StackedStream(per_seed, iterations, dtype, device)

    @classmethod
    def from_config(cls, name: str, section: dict, seed: int, data_path: str | None = None) -> "SinusoidTasks":
        return cls(tasks=section["tasks"], k_support=section["k_support"], k_query=section["k_query"], seed=seed)


@dataclass(frozen=True)
class LinearRegressionTask(ReservedEvaluation):
    """One task y = a x + b with a, b ~ U[0, 5], x ~ U[-5, 5] (the paper's Appendix C).

    As in the paper's analysis, the same points are used for the inner step and for
    the meta-step, and the task never changes: MAML then descends a fixed quadratic.
    """

    points: int = 10
    slope: tuple[float, float] = (0.0, 5.0)
    bias: tuple[float, float] = (0.0, 5.0)
    x_range: tuple[float, float] = (-5.0, 5.0)
    seed: int = 0

    def sample(self, iteration: int = 0, dtype=torch.float32, device=None) -> Batch:
        g = _generator(self.seed, 0)  # one fixed task: the iteration is ignored on purpose
        a = _uniform(g, (1, 1, 1), self.slope)
        b = _uniform(g, (1, 1, 1), self.bias)
        x = _uniform(g, (1, self.points, 1), self.x_range)
        y = a * x + b
        return Batch(x, y, x, y).to(dtype=dtype).to(device)

    @classmethod
    def stream(cls, per_seed, iterations: int, dtype, device) -> StackedStream:
        return StackedStream(per_seed, 1, dtype, device)  # the task never changes: one batch a seed

    @classmethod
    def from_config(cls, name: str, section: dict, seed: int, data_path: str | None = None) -> "LinearRegressionTask":
        return cls(points=section["points"], seed=seed)


def _uniform(g: torch.Generator, shape, bounds) -> torch.Tensor:
    lo, hi = bounds
    return torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo


@dataclass(frozen=True)
class FewShotTasks:
    """N-way K-shot classification episodes from a prepared image dataset (Omniglot or MiniImagenet).

    Each task draws ``n_way`` classes without replacement and, from each, ``k_shot``
    support and ``k_query`` query images without replacement; labels are 0..n_way-1 in
    the order the classes were drawn. Omniglot's classes are its characters under the
    four 90-degree rotations (Vinyals et al.: 1,200 characters -> 4,800 classes).
    Pixels are scaled as in Finn et al.: Omniglot 1 - p/255 (strokes = 1), MiniImagenet p/255.
    """

    dataset: str                 # a few-shot problem of the table of problems (problems.FEW_SHOT)
    path: str                    # the prepared .npz (see data.py)
    split: str = "train"
    n_way: int = 5
    k_shot: int = 1
    k_query: int = 15
    tasks: int = 32
    eval_tasks: int = 32         # tasks in the fixed batch the final training loss is measured on
    heldout_tasks: int = 0       # tasks from the held-out split the final accuracy is measured on (0: none)
    seed: int = 0

    def classes(self) -> torch.Tensor:
        """(class count, images per class, C, H, W) uint8 images of the split, before rotations."""
        return _split_images(self.dataset, self.path, self.split)

    @property
    def rotations(self) -> int:
        return 4 if self.dataset == OMNIGLOT else 1

    def episode_indices(self, iteration: int, tasks: int | None = None):
        """(class, rotation, image) indices of one batch of tasks: a pure function of (seed, iteration)."""
        tasks = self.tasks if tasks is None else tasks
        n_classes, per_class = self.classes().shape[:2]
        g = _generator(self.seed, iteration)
        shots = self.k_shot + self.k_query
        pooled = torch.stack([torch.randperm(n_classes * self.rotations, generator=g)[:self.n_way]
                              for _ in range(tasks)])
        images = torch.stack([torch.stack([torch.randperm(per_class, generator=g)[:shots]
                                           for _ in range(self.n_way)]) for _ in range(tasks)])
        return pooled // self.rotations, pooled % self.rotations, images

    def sample(self, iteration: int, dtype=torch.float32, device=None, tasks: int | None = None) -> Batch:
        cls, rot, img = self.episode_indices(iteration, tasks)
        return _episode_batch(self.classes(), self.dataset, cls, rot, img, self.k_shot, dtype, device)

    def heldout(self) -> "FewShotTasks":
        """The same episodes drawn from the held-out test classes (Omniglot: the 323 test characters)."""
        return dataclasses.replace(self, split="test")

    def eval_batch(self, dtype, device) -> Batch:
        return self.sample(EVAL_STREAM, dtype=dtype, device=device, tasks=self.eval_tasks)

    def heldout_batch(self, dtype, device) -> Batch | None:
        if not self.heldout_tasks:
            return None
        return self.heldout().sample(EVAL_STREAM, dtype=dtype, device=device, tasks=self.heldout_tasks)

    @classmethod
    def stream(cls, per_seed, iterations: int, dtype, device) -> "FewShotStream":
        return FewShotStream(per_seed, dtype, device)

    @classmethod
    def from_config(cls, name: str, section: dict, seed: int, data_path: str | None = None) -> "FewShotTasks":
        return cls(dataset=name, path=data_path, split="train", n_way=section["n_way"], k_shot=section["k_shot"],
                   k_query=section["k_query"], tasks=section["tasks"], eval_tasks=section["eval_tasks"],
                   heldout_tasks=section["heldout_tasks"], seed=seed)


class FewShotStream:
    """Batches for the slots of a grid, gathered on ``device`` from images kept there as uint8."""

    def __init__(self, per_seed: "list[FewShotTasks]", dtype, device):
        self.per_seed = per_seed  # one per seed of the run; they share the images
        self.images = self.per_seed[0].classes().to(device)
        self.dtype, self.device = dtype, device

    def get(self, pairs: list[tuple[int, int]]) -> Batch:
        """One batch per (seed index, iteration), stacked along a leading slot axis."""
        idx = [self.per_seed[s].episode_indices(it) for s, it in pairs]
        cls, rot, img = (torch.stack([i[k] for i in idx]) for k in range(3))
        p = self.per_seed[0]
        flat = _episode_batch(self.images, p.dataset, cls.flatten(0, 1), rot.flatten(0, 1), img.flatten(0, 1),
                              p.k_shot, self.dtype, self.device)
        n = len(pairs)
        return Batch(*(t.unflatten(0, (n, -1)) for t in (flat.xs, flat.ys, flat.xq, flat.yq)))


def _episode_batch(images: torch.Tensor, dataset: str, cls, rot, img, k_shot: int, dtype, device) -> Batch:
    """Gather (tasks, n_way, shots) images, rotate, scale, and split into support and query."""
    device = images.device if device is None else device
    cls, rot, img = cls.to(images.device), rot.to(images.device), img.to(images.device)
    tasks, n_way, shots = img.shape
    x = images[cls.unsqueeze(-1).expand_as(img), img].to(device=device, dtype=dtype) / 255.0
    if dataset == OMNIGLOT:
        x = 1.0 - x
        r = rot.to(device).view(tasks, n_way, 1, 1, 1, 1).expand_as(x)
        x = torch.where(r == 1, x.rot90(1, (-2, -1)), x)
        x = torch.where(r == 2, x.rot90(2, (-2, -1)), x)
        x = torch.where(r == 3, x.rot90(3, (-2, -1)), x)
    labels = torch.arange(n_way, device=device).view(1, n_way, 1).expand(tasks, n_way, shots)
    xs, xq = x[:, :, :k_shot].flatten(1, 2), x[:, :, k_shot:].flatten(1, 2)
    ys, yq = labels[:, :, :k_shot].flatten(1, 2), labels[:, :, k_shot:].flatten(1, 2)
    return Batch(xs.contiguous(), ys.contiguous(), xq.contiguous(), yq.contiguous())


_IMAGES: dict = {}


def _split_images(dataset: str, path: str, split: str) -> torch.Tensor:
    """The split's images as one uint8 tensor (classes, per class, C, H, W), loaded once per process."""
    key = (dataset, path, split)
    if key not in _IMAGES:
        from . import data

        arrays = data.load_prepared(path)
        if dataset == OMNIGLOT:
            chars = data.omniglot_split()[split]
            images = torch.from_numpy(arrays["images"][chars]).unsqueeze(2)  # (1200, 20, 1, 28, 28)
        elif dataset == MINIIMAGENET:
            images = torch.from_numpy(arrays["images"]).permute(0, 1, 4, 2, 3).contiguous()
        else:
            raise ValueError(f"unknown dataset {dataset!r}")
        _IMAGES[key] = images
    return _IMAGES[key]


# The families the table of problems names, by class name (problems.Problem.family).
FAMILIES = {cls.__name__: cls for cls in (LinearRegressionTask, SinusoidTasks, FewShotTasks)}


def family(problem: str) -> type:
    """The task family of the problem called ``problem``."""
    return FAMILIES[problems.get(problem).family]
