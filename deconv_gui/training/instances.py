"""Object instances of a labelled image: from instance-id masks where a dataset has them, else connected components.

An :class:`Instance` is one object: its ``(H, W) bool`` mask, its class and its tight box (``x0, y0, x1, y1``,
exclusive, float64 — the convention of :mod:`deconv_gui.core.boxes`).

- With an instance-id map (PASCAL VOC ``SegmentationObject``, a folder dataset's ``instances/``): every id other
  than 0 (none) and 255 (void/boundary) is one instance; its class is the majority class of its pixels in the
  class label map (void pixels not counted). Instances whose majority class is not a thing class are dropped.
- Without one: the 8-connected components of each thing class in the label map, in class order, components
  smaller than ``min_pixels`` dropped (CamVid, folder datasets without ``instances/``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deconv_gui.core.palette import VOID


@dataclass
class Instance:
    """One object instance of an image.

    Attributes:
        mask: ``(H, W) bool`` the instance's pixels.
        class_id: its class index.
        box: ``(4,) float64`` tight box ``x0, y0, x1, y1`` (exclusive) of ``mask``.
    """

    mask: np.ndarray
    class_id: int
    box: np.ndarray


def tight_box(mask: np.ndarray) -> np.ndarray:
    """``(4,) float64`` tight exclusive box of a non-empty ``(H, W) bool`` mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float64)


def instances_from_ids(label: np.ndarray, ids: np.ndarray, thing_classes: tuple[int, ...]) -> list[Instance]:
    """Instances of an instance-id map ``ids`` (``(H, W)`` ints; 0 and 255 = no instance), by ascending id.

    ``label``: ``(H, W) uint8`` class ids (255 void). Each instance's class is the majority class of its
    non-void pixels; instances with no non-void pixel or a non-thing majority class are dropped.
    """
    things = set(int(c) for c in thing_classes)
    out: list[Instance] = []
    for k in np.unique(ids):
        if k == 0 or k == VOID:
            continue
        mask = ids == k
        counts = np.bincount(label[mask], minlength=256)
        counts[VOID] = 0
        if counts.sum() == 0:
            continue
        cls = int(counts.argmax())
        if cls not in things:
            continue
        out.append(Instance(mask=mask, class_id=cls, box=tight_box(mask)))
    return out


def instances_from_components(
    label: np.ndarray, thing_classes: tuple[int, ...], min_pixels: int = 64
) -> list[Instance]:
    """8-connected components of each thing class of ``label`` (``(H, W) uint8``), class by class.

    Components with fewer than ``min_pixels`` pixels are dropped.
    """
    out: list[Instance] = []
    present = np.bincount(label.ravel(), minlength=256)
    for cls in thing_classes:
        if present[cls] < max(min_pixels, 1):
            continue
        binary = (label == cls).astype(np.uint8)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8, ltype=cv2.CV_32S)
        for k in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[k])
            if area < min_pixels:
                continue
            out.append(Instance(mask=comp == k, class_id=int(cls), box=np.array([x, y, x + w, y + h], np.float64)))
    return out


def instance_boxes(instances: list[Instance]) -> tuple[np.ndarray, np.ndarray]:
    """``(K, 4) float64`` boxes and ``(K,) int64`` classes of ``instances``."""
    boxes = np.array([i.box for i in instances], np.float64).reshape(-1, 4)
    classes = np.array([i.class_id for i in instances], np.int64)
    return boxes, classes
