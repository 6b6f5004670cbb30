"""Export a checkpoint to ONNX: ``deconv-gui export-onnx CKPT --out model.onnx``.

The exported graph includes the checkpoint's preprocessing, so it is self-contained: input ``image`` is
``(N, 3, H, W)`` float32 **RGB 0–255** (the batch is dynamic, H×W fixed at export time), output ``scores`` is
``(N, C, H, W)`` float32 raw class scores (argmax over C gives the label map). Inside: ``/255``, the flip to BGR
for Caffe checkpoints, ``(x − mean)/std``, the network. Class names, palette, normalisation and the export size
are stored as ONNX metadata (``metadata_props``).

Three pieces need an export form (the same function, other operators):

* DeconvNet's unpooling: torch's exporter has no ``max_unpool2d``; it becomes a ``ScatterElements`` of the
  values into a zero map at the switch indices (the pooling's per-plane flat argmax), with the pre-pool sizes
  fixed by a dry run.
* PSPNet's adaptive average pools (bins 1/2/3/6 do not divide every map size, which the exporter refuses):
  ``P_h · x · P_wᵀ`` with the exact averaging matrices of :func:`torch.nn.functional.adaptive_avg_pool2d`.
* The export uses the TorchScript-based exporter (``dynamo=False``, opset 17): it needs no ``onnxscript``.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.io.atomic import atomic_path
from deconv_gui.io.checkpoints import ModelMeta
from deconv_gui.models.deconvnet import DeconvNet
from deconv_gui.models.registry import model_from_checkpoint, whole_image_size

log = logging.getLogger(__name__)
OPSET = 17


def _unpool(x: Tensor, indices: Tensor, size: tuple[int, int]) -> Tensor:
    """``MaxUnpool2d`` as a scatter: ``x`` ``(N, C, h, w)`` placed at ``indices`` (flat per plane) of a zero
    ``(N, C, *size)`` map."""
    n, c = x.shape[0], x.shape[1]
    flat = torch.zeros_like(x).flatten(2)[:, :, :1].expand(n, c, size[0] * size[1])
    out = flat.scatter(2, indices.flatten(2), x.flatten(2))
    return out.reshape(n, c, size[0], size[1])


class _ExportDeconvNet(nn.Module):
    """DeconvNet's forward with :func:`_unpool`; ``sizes`` are the five pre-pool map sizes at the export size."""

    def __init__(self, net: DeconvNet, sizes: list[tuple[int, int]]) -> None:
        super().__init__()
        self.net, self.sizes = net, sizes

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        net = self.net
        switches = []
        for stage in net.encoder:
            x, indices = net.pool(stage(x))
            switches.append(indices)
        x = net.fc6_deconv(net.fc7(net.fc6(x)))
        for stage, indices, size in zip(net.decoder, reversed(switches), reversed(self.sizes), strict=True):
            x = stage(_unpool(x, indices, size))
        return {"out": net.score(x)}


class _MatrixAdaptiveAvgPool(nn.Module):
    """``AdaptiveAvgPool2d(out)`` for one fixed input size, as two matrix products (exportable for any sizes)."""

    def __init__(self, out_size: tuple[int, int], in_size: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("ph", _pool_matrix(out_size[0], in_size[0]))
        self.register_buffer("pw", _pool_matrix(out_size[1], in_size[1]))

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(torch.matmul(self.ph, x), self.pw.t())


def _pool_matrix(out: int, size: int) -> Tensor:
    """``(out, size)``: row ``i`` averages ``[floor(i·size/out), ceil((i+1)·size/out))`` (torch's bins)."""
    m = torch.zeros(out, size)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def _pair(v: int | tuple[int, ...] | None) -> tuple[int, int]:
    assert v is not None
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def exportable(model: nn.Module, height: int, width: int) -> nn.Module:
    """``model`` (eval mode) with the pieces above swapped for their export forms, for ``(N, 3, height, width)``
    inputs. The swapped modules are new; ``model``'s parameters are shared, not copied."""
    sizes: list[tuple[int, int]] = []
    pools: dict[str, tuple[int, int]] = {}
    hooks = []
    if isinstance(model, DeconvNet):
        hooks.append(model.pool.register_forward_pre_hook(lambda _m, a: sizes.append(tuple(a[0].shape[-2:]))))
    for name, m in model.named_modules():
        if isinstance(m, nn.AdaptiveAvgPool2d):
            hooks.append(m.register_forward_pre_hook(
                lambda _m, a, name=name: pools.__setitem__(name, tuple(a[0].shape[-2:]))))
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width))
    finally:
        for h in hooks:
            h.remove()
    for name, in_size in pools.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        pool = getattr(parent, child)
        setattr(parent, child, _MatrixAdaptiveAvgPool(_pair(pool.output_size), in_size))
    if isinstance(model, DeconvNet):
        return _ExportDeconvNet(model, sizes)
    return model


