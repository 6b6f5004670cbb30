"""Class colour palettes and class-name sets.

A palette is ``(256, 3) uint8`` RGB; index 255 is void and drawn white-ish in the VOC palette convention
(the VOC palette itself gives 255 → (224, 224, 192)).
"""

from __future__ import annotations

import numpy as np

VOID = 255

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

CAMVID_CLASSES: tuple[str, ...] = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)

# The usual SegNet-tutorial colours for CamVid's 11 classes.
CAMVID_COLOURS: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC bit-interleaved ("bitget") colormap, ``(n, 3) uint8``."""
    pal = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def palette_for(colours: tuple[tuple[int, int, int], ...] | list | None) -> np.ndarray:
    """A 256-entry palette whose first entries are ``colours`` and the rest follow the VOC map."""
    pal = voc_palette()
    if colours:
        pal[: len(colours)] = np.asarray(colours, np.uint8)
    return pal


def colourise(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """``(H, W)`` integer label map → ``(H, W, 3) uint8`` RGB via ``palette`` (256 entries)."""
    return palette[np.asarray(label, np.int64) & 0xFF]
