"""Precise BatchNorm statistics (SPEC.md): after a stage, replace the running mean/var of every BN layer by the
plain average of batch statistics over many train-mode batches.

PyTorch recipe: reset running stats, set ``momentum=None`` (cumulative moving average), forward train-mode
batches under ``no_grad``, restore the momenta.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import torch
from torch import nn

log = logging.getLogger(__name__)


def bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: Iterable[torch.Tensor], num_batches: int,
                       forward: Callable[[torch.Tensor], object] | None = None) -> int:
    """Recompute BN running statistics from up to ``num_batches`` normalised input batches ``(B, 3, H, W)``.

    ``forward`` runs one batch (default ``model(x)``). Returns the number of batches used; with none the
    statistics are left unchanged. The model's train/eval mode is restored.
    """
    layers = bn_layers(model)
    if not layers or num_batches <= 0:
        return 0
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone()) for m in layers]
    was_training = model.training
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    model.train()
    used = 0
    run = forward or model
    for x in batches:
        if used >= num_batches:
            break
        run(x)
        used += 1
    for m, (momentum, mean, var) in zip(layers, saved, strict=True):
        m.momentum = momentum
        if used == 0:
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
    model.train(was_training)
    log.info("precise BN: statistics of %d layers from %d batches", len(layers), used)
    return used
