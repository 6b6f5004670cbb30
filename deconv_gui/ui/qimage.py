"""numpy → QImage, in one place.

QImage (unlike QPixmap) may be built on any thread, so results are converted on the worker thread
(:func:`prepare_layers`) and the GUI thread only swaps them into the canvas: converting a 4000×3000 label map
and its boundaries on the GUI thread measured ~300 ms, far over the 50 ms budget. Images are converted to the
raster engine's native formats (RGB32, premultiplied ARGB32), so painting them needs no per-frame conversion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtGui import QImage


def to_qimage(array: np.ndarray) -> QImage:
    """``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (straight alpha) uint8 → QImage that owns its pixels.

    Safe on any thread. RGB becomes ``Format_RGB32``, RGBA ``Format_ARGB32_Premultiplied``.
    """
    arr = np.ascontiguousarray(array, np.uint8)
    h, w, c = arr.shape
    src_format = QImage.Format.Format_RGB888 if c == 3 else QImage.Format.Format_RGBA8888
    dst_format = QImage.Format.Format_RGB32 if c == 3 else QImage.Format.Format_ARGB32_Premultiplied
    # The wrapper borrows ``arr``'s buffer; convertToFormat returns a QImage with its own copy.
    return QImage(arr.data, w, h, arr.strides[0], src_format).convertToFormat(dst_format)


def mask_rgba(mask: np.ndarray, colour: tuple[int, int, int], alpha: int = 255) -> np.ndarray:
    """``(H, W)`` bool → ``(H, W, 4) uint8``: ``colour`` where set, transparent elsewhere."""
    out = np.zeros((*mask.shape, 4), np.uint8)
    out[mask] = (*colour, alpha)
    return out


@dataclass
class LayerImages:
    """A result's overlays as QImages: the label map in class colours and its class boundaries."""

    label: QImage
    boundaries: QImage


def prepare_layers(label_rgb: np.ndarray, boundary_rgba: np.ndarray) -> LayerImages:
    """Convert a result's rendered arrays (on the worker thread)."""
    return LayerImages(to_qimage(label_rgb), to_qimage(boundary_rgba))
