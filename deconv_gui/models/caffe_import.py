"""Import the original Caffe weights (DeconvNet release, FCN-8s pascal) into ordinary checkpoints.

``import_caffe(path, out, arch)`` reads a ``.caffemodel`` (:mod:`deconv_gui.io.caffe_model`), maps its layers
by name onto :class:`~deconv_gui.models.deconvnet.DeconvNet` or the ``geometry="caffe"``
:class:`~deconv_gui.models.fcn.FCN8s`, checks every blob's shape, and writes a checkpoint (atomically; nothing
is written when anything is wrong) whose metadata carries Caffe's preprocessing (BGR, the mean subtracted
from 0–255 values, no std division: ``mean = M/255``, ``std = 1/255``, ``channel_order = "bgr"``), the VOC
21 class names and the bitget palette.

DeconvNet mapping. Caffe's convs and deconvs have a bias and are followed by a BN layer already in inference
form (``y = x·scale + shift``); ours have no bias before their BatchNorm. The bias folds into the BN exactly:
``BN.weight = scale``, ``BN.bias = shift + scale·bias``, ``running_mean = 0``, ``running_var = 1 − eps``
(so ``√(var + eps)`` is exactly 1 in float32). ``deconvN_M`` / ``fc6-deconv`` weights are ``(in, out, kh,
kw)``, torch's ``ConvTranspose2d`` layout, and are copied as they are. The width is read from fc6
(``num_output / 4096``) and the class count from ``seg-score-voc``, so width-scaled nets import too.

Only inference-form BN files give the paper's outputs (the release's ``DeconvNet_trainval_inference``):
``stage_*_train_result`` files hold BN γ/β without the population statistics the release computes afterwards.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from deconv_gui.core.palette import VOC_CLASSES, voc_palette
from deconv_gui.io.caffe_model import CaffeLayer, CaffeModelError, CaffeNet, read_caffemodel
from deconv_gui.io.checkpoints import ModelMeta, save_checkpoint
from deconv_gui.models.deconvnet import DECODER_STAGES, ENCODER_STAGES, FC_CHANNELS
from deconv_gui.models.registry import build_model

#: Caffe's ImageNet mean, B, G, R, on 0–255 values.
CAFFE_MEAN_BGR: tuple[float, float, float] = (104.00698793, 116.66876762, 122.67891434)
ARCHITECTURES = ("deconvnet", "fcn8s")
_NAMES = {"deconvnet": "DeconvNet", "fcn8s": "FCN-8s"}
_BN_EPS = 1e-5  # nn.BatchNorm2d's default, what our models use
_CONV_TYPES = ("CONVOLUTION", "DECONVOLUTION", "INNERPRODUCT")


@dataclass(frozen=True)
class _Slot:
    """One Caffe layer (``names``: accepted spellings) and where its blobs go in our state dict.

    ``kind``: ``"conv"`` (weight → ``key.weight``, bias → ``key.bias`` when ``bias`` is ``"yes"``, may be
    absent when ``"optional"``, must be absent when ``"no"``), or ``"conv_bn"`` (a conv/deconv whose bias folds
    into the BN layer ``bn_name`` at ``key``: weight → ``key.0.weight``, BN → ``key.1.*``)."""

    names: tuple[str, ...]
    kind: str
    key: str
    bias: str = "yes"
    bn_name: str = ""


@dataclass(frozen=True)
class ImportSummary:
    """What was imported: architecture, width, classes, parameter count, the Caffe net's name and layer count."""

    architecture: str
    width: float
    num_classes: int
    parameters: int
    net_name: str
    version: str
    layers: int

    def describe(self) -> str:
        """E.g. ``"DeconvNet, width 1, 21 classes (VOC), 251.8M parameters, from V1 Caffe net 'X' (70 layers)"``."""
        voc = " (VOC)" if self.num_classes == len(VOC_CLASSES) else ""
        width = f"{self.width:g}"
        return (f"{_NAMES[self.architecture]}, width {width}, {self.num_classes} classes{voc}, "
                f"{self.parameters / 1e6:.1f}M parameters, from {self.version} Caffe net "
                f"{self.net_name or '(unnamed)'!r} ({self.layers} layers)")


