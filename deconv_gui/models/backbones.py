"""Backbones and their ImageNet weights.

* :func:`imagenet_state_dict` fetches torchvision's ImageNet weights (``IMAGENET1K_V1``) for ``vgg16``,
  ``resnet18`` or ``resnet50`` — from the torch hub cache, or by download when online. If that fails it logs
  one warning line and returns ``None``; the caller keeps its random init.
* :class:`ResNetEncoder` is torchvision's ResNet minus ``avgpool``/``fc`` with every channel count scaled by
  ``width``. At width 1.0 its parameter names and shapes equal torchvision's, so ImageNet weights load as is.
* :func:`load_vgg16_convs` copies VGG16's 13 conv layers and (reshaped) fc6/fc7 into our convolutions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from deconv_gui.models.layers import init_kaiming, scaled_channels

log = logging.getLogger(__name__)

_RESNET_LAYOUTS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


def _download_state_dict(arch: str) -> dict[str, Tensor]:
    """torchvision's ``IMAGENET1K_V1`` state dict for ``arch`` (cache, else download; raises when neither)."""
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


class ResNetEncoder(ResNet):
    """ResNet stem + ``layer1..layer4`` with channel counts scaled by ``width``; no ``avgpool`` / ``fc``.

    Reuses torchvision's ``ResNet._make_layer`` (and so its dilation logic) through the attributes it reads.
    ``forward(x (B, 3, H, W))`` returns the four stage outputs ``[c1, c2, c3, c4]`` at strides 4, 8, 16, 32
    (or 4, 8, 8, 8 with ``dilate=(False, True, True)``) with :attr:`stage_channels` channels.
    """

    def __init__(
        self, depth: int = 18, *, width: float = 1.0, dilate: Sequence[bool] = (False, False, False)
    ) -> None:
        if depth not in _RESNET_LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(_RESNET_LAYOUTS)}, got {depth}")
        block, layers = _RESNET_LAYOUTS[depth]
        # ResNet.__init__ hard-codes the widths: set up only the attributes that _make_layer reads
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.groups, self.base_width, self.dilation = 1, 64, 1
        self.inplanes = scaled_channels(64, width)
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        planes = [scaled_channels(c, width) for c in (64, 128, 256, 512)]
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2, dilate=dilate[2])
        self.stage_channels: tuple[int, ...] = tuple(p * block.expansion for p in planes)
        self.depth = depth
        init_kaiming(self)
        for m in self.modules():  # torchvision's zero_init_residual=False keeps BN weights at 1: same here
            if isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)

    def forward(self, x: Tensor) -> list[Tensor]:  # type: ignore[override]
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [c1, c2, c3, c4]

    def load_imagenet(self) -> bool:
        """Load torchvision's ImageNet weights (width 1.0 only); ``False`` (after a warning) if unavailable."""
        state = imagenet_state_dict(f"resnet{self.depth}")
        if state is None:
            return False
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        self.load_state_dict(state, strict=True)
        return True


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
