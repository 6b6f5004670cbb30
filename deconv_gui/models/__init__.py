"""The model zoo: DeconvNet, FCN-8s, PSPNet and LinkNet, built by name through :mod:`.registry`.

Every model takes ``(B, 3, H, W)`` normalised RGB and returns ``{"out": (B, C, H, W)}`` raw class scores
(PSPNet adds ``"aux"`` in training mode). ``width`` scales every channel count (≥ 8 each) for small, fast
variants; ImageNet backbone weights fit width 1.0 only. :func:`~.layers.count_macs` gives the analytic
multiply-accumulate count of a forward pass.

PSPNet and LinkNet (ResNet encoders from torchvision, whose import takes ~1.2 s) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from deconv_gui.models.deconvnet import DeconvNet, deconvnet
from deconv_gui.models.fcn import FCN8s, fcn8s
from deconv_gui.models.layers import count_macs
from deconv_gui.models.registry import (
    INSTANCE_MODELS,
    MODEL_BUILDERS,
    WHOLE_IMAGE_MODELS,
    build_model,
    input_multiple,
    model_from_checkpoint,
)

_LAZY = {"LinkNet": "linknet", "linknet": "linknet", "PSPNet": "pspnet", "pspnet": "pspnet"}


def __getattr__(name: str) -> Any:
    """PSPNet / LinkNet and their builders, imported when first asked for."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"deconv_gui.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'deconv_gui.models' has no attribute {name!r}")

__all__ = [
    "INSTANCE_MODELS",
    "MODEL_BUILDERS",
    "WHOLE_IMAGE_MODELS",
    "DeconvNet",
    "FCN8s",
    "LinkNet",
    "PSPNet",
    "build_model",
    "count_macs",
    "deconvnet",
    "fcn8s",
    "input_multiple",
    "linknet",
    "model_from_checkpoint",
    "pspnet",
]
