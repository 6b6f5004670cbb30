"""FCN-8s: any input size, pixel-exact alignment of the skip streams and upsamplers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deconv_gui.models import deconvnet, fcn8s
from deconv_gui.models.layers import bilinear_kernel, bilinear_upsampler, pad_to_multiple


@pytest.mark.parametrize("size", [(97, 131), (1, 1), (33, 31), (64, 96)])
def test_output_has_the_input_size(size: tuple[int, int]) -> None:
    model = fcn8s(num_classes=5, width=0.125).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))["out"]
    assert out.shape == (1, 5, *size)


def test_fcn_init_follows_the_paper() -> None:
    model = fcn8s(num_classes=4, width=0.125)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.score_pool4.weight.abs().sum() == 0 and model.score_pool3.weight.abs().sum() == 0
    assert torch.equal(model.upscore8.weight[2, 2], bilinear_kernel(8))
    assert model.upscore8.weight[2, 1].abs().sum() == 0  # no cross-class mixing
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 1  # shared by fc6 and fc7


def test_bilinear_kernel_values() -> None:
    assert bilinear_kernel(2)[0].tolist() == pytest.approx([0.0625, 0.1875, 0.1875, 0.0625])
    assert bilinear_kernel(2).sum().item() == pytest.approx(4.0)  # factor² = every output gets weight 1


@pytest.mark.parametrize("factor", [2, 8])
def test_bilinear_upsampler_reproduces_a_ramp_without_shift(factor: int) -> None:
    """Coarse pixel i sits at fine coordinate f·i + (f-1)/2 (the centre of its f×f footprint); upsampling a
    ramp of those coordinates must give each fine pixel its own coordinate (away from the zero-padded border)."""
    n = 6
    centres = factor * torch.arange(n, dtype=torch.float64) + (factor - 1) / 2
    coarse = centres[None, :].expand(n, n)[None, None]  # ramp along x, constant along y
    up = bilinear_upsampler(1, factor).double()
    with torch.no_grad():
        fine = up(coarse)[0, 0]
    assert fine.shape == (n * factor, n * factor)
    inner = slice(factor, (n - 1) * factor)
    expected = torch.arange(n * factor, dtype=torch.float64)[inner]
    assert torch.allclose(fine[inner, inner], expected[None, :].expand_as(fine[inner, inner]))


def test_pad_to_multiple_pads_only_bottom_right() -> None:
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 4, 4)
    assert torch.equal(padded[..., :2, :3], x)
    assert padded[..., 2:, :].abs().sum() == 0 and padded[..., :, 3:].abs().sum() == 0
    assert pad_to_multiple(padded, 4) is padded


def _mirror_symmetrise(model: nn.Module) -> None:
    """Make every conv kernel left-right symmetric and positive (so no ReLU output is exactly 0)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                if m.weight.abs().sum() == 0:
                    m.weight.normal_(0, 0.1)
                m.weight.copy_((m.weight + m.weight.flip(-1)).abs() / 2)


@pytest.mark.parametrize("build", [fcn8s, deconvnet], ids=["fcn8s", "deconvnet"])
def test_alignment_mirror_symmetric_input_gives_mirror_symmetric_output(build) -> None:
    """With left-right symmetric kernels, a symmetric input must give a symmetric output — unless some stream
    or upsampler is shifted: a one-pixel offset anywhere breaks the symmetry.

    Input and kernels are positive: an all-zero 2×2 pool window (after ReLU) is a tie whose switch is the
    window's first element, which is not mirror-symmetric; that is DeconvNet's behaviour, not an offset."""
    torch.manual_seed(0)
    model = build(num_classes=3, width=0.0625).double().eval()
    _mirror_symmetrise(model)
    x = torch.rand(1, 3, 224, 256, dtype=torch.float64)
    x = (x + x.flip(-1)) / 2
    with torch.no_grad():
        out = model(x)["out"]
    scale = out.abs().max()
    assert scale > 0
    assert torch.allclose(out, out.flip(-1), atol=1e-9 * scale.item())
