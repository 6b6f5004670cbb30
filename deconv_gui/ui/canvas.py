"""The image canvas: zoom (wheel, +/-), pan (drag), fit (F) and 1:1 (1), hover probe, draw-a-box mode (B),
paint mode (mouse events go to a :class:`ToolHandler`, the annotation tools), Ctrl-click (the inspector's "who won
this pixel": in every mode it neither pans, paints nor draws).

Scene coordinates are image pixels (x right, y down; pixel ``(x, y)`` covers ``[x, x+1) × [y, y+1)``). "1:1"
maps one image pixel to one *physical* screen pixel, so HiDPI screens show the image crisp rather than
upscaled. Zoomed out, pixmaps are filtered smoothly; zoomed in past 2×, nearest-neighbour shows the pixels.
Items use a device-coordinate cache, so panning a 4000×3000 photo does not rescale it every frame.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QWidget,
)

from deconv_gui.ui.overlays import ImageItem, Overlays
from deconv_gui.ui.qimage import to_qimage

ZOOM_STEP = 1.25
MIN_ZOOM, MAX_ZOOM = 0.02, 64.0
CLICK_SLOP = 4  # screen pixels a press may move and still count as a click
MIN_BOX_SIDE = 4  # image pixels


class ToolHandler(Protocol):
    """Receives the canvas's mouse events in paint mode, in image coordinates (floats); True = consumed."""

    def press(self, x: float, y: float, button: Qt.MouseButton) -> bool: ...
    def move(self, x: float, y: float, buttons: Qt.MouseButton) -> bool: ...
    def release(self, x: float, y: float, button: Qt.MouseButton) -> bool: ...
    def double_click(self, x: float, y: float) -> bool: ...
    def hover(self, x: float, y: float) -> None: ...
    def leave(self) -> None: ...
    def cancel(self) -> bool: ...


