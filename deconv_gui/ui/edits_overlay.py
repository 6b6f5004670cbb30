"""The hand-edits overlay: class colours where the user painted, transparent elsewhere, repainted by rectangle;
and the tools' previews (the round brush cursor, the polygon being drawn).

The QImage wraps a numpy buffer this class owns (``(H, W, 4) uint8`` in the raster engine's native
premultiplied-ARGB byte order, B G R A on little-endian machines). A stroke update writes the colours of its
dirty rectangle into the buffer and asks the item to repaint that rectangle only, so painting on a 4000×3000
photo costs what the brush touches, not the image (``bench/ui_latency.py`` measures it).
"""

from __future__ import annotations

import sys

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsPathItem, QGraphicsScene

from deconv_gui.core.palette import palette_for
from deconv_gui.document.annotation import AnnotationLayer, Point
from deconv_gui.document.edit_history import Rect
from deconv_gui.ui.overlays import ImageItem


def _bgra_lut(palette: np.ndarray) -> np.ndarray:
    """``(256, 4) uint8`` opaque colours in QImage ARGB32 byte order for each label value."""
    pal = palette_for(np.asarray(palette, np.uint8).tolist())  # 255 → the VOC void colour
    lut = np.full((256, 4), 255, np.uint8)
    if sys.byteorder == "little":
        lut[:, :3] = pal[:, ::-1]
    else:  # pragma: no cover - big-endian machines store A R G B
        lut[:, 1:] = pal
    return lut


class EditsOverlay:
    """Keeps ``item`` (an :class:`ImageItem` of the canvas) showing an :class:`AnnotationLayer`."""

    def __init__(self, item: ImageItem) -> None:
        self.item = item
        self._buf = np.zeros((0, 0, 4), np.uint8)
        self._lut = _bgra_lut(np.zeros((1, 3), np.uint8))

    def set_palette(self, palette: np.ndarray) -> bool:
        """Class colours ``(C, 3) uint8``; True when they changed (redraw with :meth:`show`)."""
        lut = _bgra_lut(palette)
        changed = not np.array_equal(lut, self._lut)
        self._lut = lut
        return changed

    def clear(self) -> None:
        self._buf = np.zeros((0, 0, 4), np.uint8)
        self.item.clear()

    def show(self, layer: AnnotationLayer | None) -> None:
        """Draw the whole layer (on opening an image); None clears."""
        if layer is None:
            self.clear()
            return
        h, w = layer.hw
        self._buf = np.zeros((h, w, 4), np.uint8)
        image = QImage(self._buf.data, w, h, w * 4, QImage.Format.Format_ARGB32_Premultiplied)
        self.item.set_image(image)
        self.update(layer, (0, 0, w, h))

    def update(self, layer: AnnotationLayer, rect: Rect | None) -> None:
        """Recolour ``rect`` (x0, y0, x1, y1) from the layer and repaint just that part of the canvas."""
        if rect is None:
            return
        if self._buf.shape[:2] != layer.hw:
            self.show(layer)
            return
        x0, y0, x1, y1 = rect
        win = (slice(y0, y1), slice(x0, x1))
        colours = self._lut[layer.label[win]]
        colours[~layer.edited[win]] = 0
        self._buf[win] = colours
        self.item.update(QRectF(x0, y0, x1 - x0, y1 - y0))


def _cosmetic(colour: QColor, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(colour, 1, style)
    pen.setCosmetic(True)  # 1 screen pixel at any zoom
    return pen


class ToolPreview:
    """The brush cursor (a circle of the brush radius, black and dashed white: visible on any image) and the
    outline of the polygon being drawn, as scene items above the overlays."""

    def __init__(self, scene: QGraphicsScene) -> None:
        self.cursor = [QGraphicsEllipseItem(), QGraphicsEllipseItem()]
        pens = (_cosmetic(QColor(0, 0, 0)), _cosmetic(QColor(255, 255, 255), Qt.PenStyle.DashLine))
        for item, pen in zip(self.cursor, pens, strict=True):
            item.setPen(pen)
            item.setZValue(150)
            item.hide()
            scene.addItem(item)
        self.outline = QGraphicsPathItem()
        self.outline.setPen(_cosmetic(QColor(255, 220, 0)))
        self.outline.setZValue(150)
        scene.addItem(self.outline)

    def show_cursor(self, centre: Point | None, radius: float) -> None:
        """A circle of ``radius`` image pixels around ``centre`` (image coordinates); None hides it."""
        for item in self.cursor:
            item.setVisible(centre is not None)
            if centre is not None:
                item.setRect(QRectF(centre[0] - radius, centre[1] - radius, 2 * radius, 2 * radius))

    def show_polygon(self, points: list[Point], hover: Point | None) -> None:
        """The vertices clicked so far, joined, and a rubber line to the mouse."""
        path = QPainterPath()
        if points:
            path.moveTo(*points[0])
            for p in [*points[1:], *([hover] if hover is not None else [])]:
                path.lineTo(*p)
        self.outline.setPath(path)
