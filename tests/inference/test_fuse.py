"""BatchNorm folding keeps the function of conv→BN and deconv→BN stacks."""

import torch
from torch import nn

from deconv_gui.inference.fuse import fuse_batchnorm


def _randomise_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def test_fold_conv_and_transposed_conv() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.ConvTranspose2d(8, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
        nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1), nn.BatchNorm2d(4),
    ).eval()
    _randomise_bn(model)
    x = torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        expected = model(x)
        fused = fuse_batchnorm(model)
        got = fused(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