class _WithPreprocessing(nn.Module):
    """RGB 0–255 ``(N, 3, H, W)`` → the checkpoint's normalisation → the network's ``"out"`` scores."""

    def __init__(self, model: nn.Module, meta: ModelMeta) -> None:
        super().__init__()
        self.model = model
        self.bgr = meta.channel_order == "bgr"
        self.register_buffer("mean", torch.tensor(meta.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(meta.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: Tensor) -> Tensor:
        x = image / 255.0
        if self.bgr:
            x = x.flip(1)
        return self.model((x - self.mean) / self.std)["out"]


def export_size(meta: ModelMeta, height: int | None, width: int | None) -> tuple[int, int]:
    """The export input size: the one asked for (checked against the architecture's needs), else the
    checkpoint's ``input_size`` square (224 for DeconvNet crops)."""
    h = height or meta.input_size
    w = width or meta.input_size
    need = whole_image_size(meta.architecture, h, w, meta.geometry)
    if need != (h, w):
        raise DeconvGuiError(
            f"{meta.architecture} needs an input size of multiples of 32 (and ≥ 224 for DeconvNet): {h}×{w} is not; "
            f"try {need[0]}×{need[1]}")
    return h, w


def export_onnx(ckpt: str | os.PathLike[str], out: str | os.PathLike[str], *, height: int | None = None,
                width: int | None = None) -> tuple[ModelMeta, tuple[int, int]]:
    """Write checkpoint ``ckpt`` as ONNX to ``out`` (atomically); returns the metadata and the ``(H, W)`` used.

    Raises CheckpointError for a bad checkpoint, DeconvGuiError for an unusable size, OutputError when ``out``
    cannot be written.
    """
    model, meta = model_from_checkpoint(ckpt)
    h, w = export_size(meta, height, width)
    wrapped = _WithPreprocessing(exportable(model.eval(), h, w), meta).eval()
    example = torch.full((1, 3, h, w), 128.0)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes baked in as constants: intended
        torch.onnx.export(
            wrapped, (example,), str(tmp), dynamo=False, opset_version=OPSET, input_names=["image"],
            output_names=["scores"], dynamic_axes={"image": {0: "batch"}, "scores": {0: "batch"}},
        )
        _add_metadata(tmp, meta, (h, w))
    return meta, (h, w)


def _add_metadata(path: Path, meta: ModelMeta, size: tuple[int, int]) -> None:
    """Class names, palette, normalisation and the input contract as ONNX ``metadata_props`` (needs ``onnx``;
    skipped with a log line without it)."""
    try:
        import onnx
    except ImportError:
        log.info("onnx is not installed: %s written without metadata", path)
        return
    model = onnx.load(str(path))
    props = {
        "architecture": meta.architecture, "class_names": json.dumps(meta.class_names),
        "palette": json.dumps(meta.palette), "input": f"float32 (N, 3, {size[0]}, {size[1]}) RGB 0-255",
        "preprocessing": json.dumps({"mean": meta.mean, "std": meta.std, "channel_order": meta.channel_order,
                                     "scale": "x/255 then flip to channel_order, then (x-mean)/std"}),
        "output": "float32 (N, C, H, W) raw class scores",
    }
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
