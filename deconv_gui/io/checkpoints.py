"""Checkpoint files: one file holds a model's weights and everything needed to use them.

On disk (``torch.save``) a checkpoint is a plain dict that ``torch.load(..., weights_only=True)`` can read,
so opening a file never runs code from it::

    {"format": "deconv_gui.checkpoint", "format_version": 1,
     "meta": {...ModelMeta as plain str/int/float/list/dict...},
     "state_dict": {name: Tensor}}

Class names, palette and input normalisation travel with the weights (:class:`ModelMeta`), not with the model
class. Every problem with a file raises :class:`~deconv_gui.core.errors.CheckpointError` naming the file and
the reason; building the model from a checkpoint is ``deconv_gui.models.registry.model_from_checkpoint``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from deconv_gui.core.errors import CheckpointError
from deconv_gui.core.vocabulary import CROP_FILLS, FC_PADDINGS
from deconv_gui.io.atomic import atomic_path
from deconv_gui.io.files import require_readable_file

FORMAT = "deconv_gui.checkpoint"
SHARD_FORMAT = "deconv_gui.checkpoint-shard"
#: Version 1: one file. Version 2: the file names shard files beside it (``save_checkpoint(max_file_bytes=)``).
FORMAT_VERSION = 2
SHARDED_FORMAT_VERSION = 2
#: The architectures a checkpoint may name; equal to ``deconv_gui.models.registry.MODEL_BUILDERS``'s keys
#: (a test keeps them equal — io may not import models).
KNOWN_ARCHITECTURES: tuple[str, ...] = ("deconvnet", "fcn8s", "pspnet", "linknet")
#: Load-only architectures (torchvision's segmentation models, imported from their state-dict files); equal to
#: ``deconv_gui.models.torchvision_seg.TORCHVISION_BUILDERS``'s keys.
IMPORTED_ARCHITECTURES: tuple[str, ...] = (
    "fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CHANNEL_ORDERS: tuple[str, ...] = ("rgb", "bgr")
GEOMETRIES: tuple[str, ...] = ("aligned", "caffe")

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_PROTO = b"\x80"  # torch's legacy format and plain pickles start with the PROTO opcode
_KNOWN_NON_CHECKPOINTS = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive",
}


@dataclass
class ModelMeta:
    """What a checkpoint says about its weights.

    ``palette`` is ``(num_classes, 3)`` RGB 0..255; ``mean`` / ``std`` normalise 0..1 input per channel, in
    ``channel_order`` (``"rgb"``, or ``"bgr"`` for Caffe weights: the runner flips the channels first);
    ``input_size`` is the training crop side (224 for DeconvNet's instance crops). ``geometry`` is
    ``"aligned"`` (this project's layout) or ``"caffe"`` (FCN-8s as the original: conv1_1 pad 100, crops at
    5/9/31). ``train_config`` and ``metrics`` are free-form but must be plain (JSON-like) data.
    ``whole_scale`` is the factor the image is resized by for a whole-image pass (a model trained on
    half-size images has 0.5; the scores are resized back to the image). ``crop_fill`` is what a proposal crop
    holds past the image's border (:data:`~deconv_gui.core.vocabulary.CROP_FILLS`; as the model was trained).
    ``encoder_width`` / ``fc_width`` (VGG16 models) scale the encoder and fc6/fc7 apart from ``width``; ``None``
    means "as ``width``". ``fc_padding`` is DeconvNet's fc6 (:data:`~deconv_gui.core.vocabulary.FC_PADDINGS`).
    ``proposals`` holds the Edge Box settings the model was made for (``EdgeBoxConfig``
    field → value, e.g. ``{"min_side": 48, "top_n": 100}``; empty = DeconvNet's VOC defaults), used by the pipeline unless the user overrides them.
    ``ensemble`` (``{"weight": w, "partner": name, "chosen_on": split, ...}``) and ``crf`` (``CRFParams``
    fields plus ``"chosen_on"``) are what ``tune-ensemble`` / ``tune-crf`` chose; empty = the paper's defaults.
    """

    architecture: str
    width: float
    num_classes: int
    class_names: list[str]
    palette: list[list[int]]
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    input_size: int = 224
    whole_scale: float = 1.0
    crop_fill: str = "zeros"
    encoder_width: float | None = None
    fc_width: float | None = None
    fc_padding: str = "valid"
    proposals: dict = field(default_factory=dict)
    ensemble: dict = field(default_factory=dict)
    crf: dict = field(default_factory=dict)
    train_config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    channel_order: str = "rgb"
    geometry: str = "aligned"

    def problems(self) -> list[str]:
        """Internal inconsistencies (empty when the metadata is usable)."""
        found = []
        if self.num_classes < 1:
            found.append(f"num_classes is {self.num_classes}")
        if len(self.class_names) != self.num_classes:
            found.append(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if len(self.palette) != self.num_classes or any(len(c) != 3 for c in self.palette):
            found.append(f"palette is not {self.num_classes}×3")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            found.append("mean/std are not 3 values with std > 0")
        if self.width <= 0:
            found.append(f"width is {self.width}")
        if not 0 < self.whole_scale <= 4:
            found.append(f"whole_scale is {self.whole_scale}, not in (0, 4]")
        if self.crop_fill not in CROP_FILLS:
            found.append(f"crop_fill is {self.crop_fill!r}, not one of {', '.join(CROP_FILLS)}")
        if self.fc_padding not in FC_PADDINGS:
            found.append(f"fc_padding is {self.fc_padding!r}, not one of {', '.join(FC_PADDINGS)}")
        elif self.fc_padding != "valid" and self.architecture != "deconvnet":
            found.append(f"fc_padding {self.fc_padding!r} exists for deconvnet only, not {self.architecture}")
        if self.channel_order not in CHANNEL_ORDERS:
            found.append(f"channel_order is {self.channel_order!r}, not one of {', '.join(CHANNEL_ORDERS)}")
        if self.geometry not in GEOMETRIES:
            found.append(f"geometry is {self.geometry!r}, not one of {', '.join(GEOMETRIES)}")
        elif self.geometry == "caffe" and self.architecture != "fcn8s":
            found.append(f"geometry 'caffe' exists for fcn8s only, not {self.architecture}")
        for name in ("proposals", "ensemble", "crf"):
            value = getattr(self, name)
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, (bool, int, float, str)) for k, v in value.items()):
                found.append(f"{name} is not a mapping of setting → number/text")
        for name in ("encoder_width", "fc_width"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                found.append(f"{name} is {value}")
        return found

    def to_plain(self) -> dict[str, Any]:
        """The metadata as plain Python types (what is stored)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_plain(cls, data: Any, path: str | os.PathLike[str]) -> ModelMeta:
        """Inverse of :meth:`to_plain`; unknown keys are ignored, missing or ill-typed ones raise CheckpointError."""
        if not isinstance(data, dict):
            raise CheckpointError("metadata is missing or not a dict", path)
        names = {f.name for f in dataclasses.fields(cls)}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise CheckpointError(f"metadata is incomplete: missing {', '.join(missing)}", path)
        try:
            meta = cls(**{k: v for k, v in data.items() if k in names})
            meta.width = float(meta.width)
            meta.num_classes = int(meta.num_classes)
            meta.input_size = int(meta.input_size)
            meta.whole_scale = float(meta.whole_scale)
            meta.class_names = [str(c) for c in meta.class_names]
            meta.palette = [[int(v) for v in c] for c in meta.palette]
            meta.mean, meta.std = [float(v) for v in meta.mean], [float(v) for v in meta.std]
            meta.encoder_width = None if meta.encoder_width is None else float(meta.encoder_width)
            meta.fc_width = None if meta.fc_width is None else float(meta.fc_width)
            meta.channel_order, meta.geometry = str(meta.channel_order), str(meta.geometry)
            meta.crop_fill, meta.fc_padding = str(meta.crop_fill), str(meta.fc_padding)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"metadata is malformed ({err})", path) from None
        problems = meta.problems()
        if problems:
            raise CheckpointError(f"metadata is inconsistent: {'; '.join(problems)}", path)
        return meta


def _plain(value: Any) -> Any:
    """``value`` with tuples → lists, numpy/torch scalars → Python numbers, paths → str; else TypeError."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # numpy arrays/scalars, tensors
        return _plain(value.tolist())
    raise TypeError(f"checkpoint metadata must be plain data, got {type(value).__name__}: {value!r}")


def _split_tensors(tensors: dict[str, Tensor], max_bytes: int) -> list[dict[str, Tensor]]:
    """Tensors in order, cut into groups of at most ``max_bytes`` each (a larger tensor is a group alone)."""
    groups: list[dict[str, Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if groups[-1] and size + nbytes > max_bytes:
            groups.append({})
            size = 0
        groups[-1][name] = tensor
        size += nbytes
    return groups


SHARD_INFIX = ".part"
"""Shard ``k`` of ``name.pt`` is ``name`` + this + ``k`` + ``.pt`` (k ≥ 2; the checkpoint itself is part 1)."""


def shard_path(path: Path, k: int) -> Path:
    """Shard ``k`` (1-based, k ≥ 2) of checkpoint ``path``: ``name.pt`` → ``name.part2.pt``."""
    return path.with_name(f"{path.stem}{SHARD_INFIX}{k}{path.suffix}")


def is_shard_file(path: Path) -> bool:
    """Whether ``path`` is named as :func:`shard_path` names shards (``name.partK.pt``, K ≥ 2)."""
    return re.fullmatch(rf".+{re.escape(SHARD_INFIX)}([2-9]|[1-9]\d+)\.pt", Path(path).name) is not None


def save_checkpoint(
    path: str | os.PathLike[str], state_dict: dict[str, Tensor], meta: ModelMeta, *, half: bool = False,
    max_file_bytes: int | None = None,
) -> list[Path]:
    """Write ``state_dict`` + ``meta`` to ``path`` atomically (temporary file in the same folder, then rename).

    Tensors are stored detached, contiguous, on the CPU; with ``half=True`` float32/float64 tensors are stored
    as float16 (half the size; :func:`load_checkpoint` casts them back to float32). With ``max_file_bytes`` a
    larger state is split: ``path`` holds the metadata and the first tensors, ``name.part2.pt`` … the rest,
    each file named with its sha256 in ``path`` (format version 2), shards written first so ``path`` never
    names a missing one. Returns the files written. Raises ``ValueError`` for inconsistent ``meta`` (a
    programming error) and :class:`~deconv_gui.core.errors.OutputError` when a file cannot be written.
    """
    problems = meta.problems()
    if problems:
        raise ValueError(f"inconsistent ModelMeta: {'; '.join(problems)}")
    tensors = {}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().cpu().contiguous()
        if half and tensor.dtype in (torch.float32, torch.float64):
            tensor = tensor.half()
        tensors[name] = tensor
    path = Path(path)
    groups = _split_tensors(tensors, max_file_bytes) if max_file_bytes else [tensors]
    shards = []
    for k, group in enumerate(groups[1:], 2):
        target = shard_path(path, k)
        save_torch_file(target, {"format": SHARD_FORMAT, "format_version": 1, "state_dict": group})
        shards.append({"file": target.name, "sha256": _file_sha256(target), "tensors": len(group)})
    payload = {
        "format": FORMAT,
        "format_version": SHARDED_FORMAT_VERSION if shards else 1,
        "meta": meta.to_plain(),
        "state_dict": groups[0],
    }
    if shards:
        payload["shards"] = shards
    save_torch_file(path, payload)
    return [path, *(path.with_name(s["file"]) for s in shards)]


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_shards(path: Path, entries: Any) -> dict[str, Tensor]:
    """The tensors of the shards a version-2 checkpoint names, each checked against its sha256."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("file"), str)
                                                for e in entries):
        raise CheckpointError("its list of shard files is malformed", path)
    tensors: dict[str, Tensor] = {}
    for entry in entries:
        name = entry["file"]
        shard = path.with_name(name)
        if Path(name).name != name or not shard.is_file():
            raise CheckpointError(f"shard file {name} is missing (it must lie beside the checkpoint)", path)
        if _file_sha256(shard) != entry.get("sha256"):
            raise CheckpointError(f"shard file {name} does not belong to this checkpoint (sha256 differs)", path)
        _sniff(shard)
        payload = _torch_load(shard)
        part = payload.get("state_dict") if isinstance(payload, dict) else None
        if payload.get("format") != SHARD_FORMAT or not isinstance(part, dict) or \
                not all(isinstance(v, Tensor) for v in part.values()):
            raise CheckpointError(f"shard file {name} is not a deconv_gui checkpoint shard", path)
        tensors.update({str(k): v for k, v in part.items()})
    return tensors


