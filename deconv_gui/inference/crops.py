"""Cut proposal windows out of an image, the way DeconvNet's original code did.

Each integer box ``(x0, y0, x1, y1)`` (exclusive; may reach past the image) is resampled to ``size × size``
bilinearly without keeping the aspect ratio; pixels outside the image are zero (black, before normalisation).
One ``cv2.warpAffine`` per box does crop, zero padding and resize at once, so a box far larger than the image
costs no more than a small one.
"""

from __future__ import annotations

import cv2
import numpy as np

from deconv_gui.core.boxes import integer_box


def integer_boxes(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` float boxes → ``(N, 4)`` int64 pixel boxes (rounded, at least 1×1)."""
    return np.array([integer_box(b) for b in np.asarray(boxes, np.float64).reshape(-1, 4)], np.int64).reshape(-1, 4)


def crop_and_resize(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """``image`` ``(H, W, 3)`` uint8, integer ``box`` → ``(size, size, 3)`` uint8 crop, zeros outside the image.

    Output pixel ``u`` samples box coordinate ``(u + 0.5) * w / size - 0.5`` (the ``cv2.resize`` convention).
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    sx = (x1 - x0) / size
    sy = (y1 - y0) / size
    # dst (u, v) ← src (sx*u + x0 + 0.5*sx - 0.5, sy*v + y0 + 0.5*sy - 0.5)
    matrix = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]], np.float64)
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )


def crop_batch(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Crops for every integer box: ``(N, size, size, 3)`` uint8."""
    out = np.empty((len(boxes), size, size, 3), np.uint8)
    for i, box in enumerate(boxes):
        out[i] = crop_and_resize(image, box, size)
    return out