def _deconvnet_slots() -> list[_Slot]:
    slots = []
    for s, channels in enumerate(ENCODER_STAGES):
        for j in range(len(channels)):
            slots.append(_Slot((f"conv{s + 1}_{j + 1}",), "conv_bn", f"encoder.{s}.{j}", bn_name=f"bn{s + 1}_{j + 1}"))
    slots.append(_Slot(("fc6",), "conv_bn", "fc6", bn_name="bnfc6"))
    slots.append(_Slot(("fc7",), "conv_bn", "fc7", bn_name="bnfc7"))
    slots.append(_Slot(("fc6-deconv",), "conv_bn", "fc6_deconv", bn_name="fc6-deconv-bn"))
    for k, channels in enumerate(DECODER_STAGES):
        stage = len(DECODER_STAGES) - k
        for j in range(len(channels)):
            slots.append(_Slot((f"deconv{stage}_{j + 1}",), "conv_bn", f"decoder.{k}.{j}",
                               bn_name=f"debn{stage}_{j + 1}"))
    slots.append(_Slot(("seg-score-voc", "seg-score"), "conv", "score"))
    return slots


def _fcn8s_slots() -> list[_Slot]:
    slots = []
    for s, channels in enumerate(ENCODER_STAGES):
        for j in range(len(channels)):
            slots.append(_Slot((f"conv{s + 1}_{j + 1}",), "conv", f"stages.{s}.{2 * j}"))
    slots += [
        _Slot(("fc6",), "conv", "fc6"),
        _Slot(("fc7",), "conv", "fc7"),
        _Slot(("score-fr", "score_fr"), "conv", "score_fr"),
        _Slot(("score2", "upscore2"), "conv", "upscore2", bias="optional"),
        _Slot(("score-pool4", "score_pool4"), "conv", "score_pool4"),
        _Slot(("score4", "upscore_pool4"), "conv", "upscore_pool4", bias="no"),
        _Slot(("score-pool3", "score_pool3"), "conv", "score_pool3"),
        _Slot(("upsample", "upscore8"), "conv", "upscore8", bias="no"),
    ]
    return slots


def detect_architecture(net: CaffeNet) -> str | None:
    """``"deconvnet"`` (a ``fc6-deconv``, ``seg-score*`` or BN layer), ``"fcn8s"`` (``score-fr``), or ``None``."""
    names = set(net.by_name())
    if "fc6-deconv" in names or any(n.startswith("seg-score") for n in names) or any(
            layer.type == "BN" for layer in net.layers):
        return "deconvnet"
    if names & {"score-fr", "score_fr"}:
        return "fcn8s"
    return None


def _neither(net: CaffeNet, path: Path) -> CaffeModelError:
    names = [layer.name for layer in net.layers]
    shown = ", ".join(names[:8]) + (f", … ({len(names)} layers)" if len(names) > 8 else "")
    hint = ""
    if {"conv1_1", "conv5_3", "fc6", "fc7"} <= set(names):
        hint = "; it looks like an ImageNet VGG16 (an encoder, not a segmentation net)"
    return CaffeModelError(
        f"neither DeconvNet (no fc6-deconv / seg-score-voc layer) nor FCN-8s (no score-fr layer): "
        f"net {net.name or '(unnamed)'!r} has {shown}{hint}", path)


def _find(net_layers: dict[str, CaffeLayer], slot_names: tuple[str, ...]) -> CaffeLayer | None:
    return next((net_layers[n] for n in slot_names if n in net_layers), None)


def _score_layer(layers: dict[str, CaffeLayer]) -> CaffeLayer | None:
    exact = _find(layers, ("seg-score-voc",))
    return exact or next((layer for name, layer in layers.items() if name.startswith("seg-score")), None)


