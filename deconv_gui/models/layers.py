"""Building blocks shared by the architectures: channel scaling, conv+BN+ReLU, padding to a multiple,
bilinear-initialised upsamplers and an analytic multiply-accumulate counter.

Tensors are ``(B, C, H, W)``; nothing here assumes a device or a dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

MIN_CHANNELS = 8


def scaled_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded to an int, never below :data:`MIN_CHANNELS` (width 1.0 is the identity)."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    return max(MIN_CHANNELS, int(round(channels * width)))


class ConvBNReLU(nn.Sequential):
    """``conv → BatchNorm2d → ReLU``; ``conv`` may be a ``Conv2d`` or a ``ConvTranspose2d``.

    The conv has no bias: the BN shift makes it redundant (the original DeconvNet has one; a bias before BN is
    cancelled by the mean subtraction, so dropping it changes nothing but the parameter count).
    """

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d) -> None:
        super().__init__(conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU(inplace=True))


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad ``(B, C, H, W)`` at the bottom and right so H and W are multiples of ``multiple``.

    Padding only at the far edges keeps pixel (0, 0) where it was, so cropping ``[..., :H, :W]`` afterwards
    aligns the output pixel-exactly with the input. A no-op (the same tensor) when already aligned.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h))


def bilinear_kernel(factor: int) -> Tensor:
    """The ``(2f, 2f) float32`` bilinear interpolation kernel for up-sampling by ``factor`` (FCN's ``upsample_filt``)."""
    size = 2 * factor
    center = factor - 0.5  # kernels of even size: the centre lies between two taps
    taps = 1 - torch.abs(torch.arange(size, dtype=torch.float32) - center) / factor
    return taps[:, None] * taps[None, :]


def holds_values(tensor: Tensor) -> bool:
    """False for a meta-device tensor (checkpoints are built on the meta device, then adopt their tensors):
    initialisers leave those alone — there is nothing to set, and torch's meta ``normal_`` imports torch._dynamo
    (~1.3 s) only to draw nothing."""
    return tensor.device.type != "meta"


def fill_bilinear_(up: nn.ConvTranspose2d, factor: int) -> None:
    """Set a square ``(C, C, 2f, 2f)`` transposed conv to per-channel bilinear up-sampling (bias, if any, 0), in
    place; a meta-device one is left alone."""
    if not holds_values(up.weight):
        return
    with torch.no_grad():
        up.weight.zero_()
        kernel = bilinear_kernel(factor)
        for c in range(up.weight.shape[0]):
            up.weight[c, c] = kernel
        if up.bias is not None:
            up.bias.zero_()


def bilinear_upsampler(channels: int, factor: int, *, learnable: bool = True) -> nn.ConvTranspose2d:
    """A per-channel (no cross-channel mixing) ``ConvTranspose2d`` initialised to bilinear up-sampling.

    Kernel ``2f``, stride ``f``, padding ``f/2`` (``factor`` must be even, or 1): ``(B, C, h, w) → (B, C, f·h,
    f·w)`` exactly, and coarse pixel ``i`` — whose centre is at fine coordinate ``f·i + (f-1)/2`` when the
    coarse grid came from ``f×f`` pooling — is placed at that centre, so the output is pixel-aligned with the
    input of the network. Inside the image it reproduces a linear ramp exactly; the border rows see zeros.
    """
    if factor != 1 and factor % 2:
        raise ValueError(f"factor must be even, got {factor}")
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    fill_bilinear_(up, factor)
    return up.requires_grad_(learnable)


def random_normal_(weight: Tensor, std: float | None = None) -> None:
    """Fill ``weight`` from N(0, std²), or Kaiming-normal (fan-out, ReLU) when ``std`` is None — and leave a
    meta-device tensor alone (:func:`holds_values`)."""
    if not holds_values(weight):
        return
    if std is None:
        nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
    else:
        nn.init.normal_(weight, 0.0, std)


def init_gaussian(module: nn.Module, std: float = 0.01) -> None:
    """Every conv/deconv under ``module``: weight ~ N(0, std²), bias 0; every BN: weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            random_normal_(m.weight, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_kaiming(module: nn.Module) -> None:
    """Every conv under ``module``: Kaiming-normal (fan-out, ReLU), bias 0; every BN: weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            random_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _layer_macs(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    """Multiply-accumulates of one conv / deconv / linear call, from its shapes."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        cin = module.in_channels // module.groups
        return kh * kw * cin * output.shape[0] * output.shape[1] * output.shape[2] * output.shape[3]
    if isinstance(module, nn.ConvTranspose2d):
        # every input pixel is scattered through the whole kernel
        x = inputs[0]
        kh, kw = module.kernel_size
        cout = module.out_channels // module.groups
        return kh * kw * cout * x.shape[0] * x.shape[1] * x.shape[2] * x.shape[3]
    if isinstance(module, nn.Linear):
        return module.in_features * output.numel()
    return 0


def count_macs(model: nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of one inference forward pass on a ``(1, 3, height, width)`` input.

    Counts conv (``k·k·cin·cout·hout·wout``), transposed conv (``k·k·cin·cout·hin·win``) and linear layers;
    BN, ReLU, pooling and interpolation are ignored. The pass runs on the ``meta`` device (no memory, no
    arithmetic), so it is instant even for full-width DeconvNet. The model is briefly put in eval mode.
    FLOPs ≈ 2 × MACs.
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, inputs, output)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
    ]
    was_training = model.training
    meta_state = {
        name: torch.empty_like(t, device="meta")
        for name, t in [*model.named_parameters(), *model.named_buffers()]
    }
    try:
        model.eval()
        with torch.no_grad():
            functional_call(model, meta_state, (torch.empty(1, 3, height, width, device="meta"),))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total)
