"""Cancel inside a forward pass: every layer checks the token before it runs, and the few huge layers check it
between slices of their weights too.

The pipeline checks the token only between chunks of crops; one chunk of the full-width DeconvNet on a CPU takes
seconds, too slow for Cancel. A pre-hook on every leaf module costs ~1 µs per layer. That alone still lets one
layer run to its end: DeconvNet's fc6 (7×7 conv 512→4096) and fc6-deconv (its transpose) hold 103 M weights
each, fc7 17 M, and one call takes up to 0.2–0.5 s on a CPU (memory-bound at batch 2; under bf16 autocast the
weights are cast on every call). So, while :func:`cancellable` is active, a layer with more than
:data:`SLICE_WEIGHTS` weights runs as slices of its weights with a check before each: a convolution by output
channels, a transposed convolution by input channels (both contiguous slices), and the inference runner's GEMM
forms of fc6-deconv and fc7 (:mod:`deconv_gui.inference.fuse`) by blocks of the product. Same result up to float
rounding order; sliced, the bf16 CPU forward is even faster (each slice's cast weight stays in cache).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deconv_gui.core.cancel import CancelToken
from deconv_gui.inference.fuse import DeconvAsMatmul, PointwiseConvAsMatmul

#: Convolutions with more weights than this are sliced (DeconvNet ×1.0: fc6 and fc6-deconv, 13 slices each,
#: fc7 (16.8 M) 3 slices; every other layer stays whole).
SLICE_WEIGHTS = 8_000_000
_GEMMS = (DeconvAsMatmul, PointwiseConvAsMatmul)


@contextlib.contextmanager
def cancellable(models: list[nn.Module], cancel: CancelToken) -> Iterator[None]:
    """While active, every leaf module of ``models`` raises ``Cancelled`` before it runs once ``cancel`` is set,
    and convolutions over :data:`SLICE_WEIGHTS` weights also between slices of their weights."""

    def check(_module: nn.Module, _inputs: object) -> None:
        cancel.raise_if_cancelled()

    leaves = [m for model in models for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_pre_hook(check) for m in leaves]
    sliced = [m for m in leaves if _sliceable(m)]
    gemms = [m for m in leaves if isinstance(m, _GEMMS) and m.weight_t.numel() > SLICE_WEIGHTS]
    for m in sliced:
        m.forward = _sliced_forward(m, cancel)  # an instance attribute: shadows the class's forward
    for m in gemms:  # the inference runner's GEMM forms of fc7 and fc6-deconv slice themselves
        m.check, m.slices = cancel.raise_if_cancelled, math.ceil(m.weight_t.numel() / SLICE_WEIGHTS)
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for m in sliced:
            vars(m).pop("forward", None)
        for m in gemms:  # back to the class defaults: one GEMM, no check
            vars(m).pop("check", None)
            vars(m).pop("slices", None)


def _sliceable(m: nn.Module) -> bool:
    return (isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.groups == 1 and m.padding_mode == "zeros"
            and m.weight.numel() > SLICE_WEIGHTS and "forward" not in vars(m))


def _sliced_forward(m: nn.Conv2d | nn.ConvTranspose2d, cancel: CancelToken):  # noqa: ANN202 - a forward
    n = m.weight.shape[0]
    step = math.ceil(n / math.ceil(m.weight.numel() / SLICE_WEIGHTS))
    bounds = [(a, min(a + step, n)) for a in range(0, n, step)]

    if isinstance(m, nn.Conv2d):
        def forward(x: Tensor) -> Tensor:  # output channels: concatenate
            parts = []
            for a, b in bounds:
                cancel.raise_if_cancelled()
                bias = None if m.bias is None else m.bias[a:b]
                parts.append(F.conv2d(x, m.weight[a:b], bias, m.stride, m.padding, m.dilation))
            return torch.cat(parts, dim=1)
        return forward

    def forward_t(x: Tensor, output_size: list[int] | None = None) -> Tensor:  # input channels: sum
        padding = m._output_padding(x, output_size, m.stride, m.padding, m.kernel_size, 2, m.dilation)
        out, dtype = None, x.dtype
        for a, b in bounds:
            cancel.raise_if_cancelled()
            part = F.conv_transpose2d(x[:, a:b], m.weight[a:b], None, m.stride, m.padding, padding, 1, m.dilation)
            dtype = part.dtype  # under autocast: bf16/fp16; the partial sums add up in float32
            out = part.float() if out is None else out.add_(part)
        assert out is not None
        if m.bias is not None:
            out += m.bias.float().view(1, -1, 1, 1)
        return out.to(dtype)
    return forward_t
