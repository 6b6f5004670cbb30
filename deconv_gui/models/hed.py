"""HED, Holistically-Nested Edge Detection (Xie & Tu, ICCV 2015), as a torch module for Edge Box edge maps.

VGG16's 13 convs (3×3 pad 1 + ReLU; 2×2/2 max-pool before blocks 2–5), a 1×1 side output on the last conv of
each block, each side bilinearly resized to the input, a 1×1 fuse over the five, and a sigmoid. Weights from
:func:`deconv_gui.io.hed_weights.read_hed_weights` (HED and VGG: Simonyan & Zisserman — cite both).

Input ``(B, 3, H, W)`` float32 **BGR, 0..255 minus** :data:`~deconv_gui.io.hed_weights.CAFFE_BGR_MEAN`
(:func:`caffe_input` makes it from RGB uint8); output ``(B, 1, H, W)`` edge probabilities in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deconv_gui.io.hed_weights import CAFFE_BGR_MEAN, VGG16_BLOCK_CONVS, HedWeights


def caffe_input(rgb: np.ndarray) -> Tensor:
    """``(H, W, 3) uint8`` RGB → ``(1, 3, H, W) float32`` BGR 0..255 minus the Caffe mean."""
    bgr = torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1])).float()
    bgr = bgr - torch.tensor(CAFFE_BGR_MEAN, dtype=torch.float32)
    return bgr.permute(2, 0, 1).unsqueeze(0).contiguous()


class HED(nn.Module):
    """See the module docstring; build it with :meth:`from_weights`."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512, 512)) -> None:
        super().__init__()
        blocks, cin = [], 3
        for count, cout in zip(VGG16_BLOCK_CONVS, widths, strict=True):
            layers: list[nn.Module] = []
            for _ in range(count):
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
                cin = cout
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.sides = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in widths)
        self.fuse = nn.Conv2d(5, 1, 1)

    @classmethod
    def from_weights(cls, weights: HedWeights) -> HED:
        """A HED in eval mode holding ``weights``' tensors (its widths are the file's)."""
        model = cls(tuple(int(w.shape[1]) for w, _ in weights.sides))
        convs = [m for block in model.blocks for m in block if isinstance(m, nn.Conv2d)]
        pairs = [*zip(convs, weights.convs, strict=True), *zip(model.sides, weights.sides, strict=True),
                 (model.fuse, weights.fuse)]
        with torch.no_grad():
            for conv, (w, b) in pairs:
                conv.weight.copy_(torch.from_numpy(w))
                conv.bias.copy_(torch.from_numpy(b))
        return model.eval()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` Caffe-style input → ``(B, 1, H, W)`` fused edge probability."""
        size = x.shape[-2:]
        sides = []
        for k, (block, side) in enumerate(zip(self.blocks, self.sides, strict=True)):
            if k > 0:
                x = F.max_pool2d(x, 2, stride=2, ceil_mode=True)
            x = block(x)
            sides.append(F.interpolate(side(x), size=size, mode="bilinear", align_corners=False))
        return torch.sigmoid(self.fuse(torch.cat(sides, dim=1)))
