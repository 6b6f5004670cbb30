"""Fold eval-mode BatchNorm layers into the convolution before them (exactly the same function, less work).

For ``y = BN(conv(x))`` with running statistics, ``BN(z) = γ (z − μ)/√(σ² + ε) + β`` is per output channel, so
it folds into the convolution's weight and bias. Works for ``Conv2d`` (out channels on dim 0) and
``ConvTranspose2d`` (out channels on dim 1, groups = 1). Only pairs that sit next to each other inside an
``nn.Sequential`` are folded — the models are written that way — and the BN becomes ``nn.Identity``.
"""

from __future__ import annotations

import torch
from torch import nn


def _fold(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm without running statistics cannot be folded")
    scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
    with torch.no_grad():
        if isinstance(conv, nn.ConvTranspose2d):
            conv.weight.mul_(scale.view(1, -1, 1, 1))
        else:
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = bias * scale + shift
        conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype), requires_grad=False)


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ``Sequential`` conv→BN pair of ``model`` **in place** (no copy: the full DeconvNet is 1 GB) and
    return it in eval mode. The model can no longer be trained afterwards."""
    model = model.eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules.keys())
        for a, b in zip(names, names[1:], strict=False):
            conv, bn = module._modules[a], module._modules[b]
            foldable = isinstance(conv, nn.Conv2d) or (isinstance(conv, nn.ConvTranspose2d) and conv.groups == 1)
            if foldable and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                _fold(conv, bn)  # type: ignore[arg-type]
                module._modules[b] = nn.Identity()
    return model
