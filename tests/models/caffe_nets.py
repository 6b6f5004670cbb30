"""Test helper: small Caffe nets with the release's layer names, types and topology, random blobs, written as
``.caffemodel`` files in the protobuf wire format, and an independent reference forward that interprets the
layer list in prototxt order with functional ops (conv / BN ``x·scale + shift`` / max-pool with indices
(ceil mode, Caffe's) / unpool / deconv / crop / eltwise sum), in float64.

Channel counts are the released nets' scaled by ``width`` (at least 8 each, as our models scale them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deconv_gui.io.caffe_model import CaffeBlob, CaffeLayer, CaffeNet, encode_net
from deconv_gui.models.deconvnet import DECODER_STAGES, ENCODER_STAGES, FC_CHANNELS
from deconv_gui.models.layers import scaled_channels

CAFFE_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)


@dataclass
class Layer:
    """A prototxt layer: name, V1 type name, bottoms, tops, parameters, and its blobs (float32 arrays)."""

    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    params: dict = field(default_factory=dict)
    blobs: list[np.ndarray] = field(default_factory=list)


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.layers: list[Layer] = []

    def conv(self, name: str, bottom: str, cin: int, cout: int, k: int, *, pad: int = 0, stride: int = 1,
             deconv: bool = False, bias: bool = True, top: str | None = None) -> str:
        std = np.sqrt(2.0 / (cin * k * k)) * (stride if deconv else 1)
        shape = (cin, cout, k, k) if deconv else (cout, cin, k, k)
        blobs = [self.rng.normal(0.0, std, shape).astype(np.float32)]
        if bias:
            blobs.append(self.rng.normal(0.0, 0.1, (cout,)).astype(np.float32))
        kind = "DECONVOLUTION" if deconv else "CONVOLUTION"
        top = top or name
        self.layers.append(Layer(name, kind, [bottom], [top], {"k": k, "pad": pad, "stride": stride}, blobs))
        return top

    def bn(self, name: str, blob: str, channels: int) -> None:
        scale = self.rng.uniform(0.5, 1.5, (1, channels, 1, 1)).astype(np.float32)
        shift = self.rng.normal(0.0, 0.1, (1, channels, 1, 1)).astype(np.float32)
        self.layers.append(Layer(name, "BN", [blob], [blob], {}, [scale, shift]))

    def simple(self, name: str, kind: str, bottoms: list[str], tops: list[str], **params: object) -> None:
        self.layers.append(Layer(name, kind, bottoms, tops, dict(params)))


def deconvnet_layers(width: float, classes: int = 21, seed: int = 0, input_size: int = 224) -> list[Layer]:
    """The DeconvNet inference net (``DeconvNet_inference_deploy.prototxt``'s names) at ``width``."""
    b = _Builder(seed)
    x, cin, sizes = "data", 3, []
    size = input_size
    for s, stage in enumerate(ENCODER_STAGES, start=1):
        for j, c in enumerate(stage, start=1):
            cout = scaled_channels(c, width)
            x = b.conv(f"conv{s}_{j}", x, cin, cout, 3, pad=1)
            b.bn(f"bn{s}_{j}", x, cout)
            b.simple(f"relu{s}_{j}", "RELU", [x], [x])
            cin = cout
        sizes.append(size)
        b.simple(f"pool{s}", "POOLING", [x], [f"pool{s}", f"pool{s}_mask"], k=2, stride=2)
        x, size = f"pool{s}", size // 2
    fc = scaled_channels(FC_CHANNELS, width)
    x = b.conv("fc6", x, cin, fc, 7)
    b.bn("bnfc6", x, fc)
    b.simple("relu6", "RELU", [x], [x])
    x = b.conv("fc7", x, fc, fc, 1)
    b.bn("bnfc7", x, fc)
    b.simple("relu7", "RELU", [x], [x])
    x = b.conv("fc6-deconv", x, fc, cin, 7, deconv=True)
    b.bn("fc6-deconv-bn", x, cin)
    b.simple("fc6-deconv-relu", "RELU", [x], [x])
    for k, stage in enumerate(DECODER_STAGES):
        s = len(DECODER_STAGES) - k
        b.simple(f"unpool{s}", "UNPOOLING", [x, f"pool{s}_mask"], [f"unpool{s}"], k=2, stride=2,
                 size=sizes[s - 1])
        x = f"unpool{s}"
        for j, c in enumerate(stage, start=1):
            cout = scaled_channels(c, width)
            x = b.conv(f"deconv{s}_{j}", x, cin, cout, 3, pad=1, deconv=True)
            b.bn(f"debn{s}_{j}", x, cout)
            b.simple(f"derelu{s}_{j}", "RELU", [x], [x])
            cin = cout
    b.conv("seg-score-voc", x, cin, classes, 1, top="seg-score")
    return b.layers


def fcn8s_layers(width: float, classes: int = 21, seed: int = 0) -> list[Layer]:
    """FCN-8s pascal's deploy net (``fcn-8s-pascal-deploy.prototxt``'s names) at ``width``."""
    b = _Builder(seed)
    x, cin = "data", 3
    for s, stage in enumerate(ENCODER_STAGES, start=1):
        for j, c in enumerate(stage, start=1):
            cout = scaled_channels(c, width)
            x = b.conv(f"conv{s}_{j}", x, cin, cout, 3, pad=100 if (s, j) == (1, 1) else 1)
            b.simple(f"relu{s}_{j}", "RELU", [x], [x])
            cin = cout
        b.simple(f"pool{s}", "POOLING", [x], [f"pool{s}"], k=2, stride=2)
        x = f"pool{s}"
    pool3_c, pool4_c = scaled_channels(256, width), scaled_channels(512, width)
    fc = scaled_channels(FC_CHANNELS, width)
    x = b.conv("fc6", x, cin, fc, 7)
    b.simple("relu6", "RELU", [x], [x])
    b.simple("drop6", "DROPOUT", [x], [x])
    x = b.conv("fc7", x, fc, fc, 1)
    b.simple("relu7", "RELU", [x], [x])
    b.simple("drop7", "DROPOUT", [x], [x])
    x = b.conv("score-fr", x, fc, classes, 1)
    x = b.conv("score2", x, classes, classes, 4, stride=2, deconv=True)
    p4 = b.conv("score-pool4", "pool4", pool4_c, classes, 1)
    b.simple("crop-pool4", "CROP", [p4, x], ["score-pool4c"], offset=5)
    b.simple("fuse-pool4", "ELTWISE", [x, "score-pool4c"], ["score-fused"])
    x = b.conv("score4", "score-fused", classes, classes, 4, stride=2, deconv=True, bias=False)
    p3 = b.conv("score-pool3", "pool3", pool3_c, classes, 1)
    b.simple("crop-pool3", "CROP", [p3, x], ["score-pool3c"], offset=9)
    b.simple("fuse-pool3", "ELTWISE", [x, "score-pool3c"], ["score-final"])
    x = b.conv("upsample", "score-final", classes, classes, 16, stride=8, deconv=True, bias=False)
    b.simple("crop", "CROP", [x, "data"], ["score"], offset=31)
    return b.layers


def to_net(layers: list[Layer], version: str = "V1", name: str = "test-net") -> CaffeNet:
    return CaffeNet(name=name, version=version, layers=[
        CaffeLayer(layer.name, layer.type, list(layer.bottoms), list(layer.tops),
                   [CaffeBlob(blob) for blob in layer.blobs]) for layer in layers])


def write_caffemodel(path: Path, layers: list[Layer], version: str = "V1", name: str = "test-net") -> Path:
    """``layers`` as a ``.caffemodel`` (V1 ``layers`` with enum types, or V2 ``layer`` with type strings)."""
    path.write_bytes(encode_net(to_net(layers, version, name)))
    return path


@torch.no_grad()
def reference_forward(layers: list[Layer], data: torch.Tensor) -> torch.Tensor:
    """Run ``layers`` in order on ``data`` ``(N, 3, H, W)`` (already preprocessed: BGR, mean subtracted), in
    float64; returns the last layer's top."""
    blobs: dict[str, torch.Tensor] = {"data": data.double()}
    top = None
    for layer in layers:
        w = [torch.from_numpy(b).double() for b in layer.blobs]
        ins = [blobs[b] for b in layer.bottoms]
        p = layer.params
        if layer.type == "CONVOLUTION":
            out = [F.conv2d(ins[0], w[0], w[1] if len(w) > 1 else None, stride=p["stride"], padding=p["pad"])]
        elif layer.type == "DECONVOLUTION":
            out = [F.conv_transpose2d(ins[0], w[0], w[1] if len(w) > 1 else None, stride=p["stride"],
                                      padding=p["pad"])]
        elif layer.type == "BN":
            out = [ins[0] * w[0] + w[1]]
        elif layer.type == "RELU":
            out = [F.relu(ins[0])]
        elif layer.type == "DROPOUT":
            out = [ins[0]]
        elif layer.type == "POOLING":
            pooled, idx = F.max_pool2d(ins[0], p["k"], p["stride"], ceil_mode=True, return_indices=True)
            out = [pooled, idx][: len(layer.tops)]
        elif layer.type == "UNPOOLING":
            out = [F.max_unpool2d(ins[0], ins[1], p["k"], p["stride"], output_size=(p["size"], p["size"]))]
        elif layer.type == "CROP":
            o, (h, wd) = p["offset"], ins[1].shape[-2:]
            out = [ins[0][..., o:o + h, o:o + wd]]
        elif layer.type == "ELTWISE":
            out = [ins[0] + ins[1]]
        else:
            raise ValueError(layer.type)
        for name, value in zip(layer.tops, out, strict=True):
            blobs[name] = value
        top = out[0]
    assert top is not None
    return top


def caffe_preprocess(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB → ``(1, 3, H, W)`` float64 as Caffe's scripts feed it: BGR, 0–255 minus the mean."""
    bgr = image[..., ::-1].astype(np.float64) - np.asarray(CAFFE_MEAN_BGR)
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None]
