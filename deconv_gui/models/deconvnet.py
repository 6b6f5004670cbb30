"""DeconvNet (Noh, Hong, Han, ICCV 2015): a VGG16 encoder mirrored by an unpooling + deconvolution decoder.

Encoder: the 13 VGG16 convs (3×3 pad 1 → BN → ReLU) in five stages, each followed by a 2×2/2 max-pool that
keeps its argmax indices ("switches"); fc6 = 7×7 valid conv 512→4096 (+BN+ReLU), fc7 = 1×1 4096→4096
(+BN+ReLU). Decoder: fc6-deconv = 7×7 transposed conv 4096→512 (+BN+ReLU) undoes fc6's shrinkage exactly;
then five stages, each a max-unpool with the matching encoder switches followed by 3×3 deconvs (+BN+ReLU);
a 1×1 score conv gives raw class scores. No dropout. 251.8M parameters and 32.7 GMAC per 224² at width 1.
``fc_padding="same"`` (not the paper's; :data:`~deconv_gui.core.vocabulary.FC_PADDINGS`) pads fc6 and
fc6-deconv by 3, so the 1/32 map keeps its size through fc6/fc7 (one code per 32×32 block instead of one per
224² crop) and inputs need only be ≥ 32.

Input ``(B, 3, H, W)``, normalised RGB, H and W ≥ 224 (so the 1/32 map is at least fc6's 7×7; multiples of 32
lose no border pixels to the pools). Output ``{"out": (B, C, H, W)}`` raw scores in the input's dtype (or the
autocast dtype). Training in train mode needs batch ≥ 2 at 224² (BN over fc7's 1×1 map).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from deconv_gui.core.vocabulary import FC_PADDINGS
from deconv_gui.models.backbones import imagenet_state_dict, imagenet_weights_fit, load_vgg16_convs
from deconv_gui.models.layers import ConvBNReLU, init_gaussian, init_kaiming, scaled_channels

#: Output channels of the 13 VGG16 convs, one tuple per pooling stage.
ENCODER_STAGES: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)
#: Output channels of the decoder deconvs, one tuple per unpooling stage (after unpool5 ... unpool1).
DECODER_STAGES: tuple[tuple[int, ...], ...] = (
    (512, 512, 512),
    (512, 512, 256),
    (256, 256, 128),
    (128, 64),
    (64, 64),
)
FC_CHANNELS = 4096
FC6_KERNEL = 7
#: The smallest input side: 32 × fc6's kernel.
MIN_INPUT_SIZE = 32 * FC6_KERNEL


def _conv_stage(
    cin: int, channels: tuple[int, ...], width: float, *, transposed: bool, last_channels: int | None = None
) -> tuple[nn.Sequential, int]:
    """A stage of 3×3 stride-1 pad-1 (de)convs, each + BN + ReLU; returns it and its output channel count.

    ``last_channels`` overrides the last conv's output count (a decoder narrower than its encoder must still
    hand the next unpooling as many channels as that pool's switches have).
    """
    layers = []
    for k, c in enumerate(channels):
        cout = scaled_channels(c, width)
        if last_channels is not None and k == len(channels) - 1:
            cout = last_channels
        conv_type = nn.ConvTranspose2d if transposed else nn.Conv2d
        layers.append(ConvBNReLU(conv_type(cin, cout, 3, padding=1, bias=False)))
        cin = cout
    return nn.Sequential(*layers), cin


class DeconvNet(nn.Module):
    """See the module docstring. Build it with :func:`deconvnet`."""

    def __init__(
        self, num_classes: int, width: float = 1.0, *, encoder_width: float | None = None,
        fc_width: float | None = None, fc_padding: str = "valid",
    ) -> None:
        super().__init__()
        if fc_padding not in FC_PADDINGS:
            raise ValueError(f"fc_padding must be one of {', '.join(FC_PADDINGS)}, not {fc_padding!r}")
        self.num_classes = num_classes
        self.fc_padding = fc_padding
        self.width = width
        self.encoder_width = width if encoder_width is None else encoder_width
        self.fc_width = width if fc_width is None else fc_width
        encoder, cin, pool_channels = [], 3, []
        for channels in ENCODER_STAGES:
            stage, cin = _conv_stage(cin, channels, self.encoder_width, transposed=False)
            encoder.append(stage)
            pool_channels.append(cin)
        self.encoder = nn.ModuleList(encoder)
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        fc = scaled_channels(FC_CHANNELS, self.fc_width)
        pad = FC6_KERNEL // 2 if fc_padding == "same" else 0
        self.fc6 = ConvBNReLU(nn.Conv2d(cin, fc, FC6_KERNEL, padding=pad, bias=False))
        self.fc7 = ConvBNReLU(nn.Conv2d(fc, fc, 1, bias=False))
        self.fc6_deconv = ConvBNReLU(nn.ConvTranspose2d(fc, cin, FC6_KERNEL, padding=pad, bias=False))
        self.unpool = nn.MaxUnpool2d(2, stride=2)
        decoder = []
        # stage k unpools with pool(5-k)'s switches and hands pool(4-k)'s channel count to the next unpooling
        next_unpool = [*reversed(pool_channels[:-1]), None]
        for channels, last in zip(DECODER_STAGES, next_unpool, strict=True):
            stage, cin = _conv_stage(cin, channels, width, transposed=True, last_channels=last)
            decoder.append(stage)
        self.decoder = nn.ModuleList(decoder)
        self.score = nn.Conv2d(cin, num_classes, 1)
        self.reset_parameters()

    @property
    def encoder_convs(self) -> list[nn.Conv2d]:
        """The 13 VGG16 conv layers, in order."""
        return [block[0] for stage in self.encoder for block in stage]

    @property
    def encoder_stages(self) -> list[nn.Module]:
        """The five encoder stages (convs + BN + ReLU), conv1_x first."""
        return list(self.encoder)

    def reset_parameters(self) -> None:
        """Random init: encoder + fc6/fc7 Kaiming; decoder (fc6-deconv, deconvs, score) N(0, 0.01²) as in the paper."""
        init_kaiming(self.encoder)
        init_kaiming(self.fc6)
        init_kaiming(self.fc7)
        init_gaussian(self.fc6_deconv)
        init_gaussian(self.decoder)
        init_gaussian(self.score)

    def load_imagenet_encoder(self) -> bool:
        """Encoder and fc6/fc7 from torchvision's ImageNet VGG16 (width 1.0 only); ``False`` if unavailable."""
        state = imagenet_state_dict("vgg16")
        if state is None:
            return False
        load_vgg16_convs(state, self.encoder_convs, self.fc6[0], self.fc7[0])
        return True

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``(B, 3, H, W)`` → ``{"out": (B, num_classes, H, W)}`` raw scores; H, W ≥ 224 (≥ 32 with "same" fc)."""
        h, w = x.shape[-2:]
        smallest = 1 if self.fc_padding == "same" else FC6_KERNEL
        if h // 32 < smallest or w // 32 < smallest:
            raise ValueError(
                f"DeconvNet needs inputs of at least {32 * smallest}×{32 * smallest}, got {h}×{w}"
            )
        switches: list[tuple[Tensor, torch.Size]] = []
        for stage in self.encoder:
            x = stage(x)
            size = x.shape[-2:]
            x, indices = self.pool(x)
            switches.append((indices, size))
        x = self.fc6_deconv(self.fc7(self.fc6(x)))  # 7×7 valid conv then 7×7 full deconv (or both padded): size kept
        for stage, (indices, size) in zip(self.decoder, reversed(switches), strict=True):
            x = self.unpool(x, indices, output_size=size)
            x = stage(x)
        return {"out": self.score(x)}


def deconvnet(
    *, num_classes: int, width: float = 1.0, pretrained_backbone: bool = False,
    encoder_width: float | None = None, fc_width: float | None = None, fc_padding: str = "valid",
) -> DeconvNet:
    """DeconvNet with ``num_classes`` outputs and every channel count (fc too) scaled by ``width`` (≥ 8).

    ``encoder_width`` / ``fc_width`` (default: ``width``) scale the 13 VGG16 convs and fc6/fc7 on their own,
    e.g. a full-width ImageNet/HED encoder (1.0) with a narrow fc (1/16) and decoder (1/4). Each decoder
    stage's last deconv then outputs the encoder's channel count, which the next unpooling's switches need.
    ``fc_padding="same"`` keeps the 1/32 map's size through fc6 (see the module docstring).

    ``pretrained_backbone`` loads torchvision's ImageNet VGG16 into the 13 encoder convs and fc6/fc7 (reshaped
    from the classifier), as the paper does; it needs width 1.0 and otherwise (or offline) leaves the random
    init after one warning line.
    """
    model = DeconvNet(num_classes, width, encoder_width=encoder_width, fc_width=fc_width, fc_padding=fc_padding)
    if pretrained_backbone and imagenet_weights_fit("vgg16", model.encoder_width) and model.fc_width == 1.0:
        model.load_imagenet_encoder()
    return model
