"""PSPNet (Zhao et al.): dilated ResNet-50 (output stride 8) + pyramid pooling module + auxiliary head.

Backbone: torchvision's ResNet-50 with ``replace_stride_with_dilation=[False, True, True]``. Pyramid pooling:
for bins 1, 2, 3, 6, adaptive average pool → 1×1 conv to C_in/4 → BN → ReLU → bilinear upsample, all
concatenated with the input. Head: 3×3 conv 512 + BN + ReLU + Dropout 0.1 + 1×1 → classes. The auxiliary
head (3×3 conv 256 + BN + ReLU + Dropout 0.1 + 1×1, on layer3) runs in training mode only (loss weight 0.4 in
the paper). Both outputs are bilinearly upsampled to the input size (``align_corners=False``; the Caffe
original's interp layer corresponds to ``True``).

``width`` scales every channel count — backbone included — so a width-0.25 PSPNet is a genuinely small
model; ImageNet weights fit width 1.0 only. Input ``(B, 3, H, W)`` normalised RGB, any H, W ≥ 8. Output
``{"out": (B, C, H, W)}`` raw scores, plus ``"aux"`` of the same shape in training mode. Training needs
batch ≥ 2 (BN over the 1×1 pyramid bin).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deconv_gui.models.backbones import imagenet_weights_fit
from deconv_gui.models.layers import ConvBNReLU, init_kaiming, scaled_channels
from deconv_gui.models.resnet_encoder import ResNetEncoder

PYRAMID_BINS = (1, 2, 3, 6)


class PyramidPooling(nn.Module):
    """``(B, C, h, w)`` → ``(B, 2C, h, w)``: the input concatenated with one C/4 branch per bin."""

    def __init__(self, in_channels: int, bins: Sequence[int] = PYRAMID_BINS) -> None:
        super().__init__()
        reduced = in_channels // len(bins)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), ConvBNReLU(nn.Conv2d(in_channels, reduced, 1, bias=False)))
            for b in bins
        )
        self.out_channels = in_channels + reduced * len(bins)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(branch(x), size=size, mode="bilinear", align_corners=False)
            for branch in self.branches
        ]
        return torch.cat([x, *pooled], dim=1)


def _head(in_channels: int, mid_channels: int, num_classes: int) -> nn.Sequential:
    """3×3 conv + BN + ReLU + Dropout 0.1 + 1×1 conv → classes."""
    return nn.Sequential(
        ConvBNReLU(nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False)),
        nn.Dropout2d(0.1),
        nn.Conv2d(mid_channels, num_classes, 1),
    )


class PSPNet(nn.Module):
    """See the module docstring. Build it with :func:`pspnet`."""

    def __init__(self, num_classes: int, width: float = 1.0, aux: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.width = width
        self.backbone = ResNetEncoder(50, width=width, dilate=(False, True, True))
        c3, c4 = self.backbone.stage_channels[2:]
        self.ppm = PyramidPooling(c4)
        self.head = _head(self.ppm.out_channels, scaled_channels(512, width), num_classes)
        self.aux_head = _head(c3, scaled_channels(256, width), num_classes) if aux else None
        init_kaiming(self.ppm)
        init_kaiming(self.head)
        if self.aux_head is not None:
            init_kaiming(self.aux_head)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``(B, 3, H, W)`` → ``{"out": (B, C, H, W)}`` (+ ``"aux"`` in training mode) raw scores."""
        size = x.shape[-2:]
        _, _, c3, c4 = self.backbone(x)
        out = self.head(self.ppm(c4))
        result = {"out": F.interpolate(out, size=size, mode="bilinear", align_corners=False)}
        if self.training and self.aux_head is not None:
            aux = self.aux_head(c3)
            result["aux"] = F.interpolate(aux, size=size, mode="bilinear", align_corners=False)
        return result


def pspnet(
    *, num_classes: int, width: float = 1.0, pretrained_backbone: bool = False, aux: bool = True
) -> PSPNet:
    """PSPNet with ``num_classes`` outputs and every channel count scaled by ``width`` (≥ 8).

    ``pretrained_backbone`` loads torchvision's ImageNet ResNet-50; it needs width 1.0 and otherwise (or
    offline) leaves the random init after one warning line. ``aux=False`` drops the auxiliary head (and its
    parameters, so its checkpoints do not load into an ``aux=True`` model).
    """
    model = PSPNet(num_classes, width, aux=aux)
    if pretrained_backbone and imagenet_weights_fit("resnet50", width):
        model.backbone.load_imagenet()
    return model