def save_torch_file(path: str | os.PathLike[str], payload: Any) -> None:
    """``torch.save(payload)`` to ``path`` atomically; a disk error (full, read-only) raises
    :class:`~deconv_gui.core.errors.OutputError` naming ``path`` and leaves no partial file.

    torch writes through a Python file object that remembers the OS's error (``ENOSPC``, ``EFBIG``): torch's
    zip writer often reports it only as an opaque ``RuntimeError`` ("unexpected pos ...").
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        writer = _ErrorRecordingWriter(fh)
        try:
            torch.save(payload, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise


class _ErrorRecordingWriter:
    """The ``write``/``flush`` of a binary file, remembering the first ``OSError`` a write raised."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._fh.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self._fh.flush()


def _sniff(path: Path) -> None:
    """Reject, before unpickling anything, files that cannot be a checkpoint."""
    require_readable_file(path, "a checkpoint file", CheckpointError)
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as err:
        raise CheckpointError(f"cannot read: {err.strerror or err}", path) from None
    if head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_PROTO):
        return
    for magic, what in _KNOWN_NON_CHECKPOINTS.items():
        if head.startswith(magic):
            raise CheckpointError(f"not a checkpoint: the file is {what}", path)
    raise CheckpointError("not a PyTorch checkpoint file (unrecognised contents)", path)


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with its failures turned into CheckpointError."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": we report our own reason
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the loader raises UnpicklingError, RuntimeError, EOFError, KeyError, ...
        text = str(err)
        code = re.search(r"GLOBAL (\S+)", text)
        if code:
            reason = f"refused: the file contains Python code ({code.group(1)}), not just weights"
        elif "Weights only load failed" in text:
            reason = "refused: the file is a Python pickle that is not a plain weights file"
        elif "central directory" in text or isinstance(err, EOFError):
            reason = "truncated or corrupt (incomplete download or copy?)"
        else:
            reason = f"not a readable PyTorch checkpoint ({type(err).__name__}: {text.splitlines()[0][:120] if text else ''})"
        raise CheckpointError(reason, path) from None


