"""BatchNorm folding keeps the function of conv→BN and deconv→BN stacks."""

import torch
from torch import nn

from deconv_gui.inference.fuse import DeconvAsMatmul, PointwiseConvAsMatmul, fuse_batchnorm, layers_as_matmul


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


def test_deconv_as_matmul_matches_transposed_conv() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.ConvTranspose2d(16, 5, 7), nn.ReLU(), nn.ConvTranspose2d(5, 3, 3, padding=1)).eval()
    with torch.no_grad():
        for shape in [(2, 16, 1, 1), (1, 16, 3, 4)]:
            x = torch.randn(shape)
            expected = model(x)
            got = layers_as_matmul(model)(x)
            assert got.shape == expected.shape == (shape[0], 3, shape[2] + 6, shape[3] + 6)
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
            xc = x.contiguous(memory_format=torch.channels_last)
            torch.testing.assert_close(model(xc), expected, rtol=1e-4, atol=1e-5)
    assert isinstance(model[0], DeconvAsMatmul)
    assert isinstance(model[2], nn.ConvTranspose2d)  # 3×3 padded deconvs stay with oneDNN


def test_large_pointwise_conv_as_matmul() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1024, 1024, 1), nn.ReLU(), nn.Conv2d(1024, 3, 1)).eval()
    x = torch.randn(2, 1024, 3, 2).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model(x)
        got = layers_as_matmul(model)(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert isinstance(model[0], PointwiseConvAsMatmul)
    assert isinstance(model[2], nn.Conv2d)  # small 1×1 convs stay with oneDNN
