"""Axis-aligned boxes.

Convention used everywhere in the project: a box is ``(x0, y0, x1, y1)`` in pixel units of the original image,
``x1``/``y1`` exclusive, float64; arrays of boxes are ``(N, 4)``. Boxes may extend past the image (context
enlargement does that on purpose); crops fill the outside with zeros.
"""

from __future__ import annotations

import numpy as np

BoxArray = np.ndarray  # (N, 4) float64, x0 y0 x1 y1, x1/y1 exclusive


def as_boxes(boxes: object) -> BoxArray:
    """Return ``boxes`` as a contiguous ``(N, 4)`` float64 array (accepts lists, tuples, (4,) arrays)."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), np.float64)
    arr = arr.reshape(-1, 4)
    return np.ascontiguousarray(arr)


def xywh_to_xyxy(xywh: np.ndarray) -> BoxArray:
    """``(N, 4)`` x, y, w, h → x0, y0, x1, y1 (exclusive)."""
    b = as_boxes(xywh).copy()
    b[:, 2] += b[:, 0]
    b[:, 3] += b[:, 1]
    return b


def box_areas(boxes: BoxArray) -> np.ndarray:
    """``(N,)`` areas in pixels² (0 for degenerate boxes)."""
    b = as_boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def enlarge_boxes(boxes: BoxArray, factor: float, min_side: float = 0.0) -> BoxArray:
    """Scale each box's width and height by ``factor`` about its centre (×1.2 context in the paper), then grow
    any side shorter than ``min_side`` to ``min_side``, still about the centre (0 = no minimum)."""
    b = as_boxes(boxes)
    cx = (b[:, 0] + b[:, 2]) / 2.0
    cy = (b[:, 1] + b[:, 3]) / 2.0
    hw = np.maximum((b[:, 2] - b[:, 0]) * factor, min_side) / 2.0
    hh = np.maximum((b[:, 3] - b[:, 1]) * factor, min_side) / 2.0
    return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)


def box_iou(a: BoxArray, b: BoxArray) -> np.ndarray:
    """Pairwise IoU, ``(len(a), len(b))`` float64."""
    a = as_boxes(a)
    b = as_boxes(b)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def integer_box(box: np.ndarray) -> tuple[int, int, int, int]:
    """Round a float box to integer pixel bounds (x0, y0, x1, y1), exclusive, at least 1×1."""
    x0, y0 = int(np.floor(box[0] + 0.5)), int(np.floor(box[1] + 0.5))
    x1, y1 = int(np.floor(box[2] + 0.5)), int(np.floor(box[3] + 0.5))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)