def read_torch_file(path: str | os.PathLike[str]) -> Any:
    """What ``torch.load(weights_only=True)`` reads from ``path``, for any of our ``torch.save`` files (e.g.
    training states); every failure (missing, foreign, code-carrying, truncated) is a CheckpointError
    naming the file, and never suggests ``weights_only=False``."""
    path = Path(path)
    _sniff(path)
    return _torch_load(path)


def read_meta(path: str | os.PathLike[str]) -> ModelMeta:
    """A checkpoint's :class:`ModelMeta` without reading its weights into memory (``mmap``; weights_only).

    Raises CheckpointError naming the file when it is not a readable deconv_gui checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("file not found", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - every loader failure means "not a checkpoint we can read"
        raise CheckpointError(f"not a readable checkpoint ({type(exc).__name__})", path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError("not a deconv_gui checkpoint (no 'format' marker)", path)
    return ModelMeta.from_plain(payload.get("meta"), path)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], ModelMeta]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(state_dict, meta)``, tensors on the CPU.

    float16/bfloat16 tensors come back as float32. Raises CheckpointError (message: the path and the reason)
    for a missing, empty, foreign, code-carrying, truncated or newer-format file, inconsistent metadata, an
    architecture outside :data:`KNOWN_ARCHITECTURES` or weights holding NaN/inf (naming the first such tensor).
    """
    path = Path(path)
    _sniff(path)
    payload = _torch_load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        if isinstance(payload, dict) and payload and all(isinstance(v, Tensor) for v in payload.values()):
            raise CheckpointError(
                "not a deconv_gui checkpoint: a bare state dict without class names/metadata", path
            )
        raise CheckpointError("not a deconv_gui checkpoint (no 'format' marker)", path)
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"format version {version!r} is newer than this program reads ({FORMAT_VERSION}); update deconv_gui",
            path,
        )
    meta = ModelMeta.from_plain(payload.get("meta"), path)
    if meta.architecture not in KNOWN_ARCHITECTURES + IMPORTED_ARCHITECTURES:
        raise CheckpointError(
            f"unknown architecture {meta.architecture!r} (known: "
            f"{', '.join(KNOWN_ARCHITECTURES + IMPORTED_ARCHITECTURES)})", path
        )
    raw = payload.get("state_dict")
    if not isinstance(raw, dict) or not all(isinstance(v, Tensor) for v in raw.values()):
        raise CheckpointError("state_dict is missing or holds non-tensors", path)
    if version >= SHARDED_FORMAT_VERSION and "shards" in payload:
        raw = {**raw, **_read_shards(path, payload["shards"])}
    state_dict = {
        str(k): v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in raw.items()
    }
    _require_finite(state_dict, path)
    return state_dict, meta


