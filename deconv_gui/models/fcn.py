"""FCN-8s (Long, Shelhamer, Darrell): VGG16 without BN, fully convolutional fc6/fc7, three-stream skip fusion.

Alignment — the one departure from the Caffe original, by design. The original pads the first conv by 100
pixels and crops each upsampled map by hand-derived offsets (5, 9, 31). Here the input is zero-padded at the
bottom/right to a multiple of 32, every conv keeps its size (3×3 pad 1; fc6 7×7 pad 3), pools are 2×2/2, so
pool3/pool4/pool5 are exactly 1/8, 1/16, 1/32 of the padded input. Each upsampler is a transposed conv with
kernel 2f, stride f, padding f/2, which places coarse pixel ``i`` at its footprint centre ``f·i + (f-1)/2``
(see :func:`~deconv_gui.models.layers.bilinear_upsampler`), so all streams and the output line up with the
input pixel-exactly; the output is cropped back to the input's H×W. Any input size works.

Init as in FCN: upsamplers bilinear (learnable, no bias), score_pool4 / score_pool3 zero (the skips start as
no-ops). score_fr gets N(0, 0.01²) rather than FCN's zeros so an untrained model is not constant. The
"at-once" variant's fixed pool4 ×0.01 / pool3 ×0.0001 scaling is not used.

``geometry="caffe"`` builds the original layout instead, for weights imported from Caffe
(:mod:`deconv_gui.models.caffe_import`): conv1_1 pad 100, ceil-mode pools (Caffe's), fc6 7×7 unpadded,
upsamplers 4×4/2 (``upscore2`` with a bias, as ``score2`` has in ``fcn-8s-pascal``), 4×4/2 and 16×16/8
without padding, and the crops at offsets 5 (pool4 scores), 9 (pool3 scores) and 31 (the output), so the
output equals the original net's on the same input (any size ≥ 1 pixel; no padding to a multiple).

Input ``(B, 3, H, W)`` normalised RGB, output ``{"out": (B, C, H, W)}`` raw scores.
"""

from __future__ import annotations

from torch import Tensor, nn

from deconv_gui.models.backbones import imagenet_state_dict, imagenet_weights_fit, load_vgg16_convs
from deconv_gui.models.deconvnet import ENCODER_STAGES, FC_CHANNELS
from deconv_gui.models.layers import (
    bilinear_upsampler,
    fill_bilinear_,
    init_kaiming,
    pad_to_multiple,
    random_normal_,
    scaled_channels,
)

INPUT_MULTIPLE = 32
GEOMETRIES = ("aligned", "caffe")
#: The original FCN-8s: conv1_1's padding and the crop offsets of the pool4 scores, pool3 scores and output.
CAFFE_PAD = 100
CAFFE_CROPS = (5, 9, 31)


