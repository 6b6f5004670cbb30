"""LinkNet (Chaurasia & Culurciello): ResNet-18 encoder, light decoder, encoder features *added* to the decoder.

Encoder: torchvision ResNet-18 stem (7×7/2 conv, 3×3/2 max-pool) and its four stages e1..e4 (strides 4, 8, 16,
32). Decoder block (n → m): 1×1 conv n→n/4 + BN + ReLU → 3×3 transposed conv stride s n/4→n/4 + BN + ReLU →
1×1 conv n/4→m + BN + ReLU. The links: d4 = dec4(e4) + e3, d3 = dec3(d4) + e2, d2 = dec2(d3) + e1,
d1 = dec1(d2) — dec1 has stride 1 because ResNet's layer1 does not downsample. Final: 3×3/2 transposed conv
64→32 + BN + ReLU, 3×3 conv 32→32 + BN + ReLU, 2×2/2 transposed conv 32→C. 11.5M parameters at C = 11.

``width`` scales every channel count (encoder included); ImageNet weights fit width 1.0 only. Input
``(B, 3, H, W)`` normalised RGB, any size: it is zero-padded at the bottom/right to a multiple of 32 and the
output cropped back, ``{"out": (B, C, H, W)}`` raw scores.
"""

from __future__ import annotations

from torch import Tensor, nn

from deconv_gui.models.backbones import imagenet_weights_fit
from deconv_gui.models.layers import MIN_CHANNELS, ConvBNReLU, init_kaiming, pad_to_multiple, scaled_channels
from deconv_gui.models.resnet_encoder import ResNetEncoder

INPUT_MULTIPLE = 32


class DecoderBlock(nn.Sequential):
    """``(B, n, h, w)`` → ``(B, m, s·h, s·w)``: 1×1 n→n/4, 3×3 transposed stride ``s``, 1×1 n/4→m; each + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        mid = max(MIN_CHANNELS, in_channels // 4)
        super().__init__(
            ConvBNReLU(nn.Conv2d(in_channels, mid, 1, bias=False)),
            ConvBNReLU(
                nn.ConvTranspose2d(
                    mid, mid, 3, stride=stride, padding=1, output_padding=stride - 1, bias=False
                )
            ),
            ConvBNReLU(nn.Conv2d(mid, out_channels, 1, bias=False)),
        )


class LinkNet(nn.Module):
    """See the module docstring. Build it with :func:`linknet`."""

    def __init__(self, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.width = width
        self.encoder = ResNetEncoder(18, width=width)
        c1, c2, c3, c4 = self.encoder.stage_channels
        self.decoder4 = DecoderBlock(c4, c3, stride=2)
        self.decoder3 = DecoderBlock(c3, c2, stride=2)
        self.decoder2 = DecoderBlock(c2, c1, stride=2)
        self.decoder1 = DecoderBlock(c1, c1, stride=1)
        final = scaled_channels(32, width)
        self.final_deconv = ConvBNReLU(
            nn.ConvTranspose2d(c1, final, 3, stride=2, padding=1, output_padding=1, bias=False)
        )
        self.final_conv = ConvBNReLU(nn.Conv2d(final, final, 3, padding=1, bias=False))
        self.classifier = nn.ConvTranspose2d(final, num_classes, 2, stride=2)
        for module in (
            self.decoder4,
            self.decoder3,
            self.decoder2,
            self.decoder1,
            self.final_deconv,
            self.final_conv,
            self.classifier,
        ):
            init_kaiming(module)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``(B, 3, H, W)`` → ``{"out": (B, num_classes, H, W)}`` raw scores, any H and W."""
        h, w = x.shape[-2:]
        e1, e2, e3, e4 = self.encoder(pad_to_multiple(x, INPUT_MULTIPLE))
        d = self.decoder4(e4) + e3
        d = self.decoder3(d) + e2
        d = self.decoder2(d) + e1
        d = self.decoder1(d)
        out = self.classifier(self.final_conv(self.final_deconv(d)))
        return {"out": out[..., :h, :w]}


def linknet(*, num_classes: int, width: float = 1.0, pretrained_backbone: bool = False) -> LinkNet:
    """LinkNet with ``num_classes`` outputs and every channel count scaled by ``width`` (≥ 8).

    ``pretrained_backbone`` loads torchvision's ImageNet ResNet-18 into the encoder; it needs width 1.0 and
    otherwise (or offline) leaves the random init after one warning line.
    """
    model = LinkNet(num_classes, width)
    if pretrained_backbone and imagenet_weights_fit("resnet18", width):
        model.encoder.load_imagenet()
    return model
