"""A one-line label that elides its text ("Image 5/233: 0001TP_00…") instead of clipping or wrapping it; the
full text is its tooltip."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

MIN_CHARS = 12
"""The label never asks for less room than this many average characters (so a dock cannot squeeze it away)."""


class ElidedLabel(QWidget):
    """Shows :meth:`text` on one line, elided at the right to the width it gets."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:  # noqa: N802 - the QLabel spelling
        self._text = " ".join(str(text).split())  # one line: newlines would wrap
        self.setToolTip(self._text)
        self.updateGeometry()
        self.update()

    def displayed_text(self) -> str:
        """The text as painted at the current width."""
        return self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideRight, max(0, self.width()))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        fm = self.fontMetrics()
        return QSize(fm.horizontalAdvance(self._text) + 4, fm.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        fm = self.fontMetrics()
        return QSize(fm.averageCharWidth() * MIN_CHARS, fm.height())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.drawText(self.rect(), int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                         self.displayed_text())
