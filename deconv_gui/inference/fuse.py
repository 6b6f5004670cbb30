"""Fold eval-mode BatchNorm layers into the convolution before them (exactly the same function, less work).

For ``y = BN(conv(x))`` with running statistics, ``BN(z) = γ (z − μ)/√(σ² + ε) + β`` is per output channel, so
it folds into the convolution's weight and bias. Works for ``Conv2d`` (out channels on dim 0) and
``ConvTranspose2d`` (out channels on dim 1, groups = 1). Only pairs that sit next to each other inside an
``nn.Sequential`` are folded — the models are written that way — and the BN becomes ``nn.Identity``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn


def _fold(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm without running statistics cannot be folded")
    scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
    with torch.no_grad():
        if isinstance(conv, nn.ConvTranspose2d):
            conv.weight.mul_(scale.view(1, -1, 1, 1))
        else:
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = bias * scale + shift
        conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype), requires_grad=False)


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ``Sequential`` conv→BN pair of ``model`` **in place** (no copy: the full DeconvNet is 1 GB) and
    return it in eval mode. The model can no longer be trained afterwards."""
    model = model.eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules.keys())
        for a, b in zip(names, names[1:], strict=False):
            conv, bn = module._modules[a], module._modules[b]
            foldable = isinstance(conv, nn.Conv2d) or (isinstance(conv, nn.ConvTranspose2d) and conv.groups == 1)
            if foldable and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                _fold(conv, bn)  # type: ignore[arg-type]
                module._modules[b] = nn.Identity()
    return model


class DeconvAsMatmul(nn.Module):
    """A stride-1, unpadded ``ConvTranspose2d`` computed as one matrix product + ``fold`` (col2im).

    DeconvNet's fc6-deconv (7×7, 4096→512) mostly sees a 1×1 input; oneDNN's transposed-convolution kernel runs
    it at under 10 GFLOP/s on the CPU (≈ 20 % of a whole forward pass), while the same arithmetic as a GEMM runs
    at the machine's matmul rate. Input ``(N, C_in, H, W)`` → ``(N, C_out, H + k − 1, W + k − 1)``, identical
    to the wrapped layer up to float rounding.
    """

    #: While :func:`deconv_gui.inference.cancellable.cancellable` is active: the GEMM runs in ``slices`` blocks of
    #: weight rows with ``check()`` (raises ``Cancelled``) before each; otherwise one GEMM.
    check: Callable[[], None] | None = None
    slices: int = 1

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        super().__init__()
        cin, cout, kh, kw = deconv.weight.shape
        self.kernel = (kh, kw)
        # (C_in, C_out·kh·kw) → transposed so that cols = W_t @ x gives (C_out·kh·kw, L).
        self.register_buffer("weight_t", deconv.weight.detach().reshape(cin, cout * kh * kw).t().contiguous())
        bias = deconv.bias.detach() if deconv.bias is not None else torch.zeros(cout, dtype=deconv.weight.dtype)
        self.register_buffer("bias", bias.view(1, cout, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, cin, h, w = x.shape
        kh, kw = self.kernel
        # One GEMM over the whole batch (a batched matmul would re-read the 400 MB weight once per image).
        flat = x.permute(1, 0, 2, 3).reshape(cin, n * h * w)
        cols = torch.cat([torch.matmul(w.to(x.dtype), flat)  # (C_out·kh·kw, N·H·W)
                          for w in _checked_blocks(self.weight_t, 0, self.slices, self.check)])
        cols = cols.view(-1, n, h * w).permute(1, 0, 2)  # (N, C_out·kh·kw, H·W)
        out = nn.functional.fold(cols, (h + kh - 1, w + kw - 1), self.kernel)
        out = out + self.bias.to(out.dtype)
        return out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
            memory_format=torch.channels_last) else out


class PointwiseConvAsMatmul(nn.Module):
    """A large 1×1 ``Conv2d`` (DeconvNet's fc7: 4096→4096 on a 1×1 map) as one ``addmm``.

    oneDNN re-lays-out the 67 MB weight on every call for this shape (46 ms for 8 crops); a plain GEMM on the
    channels-last pixels takes 7 ms. ``(N, C_in, H, W)`` → ``(N, C_out, H, W)`` (channels_last strides).
    """

    check: Callable[[], None] | None = None  # as in DeconvAsMatmul (blocks of output channels)
    slices: int = 1

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        cout, cin = conv.weight.shape[:2]
        self.register_buffer("weight_t", conv.weight.detach().reshape(cout, cin).t().contiguous())
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(cout, dtype=conv.weight.dtype)
        self.register_buffer("bias", bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, cin, h, w = x.shape
        pixels = x.permute(0, 2, 3, 1).reshape(n * h * w, cin)
        blocks = zip(_checked_blocks(self.weight_t, 1, self.slices, self.check),
                     self.bias.tensor_split(self.slices), strict=True)
        out = torch.cat([torch.addmm(b.to(pixels.dtype), pixels, w.to(pixels.dtype)) for w, b in blocks], dim=1)
        return out.view(n, h, w, -1).permute(0, 3, 1, 2)


def _checked_blocks(weight: torch.Tensor, dim: int, slices: int,
                    check: Callable[[], None] | None) -> Iterator[torch.Tensor]:
    """``weight`` in ``slices`` blocks along ``dim`` (views), calling ``check`` before each (when given)."""
    for block in weight.tensor_split(max(1, slices), dim=dim):
        if check is not None:
            check()
        yield block


_POINTWISE_MIN_WEIGHTS = 1 << 20  # only big 1×1 convs (fc7); small ones (the score layer) are faster in oneDNN


def _pointwise_friendly(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d and module.kernel_size == (1, 1) and module.stride == (1, 1)
        and module.padding == (0, 0) and module.groups == 1 and module.dilation == (1, 1)
        and module.weight.numel() >= _POINTWISE_MIN_WEIGHTS
    )


def _matmul_friendly(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.ConvTranspose2d)
        and module.stride == (1, 1) and module.padding == (0, 0) and module.dilation == (1, 1)
        and module.output_padding == (0, 0) and module.groups == 1 and min(module.kernel_size) >= 5
    )


def layers_as_matmul(model: nn.Module) -> nn.Module:
    """Swap (in place) every large stride-1 unpadded ``ConvTranspose2d`` for :class:`DeconvAsMatmul` and every
    large 1×1 ``Conv2d`` for :class:`PointwiseConvAsMatmul`: the same function, computed as plain GEMMs.

    Call after :func:`fuse_batchnorm` (the fold needs the original modules). Inference only."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _matmul_friendly(child):
                setattr(parent, name, DeconvAsMatmul(child))  # type: ignore[arg-type]
            elif _pointwise_friendly(child):
                setattr(parent, name, PointwiseConvAsMatmul(child))  # type: ignore[arg-type]
    return model
