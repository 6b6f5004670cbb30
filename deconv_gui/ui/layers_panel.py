"""Overlay layers panel: a visibility checkbox and an opacity slider per layer, bound to the Overlays."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QGridLayout, QSlider, QWidget

from deconv_gui.ui.overlays import Overlays


class LayersPanel(QWidget):
    """One row per overlay layer, top layer first."""

    def __init__(self, overlays: Overlays, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.overlays = overlays
        self.checks: dict[str, QCheckBox] = {}
        self.sliders: dict[str, QSlider] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 6, 6, 6)
        for row, (name, state) in enumerate(reversed(list(overlays.layers.items()))):
            check = QCheckBox(name.capitalize())
            check.setChecked(state.visible)
            check.toggled.connect(lambda on, n=name: overlays.set_visible(n, on))
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, 100)
            slider.setValue(round(state.opacity * 100))
            slider.setToolTip(f"{name} opacity")
            slider.valueChanged.connect(lambda v, n=name: overlays.set_opacity(n, v / 100.0))
            grid.addWidget(check, row, 0)
            grid.addWidget(slider, row, 1)
            self.checks[name], self.sliders[name] = check, slider
        grid.setRowStretch(len(self.checks), 1)

    def toggle(self, name: str) -> None:
        self.checks[name].toggle()