class _Mapper:
    """Fills our state dict from Caffe layers, checking blob counts and shapes against ``expected``."""

    def __init__(self, path: Path, arch: str, expected: dict[str, Tensor], width: float, classes: int) -> None:
        self.path, self.arch, self.expected = path, arch, expected
        self.context = f"{_NAMES[arch]} at width {width:g} with {classes} classes"
        self.state: dict[str, Tensor] = {}

    def _error(self, layer: CaffeLayer, reason: str) -> CaffeModelError:
        return CaffeModelError(f"layer {layer.name!r} ({layer.type}): {reason}", self.path)

    def _fit(self, layer: CaffeLayer, index: int, what: str, key: str) -> Tensor:
        """Blob ``index`` of ``layer`` as a tensor shaped like our ``key`` (legacy leading 1s dropped)."""
        want = tuple(self.expected[key].shape)
        data = layer.blobs[index].data
        have = data.shape
        if _strip_ones(have) == _strip_ones(want) or (
                len(want) == 1 and tuple(d for d in have if d != 1) == tuple(d for d in want if d != 1)):
            # legacy 4-D shapes: a bias (1, 1, 1, C); BN scale/shift (1, C, 1, 1)
            data = data.reshape(want)
        elif layer.type == "INNERPRODUCT" and data.size == int(np.prod(want)) and len(want) == 4:
            data = data.reshape(want)  # an fc layer stored as a matrix: (out, in·k·k) → (out, in, k, k)
        else:
            raise self._error(layer, f"blob {index} ({what}) has shape {have}, expected {want} for {self.context}")
        return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))

    def _blob_count(self, layer: CaffeLayer, allowed: tuple[int, ...], what: str) -> None:
        if len(layer.blobs) not in allowed:
            raise self._error(layer, f"has {len(layer.blobs)} blobs, expected {what}")

    def conv(self, slot: _Slot, layer: CaffeLayer) -> None:
        if layer.type not in _CONV_TYPES:
            raise self._error(layer, f"is not a convolution layer (expected {' or '.join(_CONV_TYPES)})")
        allowed = {"yes": (2,), "optional": (1, 2), "no": (1,)}[slot.bias]
        what = {"yes": "2 (weight, bias)", "optional": "1 or 2 (weight[, bias])", "no": "1 (weight, no bias)"}
        self._blob_count(layer, allowed, what[slot.bias])
        self.state[f"{slot.key}.weight"] = self._fit(layer, 0, "weight", f"{slot.key}.weight")
        if f"{slot.key}.bias" in self.expected:
            if len(layer.blobs) > 1:
                self.state[f"{slot.key}.bias"] = self._fit(layer, 1, "bias", f"{slot.key}.bias")
            else:
                self.state[f"{slot.key}.bias"] = torch.zeros(self.expected[f"{slot.key}.bias"].shape)

    def conv_bn(self, slot: _Slot, layer: CaffeLayer, bn: CaffeLayer) -> None:
        if layer.type not in _CONV_TYPES:
            raise self._error(layer, f"is not a convolution layer (expected {' or '.join(_CONV_TYPES)})")
        self._blob_count(layer, (1, 2), "1 or 2 (weight[, bias])")
        if bn.type != "BN":
            raise self._error(bn, "expected a BN layer (the DeconvNet release's inference-form batch norm)")
        self._blob_count(bn, (2,), "2 (scale, shift: the inference-form BN of DeconvNet_trainval_inference)")
        weight_key, bn_key = f"{slot.key}.0.weight", f"{slot.key}.1"
        self.state[weight_key] = self._fit(layer, 0, "weight", weight_key)
        channels = self.expected[f"{bn_key}.weight"].shape[0]
        bias = torch.zeros(channels)
        if len(layer.blobs) > 1:
            bias_blob = layer.blobs[1].data
            if _strip_ones(bias_blob.shape) != (channels,):
                raise self._error(layer, f"blob 1 (bias) has shape {bias_blob.shape}, expected ({channels},) for "
                                         f"{self.context}")
            bias = torch.from_numpy(bias_blob.reshape(channels).astype(np.float64))
        scale = self._fit(bn, 0, "scale", f"{bn_key}.weight").double()
        shift = self._fit(bn, 1, "shift", f"{bn_key}.bias").double()
        self.state[f"{bn_key}.weight"] = scale.float()
        self.state[f"{bn_key}.bias"] = (shift + scale * bias.double()).float()
        self.state[f"{bn_key}.running_mean"] = torch.zeros(channels)
        self.state[f"{bn_key}.running_var"] = torch.full((channels,), 1.0 - _BN_EPS)
        self.state[f"{bn_key}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)


def _strip_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``(1, 1, 1, 21)`` → ``(21,)``; ``(1, 64, 1, 1)`` → ``(64, 1, 1)``; leading ones only."""
    shape = tuple(shape)
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _infer_width(layers: dict[str, CaffeLayer], path: Path) -> float:
    fc6 = layers.get("fc6")
    if fc6 is None:
        raise CaffeModelError("missing layer 'fc6'", path)
    if not fc6.blobs or not fc6.blobs[0].shape:
        raise CaffeModelError(f"layer 'fc6' ({fc6.type}): has no weight blob", path)
    out = _strip_ones(fc6.blobs[0].shape)[0] if fc6.type == "INNERPRODUCT" else fc6.blobs[0].shape[0]
    return out / FC_CHANNELS


def convert_caffe(net: CaffeNet, path: str | os.PathLike[str], arch: str = "auto") -> tuple[
        dict[str, Tensor], ModelMeta, ImportSummary]:
    """Map a parsed Caffe net onto our ``arch`` (``"deconvnet"``, ``"fcn8s"`` or ``"auto"``): ``(state dict,
    metadata, summary)``. Raises :class:`CaffeModelError` (naming ``path`` and the layer) for a net that is
    neither architecture, is the other one, or has a missing or extra layer or a blob of the wrong shape."""
    path = Path(path)
    found = detect_architecture(net)
    if found is None:
        raise _neither(net, path)
    if arch == "auto":
        arch = found
    elif arch not in ARCHITECTURES:
        raise CaffeModelError(f"unknown architecture {arch!r} (use deconvnet or fcn8s)", path)
    elif arch != found:
        raise CaffeModelError(f"this is a {_NAMES[found]} net, not {_NAMES[arch]}; import it with --arch {found}",
                              path)
    layers = net.by_name()
    slots = _deconvnet_slots() if arch == "deconvnet" else _fcn8s_slots()
    width = _infer_width(layers, path)
    score = _score_layer(layers) if arch == "deconvnet" else _find(layers, ("score-fr", "score_fr"))
    if score is None:
        raise CaffeModelError("missing layer 'seg-score-voc'", path)
    if not score.blobs or len(score.blobs[0].shape) < 1:
        raise CaffeModelError(f"layer {score.name!r} ({score.type}): has no weight blob", path)
    classes = int(score.blobs[0].shape[0])
    geometry = "caffe" if arch == "fcn8s" else "aligned"
    extra = {"geometry": geometry} if arch == "fcn8s" else {}
    with torch.device("meta"):
        model = build_model(arch, num_classes=classes, width=width, **extra)
    expected = model.state_dict()
    mapper = _Mapper(path, arch, expected, width, classes)
    used: set[str] = set()
    for slot in slots:
        layer = score if slot.key == "score" else _find(layers, slot.names)
        if layer is None:
            raise CaffeModelError(f"missing layer {slot.names[0]!r} ({_NAMES[arch]} needs it)", path)
        used.add(layer.name)
        if slot.kind == "conv":
            mapper.conv(slot, layer)
        else:
            bn = layers.get(slot.bn_name)
            if bn is None:
                raise CaffeModelError(f"missing layer {slot.bn_name!r} (the BN after {layer.name!r})", path)
            used.add(bn.name)
            mapper.conv_bn(slot, layer, bn)
    extras = [layer for layer in net.layers if layer.blobs and layer.name not in used]
    if extras:
        names = ", ".join(f"{x.name!r} ({x.type}, {len(x.blobs)} blobs)" for x in extras[:3])
        more = f" and {len(extras) - 3} more" if len(extras) > 3 else ""
        raise CaffeModelError(f"extra layer {names}{more}: {_NAMES[arch]} has no place for its weights", path)
    missing = sorted(set(expected) - set(mapper.state))
    if missing:  # a programming error in the slot tables, not a user's
        raise AssertionError(f"caffe import left {missing[:3]} unset")
    voc = classes == len(VOC_CLASSES)
    meta = ModelMeta(
        architecture=arch, width=width, num_classes=classes,
        class_names=list(VOC_CLASSES) if voc else [f"class {i}" for i in range(classes)],
        palette=voc_palette()[:classes].tolist(),
        mean=[m / 255.0 for m in CAFFE_MEAN_BGR], std=[1.0 / 255.0] * 3, input_size=224,
        train_config={"imported_from": path.name, "caffe_net": net.name, "caffe_format": net.version},
        channel_order="bgr", geometry=geometry,
    )
    params = sum(int(np.prod(v.shape)) for k, v in expected.items() if k in dict(model.named_parameters()))
    summary = ImportSummary(arch, width, classes, params, net.name, net.version, len(net.layers))
    meta.train_config["recognised"] = summary.describe()
    return mapper.state, meta, summary


def import_caffe(path: str | os.PathLike[str], out: str | os.PathLike[str], arch: str = "auto") -> ImportSummary:
    """Read the ``.caffemodel`` at ``path``, convert it (see :func:`convert_caffe`) and write the checkpoint
    ``out`` atomically; on any error nothing is written and :class:`CaffeModelError` (or ``OutputError``)
    says why."""
    net = read_caffemodel(path)
    state, meta, summary = convert_caffe(net, path, arch)
    del net
    save_checkpoint(out, state, meta)
    return summary
