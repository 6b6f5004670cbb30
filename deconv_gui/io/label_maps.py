"""Writing label maps, masks, overlays and JSON; reading label PNGs back.

A label map is ``(H, W)`` integer class indices in ``[0, 255]``, 255 = void. Every writer is atomic
(:func:`~deconv_gui.io.atomic.atomic_path`) and always writes PNG, whatever the suffix.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deconv_gui.core.errors import ImageReadError
from deconv_gui.core.palette import VOID
from deconv_gui.io.atomic import atomic_path, atomic_write_bytes
from deconv_gui.io.images import open_pil_image


def write_palette_png(path: str | os.PathLike[str], label: np.ndarray, palette: np.ndarray) -> None:
    """Write ``label`` (``(H, W)`` ints in ``[0, 255]``) as a mode ``"P"`` PNG with ``palette``.

    ``palette`` is ``(N, 3) uint8`` RGB, ``N <= 256`` (the usual 256-entry palette: index 255 = void colour);
    missing entries are black. This is the PASCAL VOC ``SegmentationClass`` format.
    """
    im = Image.fromarray(_label_uint8(label))
    im.putpalette(_palette_bytes(palette), rawmode="RGB")
    _save_png(path, im)


def write_index_png(path: str | os.PathLike[str], label: np.ndarray) -> None:
    """Write ``label`` (``(H, W)`` ints in ``[0, 255]``) as a single-channel ``"L"`` PNG of class indices."""
    _save_png(path, Image.fromarray(_label_uint8(label)))


def write_mask_png(path: str | os.PathLike[str], mask: np.ndarray) -> None:
    """Write a ``(H, W) bool`` mask as an ``"L"`` PNG holding 0 (False) and 255 (True)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    _save_png(path, Image.fromarray(np.where(mask.astype(bool), 255, 0).astype(np.uint8)))


def overlay_image(image: np.ndarray, label: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend class colours over an image: ``(H, W, 3) uint8`` RGB.

    ``out = (1 - alpha) * image + alpha * palette[label]``, except at void (255) pixels, which keep the image.
    """
    image = np.asarray(image)
    label = _label_uint8(label)
    if image.shape != (*label.shape, 3):
        raise ValueError(f"image {image.shape} and label {label.shape} sizes differ (need (H, W, 3) and (H, W))")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colours = np.asarray(palette, np.uint8)[label].astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    out = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    void = label == VOID
    out[void] = image[void]
    return out


def write_overlay_png(
    path: str | os.PathLike[str], image: np.ndarray, label: np.ndarray, palette: np.ndarray, alpha: float = 0.5
) -> None:
    """Write :func:`overlay_image` of ``image`` (``(H, W, 3) uint8``) and ``label`` as an RGB PNG."""
    _save_png(path, Image.fromarray(overlay_image(image, label, palette, alpha)))


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a palette (``"P"``) or grayscale (``"L"``, or 16-bit with values ≤ 255) label PNG.

    Returns ``(H, W) uint8`` class indices (the palette indices of a ``"P"`` image, not its colours). A colour
    (RGB) label image, a 16-bit one with values above 255, or a bad file raises :class:`ImageReadError`.
    """
    with open_pil_image(path) as im:
        try:
            im.load()
        except Exception as exc:  # noqa: BLE001 - any decoder failure on a user's file is a bad file
            raise ImageReadError(f"corrupt or truncated label image ({exc})", path) from exc
        if im.mode in ("P", "L"):
            return np.array(im, dtype=np.uint8)
        if im.mode.startswith("I"):
            values = np.array(im)
            if values.min() >= 0 and values.max() <= 255:
                return values.astype(np.uint8)
            raise ImageReadError(f"label values up to {int(values.max())} do not fit 0..255", path)
        raise ImageReadError(
            f"label image must be single-channel (palette or grayscale indices), got mode {im.mode!r}", path
        )


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as UTF-8 JSON (indent 2) atomically.

    numpy scalars and arrays become numbers and lists, paths become strings, tuples and sets become lists,
    and non-finite floats (nan, ±inf) become ``null`` so the file is strict JSON. A file name that is not valid
    UTF-8 reaches Python as :func:`os.fsdecode` makes it (each bad byte a lone surrogate ``U+DC80..U+DCFF``); such
    characters are written as ``\\udcXX`` escapes, so the file stays valid UTF-8 and
    ``os.fsencode(json.load(f)[...])`` gives back the name's bytes.
    """
    text = json.dumps(_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)
    text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, (str, int, float, bool)) else k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [_jsonable(v) for v in items]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _label_uint8(label: np.ndarray) -> np.ndarray:
    """``(H, W)`` integer label map → ``uint8`` after checking values lie in ``[0, 255]``."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label map must be (H, W), got shape {label.shape}")
    if label.dtype == np.uint8:
        return label
    if label.dtype.kind not in "iub":
        raise ValueError(f"label map must hold integers, got {label.dtype}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"label values must be in [0, 255], got {label.min()}..{label.max()}")
    return label.astype(np.uint8)


def _palette_bytes(palette: np.ndarray) -> bytes:
    pal = np.asarray(palette)
    if pal.ndim != 2 or pal.shape[1] != 3 or len(pal) > 256:
        raise ValueError(f"palette must be (N ≤ 256, 3), got shape {pal.shape}")
    full = np.zeros((256, 3), np.uint8)
    full[: len(pal)] = pal.astype(np.uint8)
    return full.tobytes()


def _save_png(path: str | os.PathLike[str], im: Image.Image) -> None:
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
