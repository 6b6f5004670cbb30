"""Run a segmentation network on batches of crops or on whole images, on CUDA when present, else the CPU.

:class:`ModelRunner` owns one model in eval mode with its :class:`~deconv_gui.io.checkpoints.ModelMeta`
(class names, palette, normalisation). Inputs are uint8 RGB; normalisation happens on the device. Outputs are raw
class scores (no softmax) as numpy float32.

Speed choices (measured by ``bench/inference.py``; see README):
- BatchNorm is folded into the preceding convolution at load time (identical maths, one memory pass less).
- DeconvNet's 7×7 fc6-deconv runs as a GEMM + col2im and fc7 as a plain GEMM (oneDNN took ~20 % of a
  forward on these two layers alone).
- channels_last memory format on both CPU (oneDNN) and CUDA (cuDNN tensor cores).
- precision ``"auto"``: fp16 autocast on CUDA; on the CPU bf16 autocast where the CPU has native bf16
  (AVX-512 BF16 or AMX: the full DeconvNet at 50 proposals took 6.7 s instead of 10.3 s on the 2-core dev
  machine, and with trained CamVid weights 99.45 % of the labels equal fp32's), else fp32 (emulated bf16 is slow).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.core.vocabulary import PRECISIONS, Precision
from deconv_gui.inference.fuse import fuse_batchnorm, layers_as_matmul
from deconv_gui.io.checkpoints import ModelMeta

log = logging.getLogger(__name__)



def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda"`` without a GPU is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeconvGuiError("CUDA was requested but no CUDA device is available; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise DeconvGuiError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 autocast is emulated and slow."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision for ``device`` (see module docstring)."""
    if precision not in PRECISIONS:
        raise DeconvGuiError(f"unknown precision {precision!r}; use auto, fp32, bf16 or fp16")
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return precision


@dataclass(frozen=True)
class RunnerOptions:
    """How to run a model: device (auto/cpu/cuda), precision, crops per forward (0 = auto), memory format."""

    device: str = "auto"
    precision: Precision = "auto"
    chunk_size: int = 0
    channels_last: bool = True
    fuse_bn: bool = True


class ModelRunner:
    """A model ready for inference on one device. ``meta`` carries class names, palette and normalisation."""

    def __init__(self, model: nn.Module, meta: ModelMeta, options: RunnerOptions = RunnerOptions()) -> None:
        self.meta = meta
        self.options = options
        self.device = resolve_device(options.device)
        self.precision = resolve_precision(options.precision, self.device)
        model = model.eval()
        if options.fuse_bn:
            model = fuse_batchnorm(model)
        model = layers_as_matmul(model)
        model = model.to(self.device)
        if options.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.chunk_size = options.chunk_size or (32 if self.device.type == "cuda" else 8)
        self._mean = torch.tensor(meta.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(meta.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._bgr = meta.channel_order == "bgr"  # Caffe weights: mean/std are in B, G, R order

    @classmethod
    def from_checkpoint(cls, path: str, options: RunnerOptions = RunnerOptions(), **expect: object) -> ModelRunner:
        """Load a checkpoint file (``torch.load(weights_only=True)``) into a runner; errors name the file."""
        from deconv_gui.models.registry import model_from_checkpoint

        model, meta = model_from_checkpoint(path, **expect)  # type: ignore[arg-type]
        return cls(model, meta, options)

    @property
    def num_classes(self) -> int:
        return int(self.meta.num_classes)

    @property
    def architecture(self) -> str:
        return str(self.meta.architecture)

    def describe_device(self) -> str:
        """What is actually in use, e.g. ``"cuda:0 (NVIDIA H100 80GB HBM3), fp16"`` or ``"cpu (2 threads), fp32"``."""
        if self.device.type == "cuda":
            index = self.device.index or 0
            return f"cuda:{index} ({torch.cuda.get_device_name(index)}), {self.precision}"
        return f"cpu ({torch.get_num_threads()} threads), {self.precision}"

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.precision == "fp32":
            yield
            return
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype):
            yield

    def _to_input(self, images: np.ndarray) -> torch.Tensor:
        """``(N, H, W, 3)`` uint8 RGB → normalised ``(N, 3, H, W)`` float32 on the device (in the checkpoint's
        channel order)."""
        t = torch.from_numpy(np.ascontiguousarray(images)).to(self.device, non_blocking=True)
        t = t.permute(0, 3, 1, 2).float().div_(255.0)
        if self._bgr:
            t = t.flip(1)
        t = (t - self._mean) / self._std
        if self.options.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    @torch.inference_mode()
    def forward_batch(self, images: np.ndarray) -> torch.Tensor:
        """One forward pass: ``(N, H, W, 3)`` uint8 → raw scores ``(N, C, H, W)`` float32 on the device."""
        x = self._to_input(images)
        with self._autocast():
            out = self.model(x)["out"]
        return out.float()

    def forward_crops(self, crops: np.ndarray) -> np.ndarray:
        """Raw scores for ``(N, S, S, 3)`` uint8 crops, one forward: ``(N, C, S, S)`` float32 (host)."""
        return self.forward_batch(crops).cpu().numpy()

    def whole_image_scores(self, image: np.ndarray) -> np.ndarray:
        """Raw scores for a whole ``(H, W, 3)`` uint8 image: ``(C, H, W)`` float32.

        The image is zero-padded at the bottom/right to a multiple of 32 (and to at least the network's input
        size for DeconvNet, whose fc6 needs a 7×7 map) and the scores are cropped back — like the original FCN
        pass, which padded to 500×500. A model with ``meta.whole_scale`` ≠ 1 sees the image resized by that
        factor first, and its scores are resized back to ``(H, W)``.
        """
        from deconv_gui.models.registry import whole_image_forward

        chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
        out = whole_image_forward(lambda x: self.forward_batch(x.permute(0, 2, 3, 1).numpy()), chw,
                                  self.architecture, geometry=self.meta.geometry, scale=self.meta.whole_scale)
        return out[0].cpu().numpy()
