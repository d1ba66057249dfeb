"""The paper's models, as modules whose parameters the engine passes explicitly."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def sinusoid_mlp() -> nn.Module:
    """The 1-40-40-1 ReLU network of Finn et al. (2017), used in the paper's Section 4.1."""
    return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1))


def linear_model() -> nn.Module:
    """y = w x + b: 'the same architecture as the true function' (the paper's Appendix C)."""
    return nn.Linear(1, 1)


class TaskBatchNorm(nn.Module):
    """Batch norm that always normalises with the statistics of the batch it is given.

    MAML implementations (Finn et al.'s included) keep batch norm in training mode
    during meta-training *and* meta-testing and never use running averages: each
    forward pass of one task (its support set in the inner steps, its query set in
    the meta-loss) is normalised by that pass's own mean and variance. Modules with
    running statistics would leak one task's data into the next through the buffers,
    and ``eval()`` would silently switch to averages that MAML never learns with.
    This module has no buffers, so the behaviour cannot change with mode or vmap.
    Inputs are (batch, channels, ...) of any number of trailing dimensions, as for
    torch's BatchNorm1d/2d/3d; ``affine=False``: no scale and shift.
    """

    def __init__(self, channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None

    def forward(self, x: torch.Tensor, fused: bool = False) -> torch.Tensor:
        if fused:
            # F.batch_norm's kernel: the same numbers and right first derivatives, and 1.3-2x
            # faster per meta-iteration, but under torch.func (torch 2.14) its second-order
            # gradient is off by ~0.2-0.4% on this network. Only passes that are differentiated
            # once may use it (ConvNet's ``differentiated_once``).
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        # Written out: exact higher derivatives (tests/test_images.py checks the meta-gradient
        # against finite differences). The per-channel scale and shift are folded first, so
        # the image-sized work is one pass.
        shape = (1, -1) + (1,) * (x.dim() - 2)
        var, mean = torch.var_mean(x, dim=(0, *range(2, x.dim())), unbiased=False, keepdim=True)
        scale = torch.rsqrt(var + self.eps)
        if self.weight is None:
            return (x - mean) * scale
        scale = self.weight.view(shape) * scale
        return torch.addcmul(self.bias.view(shape) - mean * scale, x, scale)


def with_task_batch_norm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose batch norms that normalise by the batch (training mode, or no running
    statistics) are ``TaskBatchNorm``s with the same scale and shift, under the same names.

    torch's BatchNorm in training mode updates its running statistics in place, which ``torch.func``
    refuses inside ``grad``, and its kernel's second derivatives are off under ``torch.func``; the
    written-out form computes the same function with exact derivatives of every order. A batch norm in
    eval mode with running statistics is a fixed affine map: it is kept, its statistics are constants.
    """
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        if not (module.training or module.running_mean is None):
            continue
        written = TaskBatchNorm(module.num_features, module.eps, module.affine)
        if module.affine:
            written.weight, written.bias = module.weight, module.bias
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, written)
    return model


def unfold_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, padding: int):
    """A convolution as im2col and one matrix product: the same function as F.conv2d.

    vmapped over cells and tasks, F.conv2d with per-(cell, task) weights becomes one grouped
    convolution with cells x tasks groups; this form becomes one batched matrix product instead,
    the shape GPUs' matrix units are built for. The grid picks whichever is faster on its device.
    """
    n, _, h, w = x.shape
    k = weight.shape[-1]
    cols = F.unfold(x, k, padding=padding, stride=stride)                     # (n, c k k, positions)
    out = torch.matmul(weight.flatten(1), cols) + bias.view(-1, 1)           # (n, filters, positions)
    return out.view(n, weight.shape[0], (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1)


class ConvNet(nn.Module):
    """The 4-block CNN of Vinyals et al. (2016) as used by Finn et al. (2017).

    Each block is conv 3x3 -> batch norm -> ReLU, then either a stride of 2 in the
    convolution (Omniglot: 64 filters, features averaged over space at the end, as in
    Finn et al.'s code) or 2x2 max-pooling (MiniImagenet: 32 filters, flattened).
    ``conv``: "native" (F.conv2d) or "unfold" (``unfold_conv2d``), the same function.
    """

    CONVS = ("native", "unfold")

    def __init__(self, in_channels: int, filters: int, ways: int, image_size: int, strided: bool,
                 conv: str = "native"):
        super().__init__()
        if conv not in self.CONVS:
            raise ValueError(f"conv must be one of {self.CONVS}, got {conv!r}")
        self.strided, self.conv = strided, conv
        self.input_shape = (in_channels, image_size, image_size)  # one image, channels first
        blocks, c = [], in_channels
        for _ in range(4):
            conv = nn.Conv2d(c, filters, 3, stride=2 if strided else 1, padding=1)
            blocks += [conv, TaskBatchNorm(filters), nn.ReLU()]
            if not strided:
                blocks.append(nn.MaxPool2d(2))
            c = filters
        self.features = nn.Sequential(*blocks)
        size = image_size
        for _ in range(4):
            size = (size + 1) // 2 if strided else size // 2
        self.head = nn.Linear(filters if strided else filters * size * size, ways)

    # forward's keywords for a pass that is differentiated at most once (maml.query_loss)
    first_order_kwargs = {"differentiated_once": True}

    def forward(self, x: torch.Tensor, differentiated_once: bool = False) -> torch.Tensor:
        """``differentiated_once``: batch norm by F.batch_norm's kernel (see TaskBatchNorm)."""
        # On CPU, oneDNN computes the first layer's weight gradient ~10x faster from a
        # channels-last input (measured: 1.9 ms vs 19.8 ms for 75 Omniglot images).
        # vmap cannot change memory formats: batched inputs keep theirs.
        try:
            x = x.contiguous(memory_format=torch.channels_last)
        except RuntimeError:
            pass
        h = x
        for layer in self.features:
            if isinstance(layer, TaskBatchNorm):
                h = layer(h, fused=differentiated_once)
            elif isinstance(layer, nn.Conv2d) and self.conv == "unfold":
                h = unfold_conv2d(h, layer.weight, layer.bias, layer.stride[0], layer.padding[0])
            else:
                h = layer(h)
        h = h.mean(dim=(2, 3)) if self.strided else h.flatten(1)
        return self.head(h)


def omniglot_cnn(ways: int = 5, conv: str = "native") -> nn.Module:
    return ConvNet(in_channels=1, filters=64, ways=ways, image_size=28, strided=True, conv=conv)


def miniimagenet_cnn(ways: int = 5, conv: str = "native") -> nn.Module:
    return ConvNet(in_channels=3, filters=32, ways=ways, image_size=84, strided=False, conv=conv)


MODELS = {"sinusoid_mlp": sinusoid_mlp, "linear": linear_model,
          "omniglot_cnn": omniglot_cnn, "miniimagenet_cnn": miniimagenet_cnn}


def build(name: str, conv: str | None = None) -> nn.Module:
    """The named model; ``conv`` picks the CNNs' convolution (see ConvNet), the others have none."""
    return MODELS[name]() if conv is None else MODELS[name](conv=conv)


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
