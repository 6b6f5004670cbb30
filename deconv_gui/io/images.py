"""Reading images from disk into ``(H, W, 3) uint8`` RGB arrays, whatever the file holds.

Policy for the odd cases (Pillow decodes):

- EXIF orientation is applied (a phone photo comes out upright).
- Grayscale (``L``, ``1``) is replicated to three channels; 1-bit pixels become 0 / 255.
- 16-bit grayscale (``I;16*``) keeps its top byte (``v >> 8``, full-range scaling). 32-bit integer ``I`` is
  treated the same when its values fit 16 bits, otherwise min–max stretched. Float ``F`` in ``[0, 1]`` is
  scaled by 255, otherwise min–max stretched.
- Alpha (``RGBA``, ``LA``, ``PA``, palette transparency) is **dropped**: the stored colour of each pixel is kept,
  it is not composited on any background.
- Palette (``P``), ``CMYK`` and ``YCbCr`` images are converted to RGB by Pillow.
- Multi-frame files (TIFF, GIF, WebP) yield their first frame.

Every failure raises :class:`~deconv_gui.core.errors.ImageReadError` naming the file: missing file, folder,
empty file, not an image, truncated or corrupt data, permission denied, or more than ``max_pixels`` pixels —
the size check uses the header only, before any pixel is decoded. Truncated files are always an error:
this module relies on Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` staying ``False`` (its default), and
refuses to read while it is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from deconv_gui.core.errors import ImageReadError
from deconv_gui.io.files import not_a_file_reason, require_readable_file

log = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 64_000_000
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

_PIL_BOMB_SIZE = re.compile(r"\((\d+) pixels\)")


def read_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file as ``(H, W, 3) uint8`` RGB (see the module docstring for the format policy)."""
    with open_pil_image(path, max_pixels=max_pixels) as im:
        try:
            im.load()
        except Exception as exc:  # noqa: BLE001 - any decoder failure on a user's file is a bad file
            raise ImageReadError(f"corrupt or truncated image ({exc})", path) from exc
        try:
            im = ImageOps.exif_transpose(im)
        except Exception as exc:  # noqa: BLE001 - a broken EXIF block should not lose the pixels
            log.warning("%s: ignoring unreadable EXIF orientation (%s)", path, exc)
        try:
            return _to_rgb_uint8(im)
        except (ValueError, OSError) as exc:
            raise ImageReadError(f"unsupported image mode {im.mode!r} ({exc})", path) from exc


@contextlib.contextmanager
def open_pil_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_IMAGE_PIXELS) -> Iterator[Image.Image]:
    """Open ``path`` with Pillow after checking that it is a readable, non-empty, not-too-large image file.

    Yields the lazily opened image (header read, pixels not yet decoded; frame 0 of multi-frame files) and
    closes it on exit. Raises :class:`ImageReadError` naming the file for every problem found so far.
    """
    p = Path(path)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ImageReadError("refusing to read: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set", p)
    require_readable_file(p, "an image file", ImageReadError)
    try:
        with warnings.catch_warnings():
            # We apply our own limit below; Pillow's warning threshold (89 MP) would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
    except Image.DecompressionBombError as exc:
        # Pillow refuses before we can look at the header (only above 2 × Image.MAX_IMAGE_PIXELS).
        match = _PIL_BOMB_SIZE.search(str(exc))
        pixels = int(match.group(1)) if match else None
        if pixels is not None and pixels > max_pixels:
            limit = f"the {_megapixels(max_pixels)} MP limit"
        else:
            limit = "Pillow's decompression-bomb limit"
        size = f"{_megapixels(pixels)} MP" if pixels is not None else "too large"
        raise ImageReadError(f"image is {size}, larger than {limit}", p) from None
    except UnidentifiedImageError:
        raise ImageReadError("not an image, or a format Pillow cannot read", p) from None
    except PermissionError:
        raise ImageReadError("cannot read: permission denied", p) from None
    except FileNotFoundError:
        raise ImageReadError("file not found", p) from None
    except Exception as exc:  # noqa: BLE001 - plugins raise SyntaxError, ValueError... on bad headers
        raise ImageReadError(f"corrupt image header ({exc})", p) from exc
    with im:
        width, height = im.size
        if width * height > max_pixels:
            raise ImageReadError(
                f"image is {width}×{height} = {_megapixels(width * height)} MP, larger than the "
                f"{_megapixels(max_pixels)} MP limit",
                p,
            )
        if width == 0 or height == 0:
            raise ImageReadError(f"image has no pixels ({width}×{height})", p)
        yield im


