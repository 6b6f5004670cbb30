"""The status bar's mode indicator: which tool the mouse is using right now (pan, a paint tool, box drawing)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

MODE_TEXT = {
    "pan": "Select / pan",
    "brush": "Brush",
    "eraser": "Eraser",
    "fill": "Flood fill",
    "polygon": "Polygon",
    "void": "Paint void",
    "box_mask": "Box → mask",
}
BOX_MODE_TEXT = "Draw a box (new proposal) — Esc or any tool leaves it"


def mode_text(tool: str, box_mode: bool) -> str:
    """What a drag on the canvas does: box drawing wins over the tool (the canvas gives it the mouse)."""
    if box_mode and tool != "box_mask":
        return f"Mode: {BOX_MODE_TEXT}"
    return f"Mode: {MODE_TEXT.get(tool, tool)}"


class ModeIndicator(QLabel):
    """A label bound to the annotator's tool and the canvas's box mode."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tool, self._box_mode = "pan", False
        self.setToolTip("what a drag on the image does (tools: Annotate menu; B draws a box)")
        self._update()

    def set_tool(self, tool: str) -> None:
        self._tool = tool
        self._update()

    def set_box_mode(self, on: bool) -> None:
        self._box_mode = bool(on)
        self._update()

    def _update(self) -> None:
        self.setText(mode_text(self._tool, self._box_mode))
        self.setStyleSheet("font-weight: bold; color: #3c8cff;" if self._box_mode else "font-weight: bold;")
