"""PSPNet's and LinkNet's encoder: torchvision's ResNet minus ``avgpool``/``fc`` with every channel count scaled
by ``width``. At width 1.0 its parameter names and shapes equal torchvision's, so ImageNet weights load as is.

A module of its own because importing torchvision costs ~1.2 s (it pulls in torch._dynamo): the VGG16 models
(DeconvNet, FCN-8s) and the app's start never pay it.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from deconv_gui.models.backbones import imagenet_state_dict
from deconv_gui.models.layers import init_kaiming, scaled_channels

_RESNET_LAYOUTS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


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
