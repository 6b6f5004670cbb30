"""Read Caffe ``.caffemodel`` weight files straight from the protobuf wire format (no Caffe, no ``protobuf``).

A ``.caffemodel`` is a serialized ``caffe.NetParameter`` (proto2). Both layer lists are read:

* V1 (the DeconvNet release, FCN-8s pascal): ``NetParameter.layers`` = field 2; in a layer ``bottom`` 2,
  ``top`` 3, ``name`` 4, ``type`` 5 (an enum varint; the DeconvNet fork adds UNPOOLING 42 and BN 43, which
  BVLC's schema lacks — unknown values are kept as ``"TYPE_<n>"``, never an error), ``blobs`` 6.
* V2: ``NetParameter.layer`` = field 100; ``name`` 1, ``type`` 2 (a string), ``bottom`` 3, ``top`` 4,
  ``blobs`` 7.

``BlobProto``: ``num/channels/height/width`` 1–4 (int32, legacy 4-D shape), ``data`` 5 (float32, packed or
not), ``shape`` 7 (``BlobShape.dim`` = 1, packed int64), ``double_data`` 8. Every other field is skipped.
Type names are normalised to upper case without underscores (V1 ``INNER_PRODUCT`` and V2 ``InnerProduct``
both become ``"INNERPRODUCT"``).

Problems raise :class:`CaffeModelError` naming the file (and the layer where there is one) and the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.io.files import require_readable_file

#: V1LayerParameter.LayerType values (BVLC's plus the DeconvNet fork's UNPOOLING / BN and FCN's CROP).
V1_LAYER_TYPES: dict[int, str] = {
    0: "NONE", 1: "ACCURACY", 2: "BNLL", 3: "CONCAT", 4: "CONVOLUTION", 5: "DATA", 6: "DROPOUT",
    7: "EUCLIDEANLOSS", 8: "FLATTEN", 9: "HDF5DATA", 10: "HDF5OUTPUT", 11: "IM2COL", 12: "IMAGEDATA",
    13: "INFOGAINLOSS", 14: "INNERPRODUCT", 15: "LRN", 16: "MULTINOMIALLOGISTICLOSS", 17: "POOLING",
    18: "RELU", 19: "SIGMOID", 20: "SOFTMAX", 21: "SOFTMAXLOSS", 22: "SPLIT", 23: "TANH", 24: "WINDOWDATA",
    25: "ELTWISE", 26: "POWER", 27: "SIGMOIDCROSSENTROPYLOSS", 28: "HINGELOSS", 29: "MEMORYDATA",
    30: "ARGMAX", 31: "THRESHOLD", 32: "DUMMYDATA", 33: "SLICE", 34: "MVN", 35: "ABSVAL", 36: "SILENCE",
    37: "CONTRASTIVELOSS", 38: "EXP", 39: "DECONVOLUTION", 40: "CROP", 42: "UNPOOLING", 43: "BN",
}

_NET_V1_LAYERS = 2
_NET_V2_LAYER = 100
_NET_NAME = 1
_KNOWN_NON_CAFFE = {
    b"PK\x03\x04": "a zip archive (a PyTorch checkpoint?)",
    b"\x80": "a Python pickle (a PyTorch checkpoint?)",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x89HDF": "an HDF5 file (Keras weights?)",
    b"\x1f\x8b": "a gzip archive (unpack it first)",
    b"%PDF": "a PDF document",
}


class CaffeModelError(DeconvGuiError):
    """A ``.caffemodel`` file is unreadable, truncated, or does not hold the network that was asked for."""


@dataclass
class CaffeBlob:
    """One parameter blob: ``data`` float32 with the blob's shape (``shape`` or legacy num/channels/h/w)."""

    data: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape)


@dataclass
class CaffeLayer:
    """A layer as stored: name, normalised type name, bottom/top blob names, parameter blobs."""

    name: str
    type: str
    bottoms: list[str] = field(default_factory=list)
    tops: list[str] = field(default_factory=list)
    blobs: list[CaffeBlob] = field(default_factory=list)


@dataclass
class CaffeNet:
    """A parsed ``NetParameter``: its name, its layers in file order, and ``"V1"`` or ``"V2"``."""

    name: str
    layers: list[CaffeLayer]
    version: str

    def by_name(self) -> dict[str, CaffeLayer]:
        return {layer.name: layer for layer in self.layers}


class _Truncated(Exception):
    """The data ended inside a field."""


class _Malformed(Exception):
    """Bytes that are not protobuf wire format."""


def normalise_type(name: str) -> str:
    """``"InnerProduct"`` / ``"INNER_PRODUCT"`` → ``"INNERPRODUCT"``."""
    return name.upper().replace("_", "")


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise _Truncated
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed("varint longer than 10 bytes")


