"""Optimizer, learning-rate schedule and loss of a training run.

The schedule is a pure function of the optimizer-step count (:func:`lr_factor`), so resuming needs no scheduler
object state: the engine sets every group's lr from ``(iteration, config)`` before each step.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deconv_gui.training.config import TrainConfig

IGNORE_INDEX = 255


def parameter_groups(model: nn.Module, weight_decay: float, encoder_lr_scale: float = 1.0) -> list[dict]:
    """Weights of convolutions/linear layers get ``weight_decay``; biases and BN parameters (every parameter
    with ≤ 1 dimension) get none, as in the paper ("no weight decay on biases"). With ``encoder_lr_scale`` ≠ 1
    the VGG16 encoder's parameters form their own two groups whose lr is scaled (``"lr_scale"``, read by
    :func:`set_lr`). Frozen parameters are left out; empty groups are dropped."""
    encoder_ids: set[int] = set()
    if encoder_lr_scale != 1.0 and hasattr(model, "encoder_stages"):
        encoder_ids = {id(p) for stage in model.encoder_stages for p in stage.parameters()}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        groups.setdefault((id(p) in encoder_ids, p.ndim > 1), []).append(p)
    return [
        {"params": params, "weight_decay": weight_decay if decays else 0.0,
         "lr_scale": encoder_lr_scale if is_encoder else 1.0}
        for (is_encoder, decays), params in sorted(groups.items(), key=lambda kv: (kv[0][0], not kv[0][1]))
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov off, as Caffe), RMSprop or Adam over :func:`parameter_groups` at ``cfg.lr``."""
    groups = parameter_groups(model, cfg.weight_decay, cfg.encoder_lr_scale)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, alpha=0.99, eps=1e-8)
    return torch.optim.Adam(groups, lr=cfg.lr)


def lr_factor(iteration: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr`` for optimizer step ``iteration`` (0-based).

    step: ``gamma ** (iteration // step_size)``; poly: ``(1 − iteration / iterations) ** poly_power``;
    constant: 1. A linear warm-up from 1/warmup to 1 over ``warmup_iterations`` multiplies any of them.
    """
    if cfg.schedule == "step":
        factor = cfg.gamma ** (iteration // cfg.step_size)
    elif cfg.schedule == "poly":
        factor = max(0.0, 1.0 - iteration / cfg.iterations) ** cfg.poly_power
    else:
        factor = 1.0
    if cfg.warmup_iterations > 0 and iteration < cfg.warmup_iterations:
        factor *= (iteration + 1) / cfg.warmup_iterations
    return float(factor)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate: ``lr`` times the group's ``"lr_scale"`` (1 when absent)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


class SegmentationLoss(nn.Module):
    """Cross-entropy over pixels, void (255) ignored, optional per-class weights ``(C,) float32``, plus
    ``aux_weight ×`` the same loss on an ``"aux"`` output when the model returns one (PSPNet)."""

    def __init__(self, class_weights: np.ndarray | None = None, aux_weight: float = 0.4) -> None:
        super().__init__()
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("weight", weight)
        self.aux_weight = aux_weight

    def forward(self, outputs: dict[str, Tensor], target: Tensor) -> Tensor:
        """``outputs["out"]`` ``(B, C, H, W)`` raw scores, ``target`` ``(B, H, W)`` int64 → scalar loss."""
        if not bool((target != IGNORE_INDEX).any()):  # an all-void batch: zero loss, not nan
            return outputs["out"].float().sum() * 0.0
        loss = F.cross_entropy(outputs["out"].float(), target, weight=self.weight, ignore_index=IGNORE_INDEX)
        if "aux" in outputs and self.aux_weight > 0:
            loss = loss + self.aux_weight * F.cross_entropy(
                outputs["aux"].float(), target, weight=self.weight, ignore_index=IGNORE_INDEX
            )
        return loss
