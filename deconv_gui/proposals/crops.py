"""Cut proposal windows out of an image, the way DeconvNet's original code did.

Each integer box ``(x0, y0, x1, y1)`` (exclusive; may reach past the image) is resampled to ``size × size``
bilinearly without keeping the aspect ratio; pixels outside the image are zero (black, before normalisation), or
with ``fill="edge"`` (a model's ``meta.crop_fill``) the image's border pixels repeated.
One ``cv2.warpAffine`` per box does crop, zero padding and resize at once, so a box far larger than the image
costs no more than a small one.

A crop's scores over its zero padding mean nothing (training labels that region void), yet pasting the crop back
interpolates between neighbouring score pixels, so an image-border pixel would read half of them.
:func:`replicate_inside_scores` overwrites the padding's score rows and columns with the nearest ones inside the
image first: every pasted pixel then reads only scores of image content.
"""

from __future__ import annotations

import cv2
import numpy as np

from deconv_gui.core.boxes import integer_box


def integer_boxes(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` float boxes → ``(N, 4)`` int64 pixel boxes (rounded, at least 1×1)."""
    return np.array([integer_box(b) for b in np.asarray(boxes, np.float64).reshape(-1, 4)], np.int64).reshape(-1, 4)


def crop_matrix(box: np.ndarray, size: int) -> np.ndarray:
    """``(2, 3) float64`` inverse map (``cv2.WARP_INVERSE_MAP``) from a ``size × size`` crop to the image for
    integer ``box``: output pixel ``u`` samples box coordinate ``(u + 0.5) * w / size - 0.5`` (the
    ``cv2.resize`` convention), i.e. dst (u, v) ← src (sx·u + x0 + 0.5·sx − 0.5, sy·v + y0 + 0.5·sy − 0.5)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    sx, sy = (x1 - x0) / size, (y1 - y0) / size
    return np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]], np.float64)


def crop_and_resize(image: np.ndarray, box: np.ndarray, size: int, fill: str = "zeros") -> np.ndarray:
    """``image`` ``(H, W, 3)`` uint8, integer ``box`` → ``(size, size, 3)`` uint8 crop (:func:`crop_matrix`);
    outside the image zeros (``fill="zeros"``) or the nearest border pixel (``"edge"``)."""
    return cv2.warpAffine(
        image, crop_matrix(box, size), (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE if fill == "edge" else cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )


def inside_span(start: int, stop: int, image_len: int, size: int) -> tuple[int, int]:
    """Along one axis, the crop samples ``[first, last]`` (inclusive) whose source pixel lies in the image.

    ``start, stop``: the integer box along the axis (may reach past ``[0, image_len)``); ``size``: crop samples.
    Sample ``u`` reads coordinate ``start + (u + 0.5) * n / size - 0.5`` (``n = stop - start``), inside when it
    is in ``[-0.5, image_len - 0.5]`` (its nearest pixel is an image pixel) — exact integer arithmetic. Returns
    ``first > last`` when no sample is inside.
    """
    n = stop - start
    first = -((2 * start * size + n) // (2 * n))  # ceil((-2·start·size - n) / 2n)
    last = (2 * (image_len - start) * size - n) // (2 * n)
    return max(first, 0), min(last, size - 1)


def replicate_inside_scores(scores: np.ndarray, boxes: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """``scores`` ``(N, C, S, S)`` of the crops of integer ``boxes`` ``(N, 4)``, **in place**: score columns and rows
    whose samples fall outside the image become copies of the nearest column / row inside it. Returns ``scores``."""
    h, w = image_hw
    size_h, size_w = scores.shape[2], scores.shape[3]
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.int64).reshape(-1, 4).tolist()):
        first, last = inside_span(x0, x1, w, size_w)
        if first <= last:
            scores[i, :, :, :first] = scores[i, :, :, first:first + 1]
            scores[i, :, :, last + 1:] = scores[i, :, :, last:last + 1]
        first, last = inside_span(y0, y1, h, size_h)
        if first <= last:
            scores[i, :, :first, :] = scores[i, :, first:first + 1, :]
            scores[i, :, last + 1:, :] = scores[i, :, last:last + 1, :]
    return scores


def crop_batch(image: np.ndarray, boxes: np.ndarray, size: int, fill: str = "zeros") -> np.ndarray:
    """Crops for every integer box: ``(N, size, size, 3)`` uint8 (``fill`` as :func:`crop_and_resize`)."""
    out = np.empty((len(boxes), size, size, 3), np.uint8)
    for i, box in enumerate(boxes):
        out[i] = crop_and_resize(image, box, size, fill)
    return out