@dataclass
class ImageListing:
    """What :func:`scan_images` found in a folder: its image files (sorted by name) and what it left out, each
    ``(path, reason)`` — sub-folders, symbolic link loops, broken links, pipes, unreadable entries. Files
    whose suffix is not an image's (``notes.txt``) and hidden entries (names starting with ``.``, e.g. macOS
    ``._x.jpg`` companions) are left out without a word."""

    images: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def skipped_lines(self, limit: int = 10) -> list[str]:
        """One ``"<path>: <reason>"`` line per skipped entry, the ones past ``limit`` summed up in a last line."""
        lines = [f"{p}: {reason}" for p, reason in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"… and {len(self.skipped) - limit} more entries")
        return lines


def scan_images(folder: str | os.PathLike[str]) -> ImageListing:
    """The image files directly inside ``folder`` (not recursive) by suffix (case-insensitive), and what was
    skipped and why (see :class:`ImageListing`). Raises :class:`ImageReadError` for a missing or unlistable
    folder."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError("folder not found" if not root.exists() else "not a folder", root)
    try:
        entries = list(root.iterdir())
    except OSError as exc:
        raise ImageReadError(f"cannot list folder: {exc.strerror or exc}", root) from exc
    listing = ImageListing()
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        reason = not_a_file_reason(entry)
        if reason == "is a folder":
            reason = "folder (images in sub-folders are not read)"
        if reason is not None:
            listing.skipped.append((entry, reason))
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            listing.images.append(entry)
    return listing


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside ``folder`` (not recursive), by suffix (case-insensitive), sorted by name;
    :func:`scan_images` also says what was skipped."""
    return scan_images(folder).images


def _to_rgb_uint8(im: Image.Image) -> np.ndarray:
    """Decoded Pillow image of any mode → ``(H, W, 3) uint8`` RGB (policy in the module docstring)."""
    mode = im.mode
    if mode == "RGB":
        return np.array(im, dtype=np.uint8)
    if mode.startswith("I;16"):
        gray = (np.array(im).astype(np.uint16) >> 8).astype(np.uint8)
    elif mode == "I":
        gray = _stretch_int(np.array(im))
    elif mode == "F":
        gray = _stretch_float(np.array(im, dtype=np.float32))
    elif mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in im.info):
        return np.array(im.convert("RGBA"), dtype=np.uint8)[..., :3].copy()
    else:  # L, 1, P, CMYK, YCbCr, LAB, HSV ...
        return np.array(im.convert("RGB"), dtype=np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def _stretch_int(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` int32 → uint8: 16-bit range when it fits (``>> 8``), else min–max stretch."""
    lo, hi = int(values.min()), int(values.max())
    if lo >= 0 and hi <= 0xFFFF:
        return (values >> 8).astype(np.uint8)
    return _stretch_float(values.astype(np.float64), force_range=True)


def _stretch_float(values: np.ndarray, *, force_range: bool = False) -> np.ndarray:
    """``(H, W)`` float → uint8: ``[0, 1]`` scaled by 255, anything else min–max stretched (nan → 0)."""
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(values.min()), float(values.max())
    if not force_range and lo >= 0.0 and hi <= 1.0:
        return np.round(values * 255.0).astype(np.uint8)
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    return np.round((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _megapixels(n: int) -> str:
    return f"{n / 1e6:.4g}"