class FCN8s(nn.Module):
    """See the module docstring. Build it with :func:`fcn8s`."""

    def __init__(
        self, num_classes: int, width: float = 1.0, geometry: str = "aligned", *,
        encoder_width: float | None = None, fc_width: float | None = None,
    ) -> None:
        super().__init__()
        if geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
        self.num_classes = num_classes
        self.width = width
        self.encoder_width = width if encoder_width is None else encoder_width
        self.fc_width = width if fc_width is None else fc_width
        self.geometry = geometry
        caffe = geometry == "caffe"
        stages, cin = [], 3
        for channels in ENCODER_STAGES:
            layers: list[nn.Module] = []
            for c in channels:
                cout = scaled_channels(c, self.encoder_width)
                pad = CAFFE_PAD if caffe and not stages and not layers else 1
                layers += [nn.Conv2d(cin, cout, 3, padding=pad), nn.ReLU(inplace=True)]
                cin = cout
            layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=caffe))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)  # outputs: pool1 ... pool5
        pool3_channels = scaled_channels(ENCODER_STAGES[2][-1], self.encoder_width)
        pool4_channels = scaled_channels(ENCODER_STAGES[3][-1], self.encoder_width)
        fc = scaled_channels(FC_CHANNELS, self.fc_width)
        self.fc6 = nn.Conv2d(cin, fc, 7, padding=0 if caffe else 3)
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(0.5)
        self.score_fr = nn.Conv2d(fc, num_classes, 1)
        self.score_pool4 = nn.Conv2d(pool4_channels, num_classes, 1)
        self.score_pool3 = nn.Conv2d(pool3_channels, num_classes, 1)
        if caffe:
            self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=True)
            self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
            self.upscore8 = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, bias=False)
        else:
            self.upscore2 = bilinear_upsampler(num_classes, 2)
            self.upscore_pool4 = bilinear_upsampler(num_classes, 2)
            self.upscore8 = bilinear_upsampler(num_classes, 8)
        self.reset_parameters()

    @property
    def encoder_convs(self) -> list[nn.Conv2d]:
        """The 13 VGG16 conv layers, in order."""
        return [m for stage in self.stages for m in stage if isinstance(m, nn.Conv2d)]

    @property
    def encoder_stages(self) -> list[nn.Module]:
        """The five VGG stages (convs + ReLUs + pool), conv1_x first."""
        return list(self.stages)

    def reset_parameters(self) -> None:
        """VGG stack and fc6/fc7 Kaiming; score_fr N(0, 0.01²); skip scores zero; upsamplers stay bilinear."""
        for module in (*self.stages, self.fc6, self.fc7):
            init_kaiming(module)
        random_normal_(self.score_fr.weight, 0.01)
        nn.init.zeros_(self.score_fr.bias)
        for skip in (self.score_pool4, self.score_pool3):
            nn.init.zeros_(skip.weight)
            nn.init.zeros_(skip.bias)
        if self.geometry == "caffe":  # bilinear too (FCN's init)
            for up, factor in ((self.upscore2, 2), (self.upscore_pool4, 2), (self.upscore8, 8)):
                fill_bilinear_(up, factor)

    def load_imagenet_encoder(self) -> bool:
        """VGG stack and fc6/fc7 from torchvision's ImageNet VGG16 (width 1.0 only); ``False`` if unavailable."""
        state = imagenet_state_dict("vgg16")
        if state is None:
            return False
        load_vgg16_convs(state, self.encoder_convs, self.fc6, self.fc7)
        return True

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``(B, 3, H, W)`` → ``{"out": (B, num_classes, H, W)}`` raw scores, any H and W."""
        if self.geometry == "caffe":
            return {"out": self._forward_caffe(x)}
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, INPUT_MULTIPLE)
        pools = []
        for stage in self.stages:
            x = stage(x)
            pools.append(x)
        pool3, pool4 = pools[2], pools[3]
        x = self.drop(self.relu(self.fc6(x)))
        x = self.drop(self.relu(self.fc7(x)))
        x = self.upscore2(self.score_fr(x)) + self.score_pool4(pool4)  # 1/16
        x = self.upscore_pool4(x) + self.score_pool3(pool3)  # 1/8
        x = self.upscore8(x)  # 1/1 of the padded input
        return {"out": x[..., :h, :w]}

    def _forward_caffe(self, x: Tensor) -> Tensor:
        """The original FCN-8s forward (see the module docstring); ``(B, 3, H, W)`` → ``(B, C, H, W)``."""
        h, w = x.shape[-2:]
        pools = []
        for stage in self.stages:
            x = stage(x)
            pools.append(x)
        pool3, pool4 = pools[2], pools[3]
        x = self.drop(self.relu(self.fc6(x)))
        x = self.drop(self.relu(self.fc7(x)))
        c4, c3, c_out = CAFFE_CROPS
        x = self.upscore2(self.score_fr(x))
        x = x + self.score_pool4(pool4)[..., c4:c4 + x.shape[-2], c4:c4 + x.shape[-1]]
        x = self.upscore_pool4(x)
        x = x + self.score_pool3(pool3)[..., c3:c3 + x.shape[-2], c3:c3 + x.shape[-1]]
        return self.upscore8(x)[..., c_out:c_out + h, c_out:c_out + w]


def fcn8s(
    *, num_classes: int, width: float = 1.0, pretrained_backbone: bool = False, geometry: str = "aligned",
    encoder_width: float | None = None, fc_width: float | None = None,
) -> FCN8s:
    """FCN-8s with ``num_classes`` outputs and every channel count (fc too) scaled by ``width`` (≥ 8), in
    ``geometry`` ``"aligned"`` (default) or ``"caffe"`` (the original's, for imported Caffe weights).

    ``encoder_width`` / ``fc_width`` (default: ``width``) scale the VGG16 stack and fc6/fc7 on their own.

    ``pretrained_backbone`` loads torchvision's ImageNet VGG16 (13 convs, fc6/fc7 reshaped); it needs width
    1.0 and otherwise (or offline) leaves the random init after one warning line.
    """
    model = FCN8s(num_classes, width, geometry, encoder_width=encoder_width, fc_width=fc_width)
    if pretrained_backbone and imagenet_weights_fit("vgg16", model.encoder_width) and model.fc_width == 1.0:
        model.load_imagenet_encoder()
    return model
