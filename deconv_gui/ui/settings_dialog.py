"""Settings: dense-CRF parameters and the optional structured-edge model file for Edge Boxes."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from deconv_gui.postprocess.crf import NORMALIZATIONS, CRFParams

_FLOAT_FIELDS = (
    ("gaussian_sxy", "Gaussian σ xy (px)"), ("gaussian_weight", "Gaussian weight"),
    ("bilateral_sxy", "Bilateral σ xy (px)"), ("bilateral_srgb", "Bilateral σ rgb"),
    ("bilateral_weight", "Bilateral weight"),
)


def path_row(edit: QLineEdit, browse: Callable[[], None]) -> QHBoxLayout:
    """A path field with a "…" button that calls ``browse``."""
    button = QPushButton("…")
    button.clicked.connect(browse)
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


class SettingsDialog(QDialog):
    """Edits a :class:`CRFParams` and an edge-model path; read them back with :meth:`values` after exec()."""

    def __init__(self, params: CRFParams, edge_model_file: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        form = QFormLayout(self)
        self.fields: dict[str, QDoubleSpinBox] = {}
        for name, text in _FLOAT_FIELDS:
            spin = QDoubleSpinBox()
            spin.setRange(0.01, 1000.0)
            spin.setDecimals(2)
            spin.setValue(float(getattr(params, name)))
            form.addRow(text, spin)
            self.fields[name] = spin
        self.iterations = QSpinBox()
        self.iterations.setRange(0, 100)
        self.iterations.setValue(params.iterations)
        form.addRow("CRF iterations", self.iterations)
        self.normalization = QComboBox()
        self.normalization.addItems(NORMALIZATIONS)
        self.normalization.setCurrentText(params.normalization)
        form.addRow("CRF normalisation", self.normalization)
        self.edge_model = QLineEdit(edge_model_file or "")
        self.edge_model.setPlaceholderText("none: gradient edges (OpenCV model.yml.gz for structured edges)")
        form.addRow("Edge model file", path_row(self.edge_model, self._browse))
        reset = QPushButton("DeconvNet defaults")
        reset.clicked.connect(lambda: self._set(CRFParams()))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.addButton(reset, QDialogButtonBox.ButtonRole.ResetRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _set(self, params: CRFParams) -> None:
        for name, spin in self.fields.items():
            spin.setValue(float(getattr(params, name)))
        self.iterations.setValue(params.iterations)
        self.normalization.setCurrentText(params.normalization)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Structured edge model", "", "Edge models (*.yml *.yml.gz);;All (*)")
        if path:
            self.edge_model.setText(path)

    def values(self) -> tuple[CRFParams, str | None]:
        params = CRFParams(
            **{name: spin.value() for name, spin in self.fields.items()},
            iterations=self.iterations.value(),
            normalization=self.normalization.currentText(),  # type: ignore[arg-type]
        )
        return params, self.edge_model.text().strip() or None
