"""The paper's regression models, as modules whose parameters the engine passes explicitly."""

from __future__ import annotations

import copy

import torch
from torch import nn


def sinusoid_mlp() -> nn.Module:
    """The 1-40-40-1 ReLU network of Finn et al. (2017), used in the paper's Section 4.1."""
    return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1))


def linear_model() -> nn.Module:
    """y = w x + b: 'the same architecture as the true function' (the paper's Appendix C)."""
    return nn.Linear(1, 1)


MODELS = {"sinusoid_mlp": sinusoid_mlp, "linear": linear_model}


def build(name: str) -> nn.Module:
    return MODELS[name]()


def initial_params(model: nn.Module, seed: int, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """PyTorch's default initialisation, drawn from ``seed`` alone (not from global RNG state).

    Drawn in float32 whatever ``dtype`` is, so a float64 test and a float32 run start alike.
    """
    model = copy.deepcopy(model).float().cpu()
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    finally:
        torch.random.set_rng_state(state)
    return {k: v.detach().clone().to(dtype) for k, v in model.named_parameters()}


def param_count(params: dict[str, torch.Tensor]) -> int:
    return sum(v.numel() for v in params.values())
