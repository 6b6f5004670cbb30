"""HED, Holistically-Nested Edge Detection (Xie & Tu, ICCV 2015): a torch module and thin edges for Edge Boxes.

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
from deconv_gui.proposals.edge_maps import as_rgb_uint8, orientation_map, suppress_non_maxima


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


_CACHED: dict[str, HED] = {}
#: HED edges are scaled by this before NMS: HED's probabilities reach 1, the gradient edges stay below 0.5,
#: and EdgeBoxes' thresholds (edgeMinMag 0.1, clusterMinMag 0.5) were tuned for maps in that range.
HED_EDGE_SCALE = 0.5


def hed_available() -> bool:
    """Whether the HED weights file is installed (no file read)."""
    from deconv_gui.io.hed_weights import find_hed_file

    return find_hed_file() is not None


class HedEdgeDetector:
    """Thin HED edges for Edge Boxes: HED probabilities × :data:`HED_EDGE_SCALE`, orientation from the map
    (Dollár's formula) and non-maximum suppression — the same thinning as the built-in gradient edges.

    ``resolution`` scales the image before HED (0.5: a quarter of the work; the map is resized back), the
    weights load once per process. Raises CheckpointError when the weights are missing or unreadable.
    """

    def __init__(self, resolution: float = 0.5) -> None:
        from deconv_gui.io.hed_weights import read_hed_weights, require_hed_file

        key = str(require_hed_file())
        if key not in _CACHED:
            _CACHED[key] = HED.from_weights(read_hed_weights(key))
        self.model = _CACHED[key]
        self.resolution = float(resolution)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3) uint8`` RGB → ``(H, W) float32`` HED edge probabilities."""
        import cv2

        h, w = image.shape[:2]
        small = image
        if self.resolution != 1.0:
            size = (max(16, round(w * self.resolution)), max(16, round(h * self.resolution)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        with torch.inference_mode():
            prob = self.model(caffe_input(small))[0, 0].numpy()
        if prob.shape != (h, w):
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        return prob.astype(np.float32)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(edges, orientation)``, ``(H, W) float32`` each, for EdgeBoxes."""
        prob = self.probabilities(as_rgb_uint8(image)) * HED_EDGE_SCALE
        orientation = orientation_map(prob)
        return suppress_non_maxima(prob, orientation), orientation