def copy_checkpoint(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> list[Path]:
    """Copy checkpoint ``source`` to ``target`` with its shard files, renamed after ``target`` (``name.part2.pt``
    …) and listed so in the copy; each file written atomically, shards first. ``source`` must be valid
    (:func:`load_checkpoint`'s checks). Returns the files written."""
    source, target = Path(source), Path(target)
    load_checkpoint(source)
    payload = _torch_load(source)
    written = []
    for k, entry in enumerate(payload.get("shards", []), 2):
        shard = shard_path(target, k)
        with atomic_path(shard) as tmp:
            shutil.copyfile(source.with_name(entry["file"]), tmp)
        entry["file"] = shard.name
        written.append(shard)
    with atomic_path(target) as tmp:
        torch.save(payload, tmp)
    return [target, *written]


def update_checkpoint_meta(path: str | os.PathLike[str], changes: dict[str, Any]) -> ModelMeta:
    """Rewrite ``path`` with ``changes`` applied to its metadata (tensors untouched, dtypes kept), atomically.

    The file must be a valid checkpoint (:func:`load_checkpoint`'s checks) and the changed metadata consistent;
    returns the new metadata. Raises CheckpointError / OutputError like the reader and the writer.
    """
    path = Path(path)
    load_checkpoint(path)  # every check of the reader, before anything is written
    payload = _torch_load(path)
    meta = ModelMeta.from_plain({**payload["meta"], **_plain(changes)}, path)
    payload["meta"] = meta.to_plain()
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return meta


def _require_finite(state_dict: dict[str, Tensor], path: Path) -> None:
    """Refuse weights holding NaN or ±inf (a diverged training run): they would make every pixel class 0.

    A float tensor's sum is finite exactly when all its values are (NaN and inf propagate), barring an overflow
    of huge finite values; only a non-finite sum is checked element by element. ~0.1 s per GB of weights."""
    for name, tensor in state_dict.items():
        if not tensor.is_floating_point() or bool(torch.isfinite(tensor.sum())):
            continue
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            bad = int(finite.numel() - finite.sum())
            raise CheckpointError(
                f"refused: weight {name!r} holds {bad} NaN/infinite value{'s' if bad != 1 else ''} of "
                f"{finite.numel()} (a diverged training run?); its predictions would be meaningless", path)
