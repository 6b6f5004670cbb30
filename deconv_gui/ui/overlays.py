"""The canvas's overlay items: label map, winner layer (which proposal won each pixel), class boundaries, hand edits, selected instance mask, proposal boxes.

Each overlay is one QGraphicsItem whose visibility and opacity follow a
:class:`~deconv_gui.document.layers.LayerState`. Boxes are painted by one item (fast with thousands of boxes)
in image pixel coordinates with cosmetic pens (1 px on screen at any zoom).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsObject,
    QGraphicsScene,
    QStyleOptionGraphicsItem,
    QWidget,
)

from deconv_gui.document.layers import LayerState, default_layers
from deconv_gui.ui.qimage import LayerImages, mask_rgba, to_qimage

INCLUDED = QColor(60, 220, 90)
EXCLUDED = QColor(150, 150, 150)
USER = QColor(80, 170, 255)
SELECTED = QColor(255, 220, 0)


class ImageItem(QGraphicsItem):
    """Paints one QImage at an image-pixel offset. Painting samples only the exposed screen pixels, so a
    4000×3000 image costs what the viewport costs; a device-coordinate cache makes panning free."""

    def __init__(self) -> None:
        super().__init__()
        self.image = QImage()
        self.offset = (0, 0)
        self.smooth = True
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def set_image(self, image: QImage, offset: tuple[int, int] = (0, 0)) -> None:
        self.prepareGeometryChange()
        self.image, self.offset = image, offset
        self.update()

    def clear(self) -> None:
        self.set_image(QImage())

    def set_smooth(self, smooth: bool) -> None:
        if smooth != self.smooth:
            self.smooth = smooth
            self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return QRectF(self.offset[0], self.offset[1], self.image.width(), self.image.height())

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if not self.image.isNull():
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
            painter.drawImage(self.boundingRect(), self.image)


class BoxesItem(QGraphicsObject):
    """All proposal boxes: included (green), excluded (grey, dashed), user-drawn (blue), selected (yellow)."""

    def __init__(self) -> None:
        super().__init__()
        self.boxes = np.zeros((0, 4), np.int64)
        self.include = np.zeros(0, bool)
        self.from_user = np.zeros(0, bool)
        self.selected: int | None = None
        self._rect = QRectF()
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)  # clicks are picked by the canvas

    def set_boxes(self, boxes: np.ndarray, include: np.ndarray, from_user: np.ndarray, image_hw: tuple[int, int]) -> None:
        self.prepareGeometryChange()
        self.boxes, self.include, self.from_user = boxes, include, from_user
        h, w = image_hw
        if len(boxes):
            x0, y0 = min(0, boxes[:, 0].min()), min(0, boxes[:, 1].min())
            x1, y1 = max(w, boxes[:, 2].max()), max(h, boxes[:, 3].max())
        else:
            x0, y0, x1, y1 = 0, 0, w, h
        self._rect = QRectF(float(x0) - 2, float(y0) - 2, float(x1 - x0) + 4, float(y1 - y0) + 4)
        self.update()

    def set_selected(self, index: int | None) -> None:
        self.selected = index
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._rect

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        order = [i for i in range(len(self.boxes)) if not self.include[i]]
        order += [i for i in range(len(self.boxes)) if self.include[i] and i != self.selected]
        if self.selected is not None and self.selected < len(self.boxes):
            order.append(self.selected)
        for i in order:
            x0, y0, x1, y1 = (float(v) for v in self.boxes[i])
            if i == self.selected:
                pen = QPen(SELECTED, 3)
            elif not self.include[i]:
                pen = QPen(EXCLUDED, 1, Qt.PenStyle.DashLine)
            else:
                pen = QPen(USER if self.from_user[i] else INCLUDED, 2 if self.from_user[i] else 1)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.drawRect(QRectF(x0, y0, x1 - x0, y1 - y0))


class Overlays:
    """Creates the overlay items in ``scene`` above the image and keeps them in step with their LayerStates."""

    def __init__(self, scene: QGraphicsScene) -> None:
        self.layers: dict[str, LayerState] = default_layers()
        self.label = ImageItem()
        self.winner = ImageItem()  # drawn by deconv_gui.ui.inspector
        self.boundaries = ImageItem()
        self.edits = ImageItem()  # hand edits, drawn by deconv_gui.ui.edits_overlay
        self.instance = ImageItem()
        self.boxes = BoxesItem()
        self.items: dict[str, QGraphicsItem] = {
            "label map": self.label, "winner": self.winner, "boundaries": self.boundaries, "edits": self.edits,
            "instance mask": self.instance, "proposal boxes": self.boxes,
        }
        for z, (name, item) in enumerate(self.items.items(), start=1):
            item.setZValue(z)
            scene.addItem(item)
            self.apply(name)

    def apply(self, name: str) -> None:
        """Push layer ``name``'s visibility/opacity to its item."""
        state, item = self.layers[name], self.items[name]
        item.setVisible(state.visible)
        item.setOpacity(state.opacity)

    def set_visible(self, name: str, visible: bool) -> None:
        self.layers[name].visible = bool(visible)
        self.apply(name)

    def set_opacity(self, name: str, opacity: float) -> None:
        self.layers[name].set_opacity(opacity)
        self.apply(name)

    def clear(self) -> None:
        for item in (self.label, self.winner, self.boundaries, self.edits, self.instance):
            item.clear()
        self.boxes.set_boxes(np.zeros((0, 4), np.int64), np.zeros(0, bool), np.zeros(0, bool), (1, 1))
        self.boxes.set_selected(None)

    def show_result(self, layers: LayerImages, boxes: np.ndarray, include: np.ndarray, from_user: np.ndarray,
                    image_hw: tuple[int, int]) -> None:
        """Draw a result: its prepared layer images and the boxes ``(N, 4)`` with their include flags."""
        self.label.set_image(layers.label)
        self.boundaries.set_image(layers.boundaries)
        self.boxes.set_boxes(boxes, include, from_user, image_hw)

    def show_winners(self, image: QImage | None) -> None:
        """The winner layer's picture (image-sized, prepared on a worker), or nothing."""
        if image is None:
            self.winner.clear()
        else:
            self.winner.set_image(image)

    def show_instance(self, mask: np.ndarray | None, offset: tuple[int, int] = (0, 0),
                      colour: tuple[int, int, int] = (0, 230, 255)) -> None:
        """The selected proposal's mask, ``(h, w)`` bool placed at image pixel ``offset`` (x, y), or nothing."""
        if mask is None:
            self.instance.clear()
        else:
            self.instance.set_image(to_qimage(mask_rgba(mask, colour)), offset)