class ImageCanvas(QGraphicsView):
    """A zoomable, pannable view of one image and its overlays."""

    hovered = Signal(int, int)  # image pixel under the cursor (x, y)
    clicked = Signal(float, float)  # a click (not a drag) at image coordinates
    ctrl_clicked = Signal(float, float)  # a Ctrl+left press at image coordinates (never painted, drawn or panned)
    left = Signal()  # the cursor left the canvas
    box_drawn = Signal(object)  # (x0, y0, x1, y1) floats, image pixels, exclusive
    zoom_changed = Signal(float)
    draw_mode_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(QBrush(QColor(48, 48, 48)))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        # No scroll bars: drag pans; bars appearing/disappearing would change the viewport and undo a fit.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.image_item = ImageItem()
        self.scene().addItem(self.image_item)
        self.overlays = Overlays(self.scene())
        self._rubber = QGraphicsRectItem()
        pen = QPen(QColor(80, 170, 255), 2, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self._rubber.setPen(pen)
        self._rubber.setZValue(100)
        self._rubber.hide()
        self.scene().addItem(self._rubber)
        self._failure = QGraphicsSimpleTextItem()
        self._failure.setBrush(QBrush(QColor(255, 120, 110)))
        self._failure.setFlag(QGraphicsSimpleTextItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self._failure.hide()
        self.scene().addItem(self._failure)
        self._image_hw = (0, 0)
        self._draw_mode = False
        self._paint_mode = False
        self._tool: ToolHandler | None = None
        self._press: QPointF | None = None
        self._press_scene: QPointF | None = None
        self._ctrl_press = False  # a Ctrl-click is under way: its move and release go nowhere else
        self._auto_fit = True  # refit on resize until the user zooms

    # --- content ------------------------------------------------------------------------------------------------

    def set_image(self, image: np.ndarray | QImage) -> None:
        """Show an image (``(H, W, 3) uint8`` RGB, or a QImage prepared on a worker) fitted to the window;
        clears the overlays."""
        qimage = image if isinstance(image, QImage) else to_qimage(image)
        self._failure.hide()
        self.image_item.set_image(qimage)
        self._image_hw = (qimage.height(), qimage.width())
        h, w = self._image_hw
        self.scene().setSceneRect(QRectF(-w * 0.5, -h * 0.5, w * 2.0, h * 2.0))
        self.overlays.clear()
        self._auto_fit = True
        self.fit()

    def show_failure(self, message: str) -> None:
        """No image: ``message`` (which file could not be opened, and why) in its place until the next image."""
        self.image_item.clear()
        self.overlays.clear()
        self._image_hw = (0, 0)
        self._failure.setText(message)
        self._failure.show()
        self.resetTransform()
        self.scene().setSceneRect(QRectF(-20, -20, self._failure.boundingRect().width() + 40,
                                         self._failure.boundingRect().height() + 40))
        self.centerOn(self._failure)

    @property
    def failure_text(self) -> str:
        """The failure message on show ("" while an image is shown)."""
        return self._failure.text() if self._failure.isVisible() else ""

    @property
    def image_hw(self) -> tuple[int, int]:
        return self._image_hw

    # --- zoom ---------------------------------------------------------------------------------------------------

    @property
    def zoom(self) -> float:
        """Screen (logical) pixels per image pixel."""
        return float(self.transform().m11())

    def set_zoom(self, zoom: float) -> None:
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        self._auto_fit = False
        factor = zoom / self.zoom
        self.scale(factor, factor)
        self._update_filtering()
        self.zoom_changed.emit(self.zoom)

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom * ZOOM_STEP)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom / ZOOM_STEP)

    def fit(self) -> None:
        """Fit the whole image in the window (F)."""
        h, w = self._image_hw
        if not h or not w:
            return
        self._auto_fit = True
        margin = 0.01 * max(h, w)
        self.fitInView(QRectF(-margin, -margin, w + 2 * margin, h + 2 * margin), Qt.AspectRatioMode.KeepAspectRatio)
        self._update_filtering()
        self.zoom_changed.emit(self.zoom)

    def actual_size(self) -> None:
        """One image pixel per physical screen pixel (1)."""
        self.set_zoom(1.0 / max(1.0, self.devicePixelRatioF()))

    def _update_filtering(self) -> None:
        smooth = self.zoom * self.devicePixelRatioF() < 2.0
        for item in (self.image_item, self.overlays.label, self.overlays.winner, self.overlays.boundaries,
                     self.overlays.edits, self.overlays.instance):
            item.set_smooth(smooth)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)

    # --- box drawing --------------------------------------------------------------------------------------------

    @property
    def draw_mode(self) -> bool:
        return self._draw_mode

    def set_draw_mode(self, on: bool) -> None:
        """B: drag draws a box (a new proposal) instead of panning; Esc leaves the mode."""
        self._draw_mode = bool(on)
        paint = on or self._paint_mode  # leaving box mode goes back to painting when a paint tool is active
        self.setDragMode(QGraphicsView.DragMode.NoDrag if paint else QGraphicsView.DragMode.ScrollHandDrag)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if paint else Qt.CursorShape.OpenHandCursor)
        self.draw_mode_changed.emit(self._draw_mode)

    # --- paint mode ---------------------------------------------------------------------------------------------

    @property
    def paint_mode(self) -> bool:
        return self._paint_mode

    def set_tool_handler(self, handler: ToolHandler | None) -> None:
        self._tool = handler

    def set_paint_mode(self, on: bool) -> None:
        """Mouse drags go to the tool handler (annotation tools) instead of panning; the wheel still zooms."""
        self._paint_mode = bool(on)
        if not self._draw_mode:
            self.setDragMode(QGraphicsView.DragMode.NoDrag if on else QGraphicsView.DragMode.ScrollHandDrag)
            self.viewport().setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.OpenHandCursor)

    def scene_point(self, pos: QPointF) -> QPointF:
        """A viewport position → image coordinates, keeping sub-pixel precision (``mapToScene`` rounds)."""
        inverse, _ = self.viewportTransform().inverted()
        return inverse.map(pos)

    def _painting(self) -> ToolHandler | None:
        return self._tool if self._paint_mode and not self._draw_mode else None

    def clamp_box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float] | None:
        """Order and clip a box to the image; None when a side is under :data:`MIN_BOX_SIDE` pixels."""
        h, w = self._image_hw
        x0, x1 = sorted((min(max(x0, 0.0), w), min(max(x1, 0.0), w)))
        y0, y1 = sorted((min(max(y0, 0.0), h), min(max(y1, 0.0), h)))
        if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
            return None
        return float(round(x0)), float(round(y0)), float(round(x1)), float(round(y1))

    # --- events -------------------------------------------------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        delta = event.angleDelta().y()
        if delta:
            self.set_zoom(self.zoom * ZOOM_STEP ** (delta / 120.0))
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        tool = self._painting()
        if event.key() == Qt.Key.Key_Escape and tool is not None and tool.cancel():
            return
        if event.key() == Qt.Key.Key_Escape and self._draw_mode:
            self._rubber.hide()
            self._press_scene = None
            self.set_draw_mode(False)
            return
        super().keyPressEvent(event)

    def resizeEvent(self, event: object) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)  # type: ignore[arg-type]
        if self._auto_fit:
            self.fit()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if (event.button() == Qt.MouseButton.LeftButton
                and event.modifiers() & Qt.KeyboardModifier.ControlModifier and self._image_hw[0]):
            self._ctrl_press = True
            p = self.scene_point(event.position())
            self.ctrl_clicked.emit(p.x(), p.y())
            event.accept()
            return
        tool = self._painting()
        if tool is not None:
            p = self.scene_point(event.position())
            if tool.press(p.x(), p.y(), event.button()):
                event.accept()
                return
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position()
            if self._draw_mode:
                self._press_scene = self.mapToScene(event.position().toPoint())
                self._rubber.setRect(QRectF(self._press_scene, self._press_scene))
                self._rubber.show()
                event.accept()
                return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        pos = self.mapToScene(event.position().toPoint())
        x, y = int(np.floor(pos.x())), int(np.floor(pos.y()))
        h, w = self._image_hw
        if 0 <= x < w and 0 <= y < h:
            self.hovered.emit(x, y)
        if self._ctrl_press:
            event.accept()
            return
        tool = self._painting()
        if tool is not None:
            p = self.scene_point(event.position())
            tool.hover(p.x(), p.y())
            if event.buttons() != Qt.MouseButton.NoButton and tool.move(p.x(), p.y(), event.buttons()):
                event.accept()
                return
        if self._draw_mode and self._press_scene is not None:
            self._rubber.setRect(QRectF(self._press_scene, pos).normalized())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._ctrl_press:
            if event.button() == Qt.MouseButton.LeftButton:
                self._ctrl_press = False
            event.accept()
            return
        tool = self._painting()
        if tool is not None:
            p = self.scene_point(event.position())
            if tool.release(p.x(), p.y(), event.button()):
                event.accept()
                return
        if event.button() == Qt.MouseButton.LeftButton:
            pos = self.mapToScene(event.position().toPoint())
            if self._draw_mode and self._press_scene is not None:
                start, self._press_scene = self._press_scene, None
                self._rubber.hide()
                box = self.clamp_box(start.x(), start.y(), pos.x(), pos.y())
                if box is not None:
                    self.box_drawn.emit(box)
                event.accept()
                return
            if self._press is not None and (event.position() - self._press).manhattanLength() <= CLICK_SLOP:
                self.clicked.emit(pos.x(), pos.y())
            self._press = None
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:  # a quick second Ctrl-click: not a double
            self._ctrl_press = event.button() == Qt.MouseButton.LeftButton  # click for a tool (polygon close)
            event.accept()
            return
        tool = self._painting()
        if tool is not None:
            p = self.scene_point(event.position())
            if tool.double_click(p.x(), p.y()):
                event.accept()
                return
        super().mouseDoubleClickEvent(event)

    def leaveEvent(self, event: object) -> None:  # noqa: N802 - Qt API
        if self._tool is not None:
            self._tool.leave()
        self.left.emit()
        super().leaveEvent(event)  # type: ignore[arg-type]
