"""The legend: each class's colour, name and share of the image in the shown label map."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget


class Legend(QListWidget):
    """Lists the model's classes with colour swatches; classes present in the label map show their area."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setIconSize(QSize(14, 14))
        self.setSelectionMode(QListWidget.SelectionMode.NoSelection)

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
