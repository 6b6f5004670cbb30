"""Backbones and their ImageNet weights.

* :func:`imagenet_state_dict` fetches torchvision's ImageNet weights (``IMAGENET1K_V1``) for ``vgg16``,
  ``resnet18`` or ``resnet50`` — from the torch hub cache, or by download when online. If that fails it logs
  one warning line and returns ``None``; the caller keeps its random init.
* :class:`~deconv_gui.models.resnet_encoder.ResNetEncoder` (PSPNet's and LinkNet's) lives in its own module:
  importing torchvision costs ~1.2 s (it pulls in torch._dynamo), which VGG16 models never pay.
* :func:`load_vgg16_convs` copies VGG16's 13 conv layers and (reshaped) fc6/fc7 into our convolutions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


def _download_state_dict(arch: str) -> dict[str, Tensor]:
    """torchvision's ``IMAGENET1K_V1`` state dict for ``arch`` (cache, else download; raises when neither)."""
    import torchvision  # ~1.2 s: only when ImageNet weights are asked for

    weights = torchvision.models.get_model_weights(arch)["IMAGENET1K_V1"]
    return weights.get_state_dict(progress=False)


def imagenet_state_dict(arch: str) -> dict[str, Tensor] | None:
    """ImageNet weights of torchvision's ``arch`` (e.g. ``"vgg16"``), or ``None`` after one warning line."""
    try:
        return _download_state_dict(arch)
    except Exception as err:  # offline, not cached, corrupt cache, proxy errors...: all mean "random init"
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        log.warning("ImageNet weights for %s not available offline (%s); using random init", arch, reason)
        return None


def imagenet_weights_fit(arch: str, width: float) -> bool:
    """Whether ImageNet weights of ``arch`` can be loaded at ``width`` (only 1.0); logs one warning if not."""
    if width == 1.0:
        return True
    log.warning("ImageNet weights for %s only fit width 1.0 (got %s); using random init", arch, width)
    return False


def load_vgg16_convs(
    state: dict[str, Tensor], convs: Sequence[nn.Conv2d], fc6: nn.Conv2d, fc7: nn.Conv2d
) -> None:
    """Copy torchvision VGG16 weights into 13 conv layers and the convolutional fc6 (7×7) / fc7 (1×1).

    ``state`` is torchvision's ``vgg16`` state dict (``features.{0,2,5,...}``, ``classifier.{0,3}``); fc6's
    ``(4096, 25088)`` matrix becomes ``(4096, 512, 7, 7)``, fc7's ``(4096, 4096)`` becomes ``(4096, 4096, 1, 1)``.
    Biases are copied where our layer has one. Raises ``ValueError`` on a shape mismatch.
    """
    conv_keys = sorted(
        {int(k.split(".")[1]) for k in state if k.startswith("features.") and k.endswith(".weight")}
    )
    if len(conv_keys) != len(convs):
        raise ValueError(f"VGG16 has {len(conv_keys)} convs, model has {len(convs)}")
    pairs: list[tuple[nn.Conv2d, str, tuple[int, ...] | None]] = [
        (conv, f"features.{i}", None) for conv, i in zip(convs, conv_keys, strict=True)
    ]
    pairs += [(fc6, "classifier.0", tuple(fc6.weight.shape)), (fc7, "classifier.3", tuple(fc7.weight.shape))]
    with torch.no_grad():
        for conv, prefix, shape in pairs:
            weight = state[f"{prefix}.weight"]
            if shape is not None:
                weight = weight.reshape(shape)
            if weight.shape != conv.weight.shape:
                raise ValueError(
                    f"{prefix}.weight has shape {tuple(weight.shape)}, layer wants {tuple(conv.weight.shape)}"
                )
            conv.weight.copy_(weight)
            if conv.bias is not None:
                conv.bias.copy_(state[f"{prefix}.bias"])
