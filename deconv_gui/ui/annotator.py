"""Hand annotation on the canvas: tools, undo/redo, box → mask and autosave, bound to the controller's session.

The edit state is Qt-free (:class:`~deconv_gui.document.annotation.AnnotationLayer` in ``session.annotation``);
this class turns canvas mouse events (it is the canvas's :class:`~deconv_gui.ui.canvas.ToolHandler`) into tool
calls on it, repaints only the rectangle each call changed (:class:`EditsOverlay`), draws the brush cursor and
the polygon being drawn, and autosaves: at most :data:`AUTOSAVE_DELAY_MS` after a stroke or action ends, the
edit arrays are copied and written by a background thread (:class:`AutosaveWriter`), and right away when
another image is opened or the window closes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal

from deconv_gui.document.annotation import PAINT_TOOLS, TOOLS, AnnotationLayer, Point, ToolState
from deconv_gui.document.autosave import AutosaveCorrupt, AutosaveWriter, EditsStore, Snapshot
from deconv_gui.document.edit_history import Rect
from deconv_gui.document.session import ImageSession
from deconv_gui.ui.canvas import ImageCanvas
from deconv_gui.ui.controller import Controller
from deconv_gui.ui.edits_overlay import EditsOverlay, ToolPreview

log = logging.getLogger(__name__)

AUTOSAVE_DELAY_MS = 300
"""Edits reach the disk at most this long after a stroke or action (plus the write itself, off the GUI thread)."""
STROKE_TOOLS = ("brush", "eraser", "void")


class Annotator(QObject):
    """The annotation tools of one canvas. Call :meth:`attach` once the window has wired its own slots."""

    tool_changed = Signal(str)
    radius_changed = Signal(int)
    class_changed = Signal(int, str, object)  # class id, name, (r, g, b)
    history_changed = Signal(bool, bool)  # can undo, can redo
    edited_changed = Signal(object, bool)  # image path, has edits (autosaved)
    painted = Signal(object)  # the rectangle (x0, y0, x1, y1) a tool call repainted
    message = Signal(str)  # a problem the user must see (corrupt autosave, failed save)
    status = Signal(str)  # a hint for the status bar
    _saved = Signal(object, str)  # autosave path, error ("" when fine) — emitted on the writer thread

    def __init__(self, controller: Controller, canvas: ImageCanvas, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller, self.canvas = controller, canvas
        self.state = ToolState()
        self.overlay = EditsOverlay(canvas.overlays.edits)
        self.writer = AutosaveWriter(lambda path, error: self._saved.emit(path, error or ""))
        self._saved.connect(self._on_saved)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(AUTOSAVE_DELAY_MS)
        self._timer.timeout.connect(self.save_now)
        self._session: ImageSession | None = None
        self._failing: set[Path] = set()  # autosave files whose last write failed (reported once)
        self._polygon: list[Point] = []
        self._hover: Point | None = None
        self._pending_boxes: list[int] = []
        self._stroking = False
        self.preview = ToolPreview(canvas.scene())
        canvas.set_tool_handler(self)

    def attach(self) -> None:
        """Follow the controller (connect after the window's own slots: its ``set_image`` clears the overlays)."""
        c = self.controller
        c.image_opened.connect(self._on_image)
        c.image_failed.connect(lambda *_: self._detach())
        c.result_shown.connect(self._on_result)
        c.folder_changed.connect(lambda folder: self.refresh_edited(folder.files))
        self.canvas.box_drawn.connect(self._on_box_drawn)
        self.canvas.draw_mode_changed.connect(self._on_draw_mode)

    # --- state -----------------------------------------------------------------------------------------------

    @property
    def session(self) -> ImageSession | None:
        """The image being annotated: the controller's, from its ``image_opened`` on."""
        return self._session

    @property
    def layer(self) -> AnnotationLayer | None:
        s = self.session
        return s.annotation if s is not None else None

    @property
    def store(self) -> EditsStore:
        return self.controller.edits

    @property
    def painting(self) -> bool:
        """A paint tool is active (number keys then choose classes, 1 included)."""
        return self.state.tool in PAINT_TOOLS

    def class_names(self) -> list[str]:
        s, runner = self.session, self.controller.engine.runner
        if s is not None and s.shown is not None:
            return list(s.shown.class_names)
        return list(runner.meta.class_names) if runner is not None else []

    def palette(self) -> np.ndarray:
        s, runner = self.session, self.controller.engine.runner
        if s is not None and s.shown is not None:
            return np.asarray(s.shown.palette, np.uint8)
        if runner is not None and runner.meta.palette:
            return np.asarray(runner.meta.palette, np.uint8)
        return np.zeros((0, 3), np.uint8)

    def set_tool(self, tool: str) -> None:
        """One of :data:`~deconv_gui.document.annotation.TOOLS`; ``box_mask`` turns on the canvas's box mode."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; known: {', '.join(TOOLS)}")
        self._finish_stroke()
        self._set_polygon([])
        self.state.tool = tool
        self.canvas.set_paint_mode(tool in PAINT_TOOLS)
        if tool == "box_mask":
            self.canvas.set_draw_mode(True)
        elif self.canvas.draw_mode:  # any other tool leaves box mode (B's too), or the tool would do nothing
            self.canvas.set_draw_mode(False)
        self._show_cursor()
        self.tool_changed.emit(tool)

    def set_radius(self, radius: float) -> None:
        """Brush/eraser radius in image pixels (``[`` / ``]``, the size slider)."""
        self.state.set_radius(radius)
        self._show_cursor()
        self.radius_changed.emit(self.state.radius)

    def bump_radius(self, steps: int) -> None:
        self.set_radius(ToolState(radius=self.state.radius).bump_radius(steps))

    def set_class(self, class_id: int) -> None:
        """The class the brush, fill, polygon paint (legend click or number key)."""
        names = self.class_names()
        if names and not 0 <= class_id < len(names):
            self.status.emit(f"no class {class_id}: this model has {len(names)} classes (0–{len(names) - 1})")
            return
        self.state.class_id = int(class_id)
        pal = self.palette()
        colour = tuple(int(v) for v in pal[class_id]) if class_id < len(pal) else (255, 255, 255)
        self.class_changed.emit(class_id, names[class_id] if names else str(class_id), colour)

    def refresh_class(self) -> None:
        """Re-announce the class (its name and colour are known once a model or result is there)."""
        names = self.class_names()
        self.set_class(self.state.class_id if not names or self.state.class_id < len(names) else min(1, len(names) - 1))

    # --- the canvas's ToolHandler ----------------------------------------------------------------------------

    def press(self, x: float, y: float, button: Qt.MouseButton) -> bool:
        s, tool = self.session, self.state.tool
        if s is None:
            return False
        if tool == "polygon" and button == Qt.MouseButton.RightButton:
            self.close_polygon()
            return True
        if button != Qt.MouseButton.LeftButton:
            return False
        if tool in STROKE_TOOLS:
            self._stroking = True
            self._repaint(self._ensure_layer().begin_stroke(tool, (x, y), self.state.radius, self.state.paint_value()))
            return True
        if tool == "fill":
            prediction = s.shown.label if s.shown is not None else None
            self._repaint(self._ensure_layer().fill(x, y, self.state.paint_value(), prediction))
            self._changed()
            return True
        if tool == "polygon":
            self._set_polygon([*self._polygon, (x, y)])
            return True
        return False

    def move(self, x: float, y: float, buttons: Qt.MouseButton) -> bool:
        layer = self.layer
        if self._stroking and layer is not None:
            self._repaint(layer.continue_stroke((x, y)))
            return True
        return self.painting

    def release(self, x: float, y: float, button: Qt.MouseButton) -> bool:
        if self._stroking and button == Qt.MouseButton.LeftButton:
            self._finish_stroke()
            return True
        return self.painting

    def double_click(self, x: float, y: float) -> bool:
        if self.state.tool == "polygon":
            self.close_polygon()
            return True
        return self.painting

    def hover(self, x: float, y: float) -> None:
        self._hover = (x, y)
        self._show_cursor()
        if self._polygon:
            self._set_polygon(self._polygon)

    def leave(self) -> None:
        self._hover = None
        self._show_cursor()

    def cancel(self) -> bool:
        """Esc: drop the polygon being drawn (or end a stroke); False when there was nothing to cancel."""
        if self._polygon:
            self._set_polygon([])
            return True
        if self._stroking:
            self._finish_stroke()
            return True
        return False

    # --- actions --------------------------------------------------------------------------------------------

    def close_polygon(self) -> None:
        points, value = self._polygon, self.state.paint_value()
        self._set_polygon([])
        if len(points) >= 3 and self.session is not None:
            self._repaint(self._ensure_layer().polygon(points, value))
            self._changed()

    def accept_selected(self) -> None:
        """Enter: close the polygon being drawn, else paint the selected proposal's instance with its class."""
        if self._polygon:
            self.close_polygon()
            return
        s = self.session
        if s is None or s.selected is None:
            self.status.emit("select a proposal (click its box or its row) to accept its mask")
            return
        self.accept_instance(s.selected)

    def accept_instance(self, index: int) -> None:
        s = self.session
        if s is None or not 0 <= index < len(s.summaries):
            return
        row = s.summaries[index]
        if not row.area:
            self.status.emit(f"proposal {row.rank} has no object mask to accept")
            return
        self._repaint(self._ensure_layer().paint_mask(row.mask, row.offset, row.class_id))
        self._changed()
        self.status.emit(f"accepted proposal {row.rank} as {row.class_name} ({row.area} px)")

    def undo(self) -> None:
        self._finish_stroke()
        if self.layer is not None:
            self._repaint(self.layer.undo())
            self._changed()

    def redo(self) -> None:
        self._finish_stroke()
        if self.layer is not None:
            self._repaint(self.layer.redo())
            self._changed()

    # --- autosave ---------------------------------------------------------------------------------------------

    def save_now(self) -> None:
        """Hand the current edits to the writer thread (when they changed since the last save)."""
        self._timer.stop()
        s = self._session
        layer = s.annotation if s is not None else None
        if s is None or layer is None or layer.saved_revision == layer.revision:
            return
        layer.saved_revision = layer.revision
        has_edits = layer.has_edits
        self.writer.submit(Snapshot(self.store.path_for(s.path), layer.label.copy(), layer.edited.copy(),
                                    s.path.name, image=s.image))
        self.edited_changed.emit(s.path, has_edits)

    def set_autosave_folder(self, folder: Path | None) -> None:
        """Autosave into ``folder`` (a project folder) or, with None, next to each image."""
        self.save_now()
        self.writer.flush()
        self.controller.set_edits_folder(folder)
        if self.layer is not None:
            self.layer.saved_revision = -1  # write the open image's edits to the new place now
        self.save_now()
        self.refresh_edited(self.controller.folder.files)

    def refresh_edited(self, files: list[Path]) -> None:
        for path in files:
            self.edited_changed.emit(path, self.store.has_edits(path))

    def shutdown(self) -> None:
        self._finish_stroke()
        self.save_now()
        if not self.writer.close():
            log.warning("the autosave writer did not finish in time")

    # --- internals --------------------------------------------------------------------------------------------

    def _ensure_layer(self) -> AnnotationLayer:
        s = self.session
        assert s is not None
        if s.annotation is None:
            s.annotation = AnnotationLayer(s.image.shape[:2])
            self.overlay.show(s.annotation)
        return s.annotation

    def _repaint(self, rect: Rect | None) -> None:
        layer = self.layer
        if rect is not None and layer is not None:
            self.overlay.update(layer, rect)
            self.painted.emit(rect)

    def _finish_stroke(self) -> None:
        if self._stroking:
            self._stroking = False
            if self.layer is not None:
                self.layer.end_stroke()
                self._changed()

    def _changed(self) -> None:
        layer, s = self.layer, self.session
        if layer is None or s is None:
            return
        self.history_changed.emit(layer.history.can_undo, layer.history.can_redo)
        self.controller.mark_changed(s)
        if not self._timer.isActive():  # not restarted by later strokes: a save at most 300 ms after a change
            self._timer.start()

    def _detach(self) -> None:
        """No image is current (its file could not be opened): save the previous one's edits, paint nowhere."""
        self._finish_stroke()
        self.save_now()
        self._pending_boxes.clear()
        self._set_polygon([])
        self._session = None
        self.overlay.show(None)

    def _on_image(self, session: ImageSession) -> None:
        if self._session is not None and self._session is not session:
            self._finish_stroke()
            self.save_now()
            self._pending_boxes.clear()
        self._set_polygon([])
        self._session = session
        if session.annotation is None:
            self.writer.flush()  # a save of this image may still be on its way to the disk (rare: ~0.5 s at most)
        if session.annotation is None and self.store.has_edits(session.path):
            try:
                saved = self.store.load(session.path, session.image)
            except AutosaveCorrupt as exc:
                self.message.emit(str(exc))
                self.edited_changed.emit(session.path, False)
                saved = None
            if saved is not None:
                session.annotation = AnnotationLayer.from_arrays(*saved)
                self.status.emit(f"{session.path.name}: restored your saved edits")
        self.overlay.set_palette(self.palette())
        self.overlay.show(session.annotation)
        layer = session.annotation
        self.history_changed.emit(layer is not None and layer.history.can_undo,
                                  layer is not None and layer.history.can_redo)

    def _on_result(self, session: ImageSession) -> None:
        if session is not self.session:
            return
        if self.overlay.set_palette(self.palette()) and session.annotation is not None:
            self.overlay.show(session.annotation)
        raw = session.raw
        for index in list(self._pending_boxes):
            if raw is not None and index < raw.num_proposals and raw.from_user[index]:
                self._pending_boxes.remove(index)
                self.accept_instance(index)

    def _on_box_drawn(self, _box: object) -> None:
        s = self.session
        if self.state.tool == "box_mask" and s is not None and s.raw is not None and s.raw.mode == "instances":
            self._pending_boxes.append(s.raw.num_proposals + len(self._pending_boxes))

    def _on_draw_mode(self, on: bool) -> None:
        if not on and self.state.tool == "box_mask":  # Esc left the box mode
            self.set_tool("pan")

    def _on_saved(self, path: Path, error: str) -> None:
        if not error:
            self._failing.discard(path)
        elif path not in self._failing:  # once, not after every stroke
            self._failing.add(path)
            self.message.emit(f"autosave of your edits failed: {error}. Choose a folder you can write to: "
                              "Annotate → Autosave folder…")

    def _show_cursor(self) -> None:
        self.preview.show_cursor(self._hover if self.state.tool in STROKE_TOOLS else None, self.state.radius)

    def _set_polygon(self, points: list[Point]) -> None:
        self._polygon = list(points)
        self.preview.show_polygon(self._polygon, self._hover)