def _fields(buf: memoryview, start: int, end: int):  # noqa: ANN202 - a generator of tuples
    """``(field number, wire type, value)`` over ``buf[start:end]``: varints as int, fixed32/64 as their byte
    offset, length-delimited as ``(offset, length)``."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _Malformed("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1:
            value, pos = pos, pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            value, pos = (pos, length), pos + length
        elif wire == 5:
            value, pos = pos, pos + 4
        else:
            raise _Malformed(f"wire type {wire}")
        if pos > end:
            raise _Truncated
        yield number, wire, value


def _string(buf: memoryview, value: tuple[int, int]) -> str:
    offset, length = value
    try:
        return bytes(buf[offset:offset + length]).decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed("a name that is not UTF-8 text") from None


def _packed_varints(buf: memoryview, value: tuple[int, int]) -> list[int]:
    offset, length = value
    out, pos = [], offset
    while pos < offset + length:
        v, pos = _varint(buf, pos, offset + length)
        out.append(v)
    return out


def _parse_blob(buf: memoryview, start: int, end: int) -> CaffeBlob:
    legacy = {1: 0, 2: 0, 3: 0, 4: 0}
    dims: list[int] | None = None
    chunks: list[np.ndarray] = []
    singles: list[float] = []
    for number, wire, value in _fields(buf, start, end):
        if number in legacy and wire == 0:
            legacy[number] = value
        elif number == 7 and wire == 2:
            dims = []
            for n, w, v in _fields(buf, value[0], value[0] + value[1]):
                if n == 1 and w == 2:
                    dims += _packed_varints(buf, v)
                elif n == 1 and w == 0:
                    dims.append(v)
        elif number == 5 and wire == 2:
            offset, length = value
            if length % 4:
                raise _Malformed("float data whose length is not a multiple of 4")
            chunks.append(np.frombuffer(buf, dtype="<f4", count=length // 4, offset=offset))
        elif number == 5 and wire == 5:
            singles.append(float(np.frombuffer(buf, dtype="<f4", count=1, offset=value)[0]))
        elif number == 8 and wire == 2:
            offset, length = value
            if length % 8:
                raise _Malformed("double data whose length is not a multiple of 8")
            chunks.append(np.frombuffer(buf, dtype="<f8", count=length // 8, offset=offset).astype(np.float32))
    if singles:
        chunks.append(np.asarray(singles, np.float32))
    data = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    shape = tuple(dims) if dims is not None else tuple(legacy[k] for k in (1, 2, 3, 4))
    if dims is None and all(s == 0 for s in shape):
        shape = (data.size,)
    if int(np.prod(shape, dtype=np.int64)) != data.size:
        raise _Malformed(f"a blob of shape {shape} holds {data.size} values")
    return CaffeBlob(np.array(data.reshape(shape), np.float32))  # a copy: independent of the file buffer


def _parse_layer(buf: memoryview, start: int, end: int, version: str) -> CaffeLayer:
    if version == "V1":
        f_name, f_type, f_bottom, f_top, f_blobs = 4, 5, 2, 3, 6
    else:
        f_name, f_type, f_bottom, f_top, f_blobs = 1, 2, 3, 4, 7
    layer = CaffeLayer(name="", type="")
    blob_spans = []
    for number, wire, value in _fields(buf, start, end):
        if number == f_name and wire == 2:
            layer.name = _string(buf, value)
        elif number == f_type and version == "V1" and wire == 0:
            layer.type = V1_LAYER_TYPES.get(value, f"TYPE_{value}")
        elif number == f_type and version == "V2" and wire == 2:
            layer.type = normalise_type(_string(buf, value))
        elif number == f_bottom and wire == 2:
            layer.bottoms.append(_string(buf, value))
        elif number == f_top and wire == 2:
            layer.tops.append(_string(buf, value))
        elif number == f_blobs and wire == 2:
            blob_spans.append(value)
    for i, (offset, length) in enumerate(blob_spans):
        try:
            layer.blobs.append(_parse_blob(buf, offset, offset + length))
        except _Malformed as err:
            raise _Malformed(f"layer {layer.name!r}, blob {i}: {err}") from None
    return layer


def _looks_like_text(head: bytes) -> bool:
    return bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def parse_caffemodel(data: bytes | memoryview, path: str | os.PathLike[str] = "<bytes>") -> CaffeNet:
    """Parse the bytes of a ``.caffemodel``; see :func:`read_caffemodel`."""
    buf = memoryview(data)
    head = bytes(buf[:256])
    for magic, what in _KNOWN_NON_CAFFE.items():
        if head.startswith(magic):
            raise CaffeModelError(f"not a Caffe model: the file is {what}", path)
    name, spans = "", []
    current = "layers"
    try:
        for number, wire, value in _fields(buf, 0, len(buf)):
            if number == _NET_NAME and wire == 2:
                name = _string(buf, value)
            elif number == _NET_V1_LAYERS and wire == 2:
                spans.append(("V1", value))
            elif number == _NET_V2_LAYER and wire == 2:
                spans.append(("V2", value))
        layers = []
        for version, (offset, length) in spans:
            current = f"layer {len(layers) + 1}"
            layers.append(_parse_layer(buf, offset, offset + length, version))
            current = f"after layer {layers[-1].name!r}"
    except _Truncated:
        raise CaffeModelError(
            f"truncated: the data ends inside {current if spans else 'the first field'} "
            "(incomplete download or copy?)", path) from None
    except _Malformed as err:
        if _looks_like_text(head):
            raise CaffeModelError("not a Caffe model: a text file (a .prototxt?), not the binary .caffemodel "
                                  "weights", path) from None
        raise CaffeModelError(f"not a Caffe model: not protobuf data ({err})", path) from None
    if not layers:
        raise CaffeModelError("not a Caffe model: no layers in the file", path)
    if not all(layer.name for layer in layers):
        raise CaffeModelError("not a Caffe model: a layer without a name", path)
    versions = {version for version, _ in spans}
    return CaffeNet(name=name, layers=layers, version="V1" if versions == {"V1"} else "V2")


def read_caffemodel(path: str | os.PathLike[str]) -> CaffeNet:
    """Read ``path`` (a binary ``.caffemodel``): every layer with its name, type, bottoms, tops and blobs.

    Raises :class:`CaffeModelError` for a missing/unreadable file, a file that is not a Caffe model (an image,
    a checkpoint, a text prototxt, random bytes), or a truncated one.
    """
    path = Path(path)
    require_readable_file(path, "a Caffe model file", CaffeModelError)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CaffeModelError(f"cannot read: {err.strerror or err}", path) from None
    return parse_caffemodel(data, path)


# --- writing (used to build test files; small nets only) ---------------------------------------------------


def _enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _enc_field(number: int, wire: int, payload: bytes | int) -> bytes:
    tag = _enc_varint(number << 3 | wire)
    if wire == 0:
        return tag + _enc_varint(int(payload))
    assert isinstance(payload, bytes)
    return tag + _enc_varint(len(payload)) + payload


def encode_blob(array: np.ndarray, *, legacy_shape: bool = True) -> bytes:
    """A ``BlobProto``: float32 data (packed) with a legacy 4-D shape (V1 style) or a ``BlobShape``."""
    array = np.asarray(array, np.float32)
    out = b""
    if legacy_shape:
        shape = (1,) * (4 - array.ndim) + array.shape if array.ndim <= 4 else array.shape
        for number, size in zip((1, 2, 3, 4), shape, strict=True):
            out += _enc_field(number, 0, int(size))
    else:
        dims = b"".join(_enc_varint(int(s)) for s in array.shape)
        out += _enc_field(7, 2, _enc_field(1, 2, dims))
    return out + _enc_field(5, 2, array.astype("<f4").tobytes())


_V1_TYPE_VALUES = {name: value for value, name in V1_LAYER_TYPES.items()}


def encode_layer(layer: CaffeLayer, version: str = "V1") -> bytes:
    """A layer message: V1 (``type`` as the enum value of ``layer.type``) or V2 (``type`` as a string)."""
    if version == "V1":
        out = _enc_field(4, 2, layer.name.encode())
        out += _enc_field(5, 0, _V1_TYPE_VALUES[layer.type])
        out += b"".join(_enc_field(2, 2, b.encode()) for b in layer.bottoms)
        out += b"".join(_enc_field(3, 2, t.encode()) for t in layer.tops)
        out += b"".join(_enc_field(6, 2, encode_blob(blob.data)) for blob in layer.blobs)
        return out
    out = _enc_field(1, 2, layer.name.encode()) + _enc_field(2, 2, layer.type.encode())
    out += b"".join(_enc_field(3, 2, b.encode()) for b in layer.bottoms)
    out += b"".join(_enc_field(4, 2, t.encode()) for t in layer.tops)
    out += b"".join(_enc_field(7, 2, encode_blob(blob.data, legacy_shape=False)) for blob in layer.blobs)
    return out


def encode_net(net: CaffeNet) -> bytes:
    """A ``NetParameter`` holding ``net.layers`` as V1 ``layers`` (field 2) or V2 ``layer`` (field 100)."""
    field_number = _NET_V1_LAYERS if net.version == "V1" else _NET_V2_LAYER
    out = _enc_field(_NET_NAME, 2, net.name.encode()) if net.name else b""
    return out + b"".join(_enc_field(field_number, 2, encode_layer(layer, net.version)) for layer in net.layers)
