"""The legend: each class's colour, name and share of the image in the shown label map; a click picks the class
the annotation tools paint (shown in bold)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget


class Legend(QListWidget):
    """Lists the model's classes with colour swatches; classes present in the label map show their area."""

    class_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setIconSize(QSize(14, 14))
        self.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.setToolTip("click a class to paint with it (or press its number)")
        self.active: int | None = None
        self.itemClicked.connect(lambda item: self.class_clicked.emit(self.row(item)))

    def set_classes(self, names: list[str], palette: np.ndarray, counts: np.ndarray | None = None) -> None:
        """``palette``: ``(C, 3) uint8``; ``counts``: ``(C,)`` pixels per class in the label map (areas)."""
        self.clear()
        total = max(1, int(counts.sum())) if counts is not None else 1
        for i, name in enumerate(names):
            swatch = QPixmap(14, 14)
            r, g, b = (int(v) for v in palette[i][:3])
            swatch.fill(QColor(r, g, b))
            text = name
            if counts is not None and counts[i]:
                text = f"{name}  ({100.0 * counts[i] / total:.1f} %)"
            self.addItem(QListWidgetItem(QIcon(swatch), text))
        self.set_active(self.active)

    def set_active(self, index: int | None) -> None:
        """Show class ``index`` (the annotation tools' class) in bold."""
        self.active = index
        for row in range(self.count()):
            item = self.item(row)
            font = item.font()
            font.setBold(row == index)
            item.setFont(font)
