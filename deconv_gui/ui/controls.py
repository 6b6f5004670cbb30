"""Run controls: ensemble rule, CRF, aggregation, number of proposals, device (and what is actually in use)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

from deconv_gui.core.vocabulary import AGGREGATIONS
from deconv_gui.document.session import ViewChoices

ENSEMBLE_MENU = ("off", "mean", "product")
"""The ensemble rules the app offers (of the vocabulary's ``ENSEMBLE_MODES``), "off" first."""


def available_devices() -> list[str]:
    """``["auto", "cpu"]`` plus ``"cuda"`` when torch sees a GPU."""
    import torch

    return ["auto", "cpu", *(["cuda"] if torch.cuda.is_available() else [])]


class ControlsPanel(QWidget):
    """Each control emits one signal; ``set_choices`` / ``set_device_in_use`` reflect the document back."""

    ensemble_changed = Signal(str)
    crf_changed = Signal(bool)
    aggregation_changed = Signal(str)
    proposals_changed = Signal(int)
    device_changed = Signal(str)
    segment_requested = Signal()
    settings_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(6, 6, 6, 6)
        self.ensemble = QComboBox()
        self.ensemble.addItems(ENSEMBLE_MENU)
        self.ensemble.setToolTip("combine with the FCN partner (Model → Load ensemble partner…)")
        self.ensemble.currentTextChanged.connect(self.ensemble_changed)
        self._ensemble_choice = "mean"  # the user's rule, shown again once a partner is loaded
        self._has_partner = False
        self.crf = QCheckBox("dense CRF")
        self.crf.toggled.connect(self.crf_changed)
        crf_settings = QPushButton("Settings…")
        crf_settings.clicked.connect(self.settings_requested)
        crf_row = QHBoxLayout()
        crf_row.addWidget(self.crf)
        crf_row.addWidget(crf_settings)
        self.aggregation = QComboBox()
        self.aggregation.addItems(AGGREGATIONS)
        self.aggregation.currentTextChanged.connect(self.aggregation_changed)
        self.proposals = QSpinBox()
        self.proposals.setRange(0, 2000)  # 0 = the loaded model's own setting (set_model_proposals names it)
        self.proposals.setToolTip("Edge Box proposals per image for the next run; the lowest value is the model's "
                                  "own setting (DeconvNet on VOC: 50, the CamVid model: 100)")
        self.proposals.editingFinished.connect(lambda: self.proposals_changed.emit(self.proposals.value()))
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.device.currentTextChanged.connect(self.device_changed)
        self.in_use = QLabel("no model")
        self.in_use.setWordWrap(True)
        self.run = QPushButton("Segment")
        self.run.setToolTip("run the network on this image again (R)")
        self.run.clicked.connect(self.segment_requested)
        form.addRow("Ensemble", self.ensemble)
        form.addRow("CRF", crf_row)
        form.addRow("Aggregation", self.aggregation)
        form.addRow("Proposals", self.proposals)
        form.addRow("Device", self.device)
        form.addRow("In use", self.in_use)
        form.addRow(self.run)

    def set_choices(self, choices: ViewChoices) -> None:
        self._ensemble_choice = choices.ensemble
        shown_rule = choices.ensemble if self._has_partner else "off"
        for widget, value in ((self.ensemble, shown_rule), (self.aggregation, choices.aggregation)):
            widget.blockSignals(True)
            widget.setCurrentText(value)
            widget.blockSignals(False)
        self.crf.blockSignals(True)
        self.crf.setChecked(choices.crf)
        self.crf.blockSignals(False)

    def set_partner_available(self, available: bool) -> None:
        """Without a partner the box reads "off" (nothing is ensembled) and is disabled, saying why."""
        self._has_partner = bool(available)
        self.ensemble.setEnabled(available)
        self.ensemble.blockSignals(True)
        self.ensemble.setCurrentText(self._ensemble_choice if available else "off")
        self.ensemble.blockSignals(False)
        self.ensemble.setToolTip(
            "combine with the ensemble partner's scores" if available else
            "off: no ensemble partner — choose Model → Bundled models → CamVid EDeconvNet, or load one with "
            "Model → Load ensemble partner…")

    def set_num_proposals(self, n: int) -> None:
        """``n`` proposals, or 0 for the model's own setting."""
        self.proposals.setValue(n)

    def set_model_proposals(self, n: int) -> None:
        """What "the model's own setting" (the spin box's 0) means for the loaded model: ``n`` proposals."""
        self.proposals.setSpecialValueText(f"model's ({n})")

    def set_device(self, device: str) -> None:
        self.device.blockSignals(True)
        self.device.setCurrentText(device if device in available_devices() else "auto")
        self.device.blockSignals(False)

    def set_device_in_use(self, text: str) -> None:
        self.in_use.setText(text)
