"""Task distributions of the paper's regression experiments.

A batch holds tensors shaped (tasks, points, features): ``xs, ys`` adapt the
parameters in the inner step, ``xq, yq`` score the adapted parameters.
Every batch is a pure function of (seed, iteration), so a grid of cells can
share one task stream and a resumed run sees the tasks it would have seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Batch:
    xs: torch.Tensor
    ys: torch.Tensor
    xq: torch.Tensor
    yq: torch.Tensor

    def to(self, device=None, dtype=None) -> "Batch":
        return Batch(*(t.to(device=device, dtype=dtype) for t in (self.xs, self.ys, self.xq, self.yq)))


def _generator(seed: int, stream: int) -> torch.Generator:
    # Distinct, reproducible streams per (seed, iteration): 2**20 iterations per seed.
    return torch.Generator().manual_seed(int(seed) * 1_048_576 + int(stream))


@dataclass(frozen=True)
class SinusoidTasks:
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

    def sample(self, iteration: int, dtype=torch.float32) -> Batch:
        g = _generator(self.seed, iteration)
        amp = _uniform(g, (self.tasks, 1, 1), self.amplitude)
        phase = _uniform(g, (self.tasks, 1, 1), self.phase)
        x = _uniform(g, (self.tasks, self.k_support + self.k_query, 1), self.x_range)
        y = amp * torch.sin(x - phase)
        k = self.k_support
        return Batch(x[:, :k], y[:, :k], x[:, k:], y[:, k:]).to(dtype=dtype)


@dataclass(frozen=True)
class LinearRegressionTask:
    """One task y = a x + b with a, b ~ U[0, 5], x ~ U[-5, 5] (the paper's Appendix C).

    As in the paper's analysis, the same points are used for the inner step and for
    the meta-step, and the task never changes: MAML then descends a fixed quadratic.
    """

    points: int = 10
    slope: tuple[float, float] = (0.0, 5.0)
    bias: tuple[float, float] = (0.0, 5.0)
    x_range: tuple[float, float] = (-5.0, 5.0)
    seed: int = 0

    def sample(self, iteration: int = 0, dtype=torch.float32) -> Batch:
        g = _generator(self.seed, 0)  # one fixed task: the iteration is ignored on purpose
        a = _uniform(g, (1, 1, 1), self.slope)
        b = _uniform(g, (1, 1, 1), self.bias)
        x = _uniform(g, (1, self.points, 1), self.x_range)
        y = a * x + b
        return Batch(x, y, x, y).to(dtype=dtype)


def _uniform(g: torch.Generator, shape, bounds) -> torch.Tensor:
    lo, hi = bounds
    return torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo
