"""The training panel's form: dataset, architecture, stage(s), hyperparameters, device and run folder.

It only turns widgets into :class:`~deconv_gui.document.training_run.TrainRequest` runs; the panel starts them.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.document.training_run import (
    CHAINED_STAGES,
    FORMATS,
    TrainRequest,
    default_run_dir,
    guess_format,
    parse_overrides,
    plan_runs,
)

#: (label, stage choice) in the stage menu.
STAGE_CHOICES: tuple[tuple[str, str], ...] = (
    ("Whole image", "whole"),
    ("Stage 1: instance crops", "stage1"),
    ("Stage 2: proposal crops", "stage2"),
    ("Stage 1, then stage 2", CHAINED_STAGES),
)


def _architectures() -> list[str]:
    from deconv_gui.models.registry import MODEL_BUILDERS

    return list(MODEL_BUILDERS)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


class _PathField(QWidget):
    """A line edit with a Browse… button (folder or file chooser)."""

    def __init__(self, placeholder: str, *, folder: bool, file_filter: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.setClearButtonEnabled(True)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self._folder, self._filter = folder, file_filter
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def _browse(self) -> None:
        start = self.edit.text().strip() or str(Path.home())
        if self._folder:
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Choose a file", start, self._filter)
        if chosen:
            self.edit.setText(chosen)

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text).expanduser() if text else None


class TrainingForm(QWidget):
    """The settings of a new run. :meth:`plan` validates them into one or two :class:`TrainRequest` runs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dataset = _PathField("dataset root folder", folder=True)
        self.dataset.edit.editingFinished.connect(self._guess_format)
        self.format = QComboBox()
        self.format.addItems(list(FORMATS))
        self.format.setToolTip("camvid: SegNet layout · voc: PASCAL VOC 2012 · folder: images/ + masks/")
        self.arch = QComboBox()
        self.arch.addItems(_architectures())
        self.width_box = QDoubleSpinBox()
        self.width_box.setRange(0.03125, 1.0)
        self.width_box.setDecimals(4)
        self.width_box.setSingleStep(0.0625)
        self.width_box.setValue(0.25)
        self.width_box.setToolTip("channel width multiplier: 1.0 = the paper's model, 0.25 = the compact one")
        self.stage = QComboBox()
        for label, choice in STAGE_CHOICES:
            self.stage.addItem(label, choice)
        self.iterations = QSpinBox()
        self.iterations.setRange(1, 10_000_000)
        self.iterations.setValue(1000)
        self.iterations.setGroupSeparatorShown(True)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 4096)
        self.batch_size.setValue(8)
        self.lr = QLineEdit()
        self.lr.setPlaceholderText("default for the architecture")
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        if not _cuda_available():
            self.device.model().item(2).setEnabled(False)
            self.device.setToolTip("no CUDA device found")
        self.init = _PathField("optional: start from this checkpoint", folder=False,
                               file_filter="Checkpoints (*.pt *.pth);;All files (*)")
        self.config_file = _PathField("optional: YAML/TOML config file", folder=False,
                                      file_filter="Config (*.yaml *.yml *.toml);;All files (*)")
        self.settings = QLineEdit()
        self.settings.setPlaceholderText("more settings: key=value …  (e.g. val_every=500)")
        self.run_dir = _PathField("new folder (empty: a new one in ~/deconv_gui_runs)", folder=True)

        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        data_row = QHBoxLayout()
        data_row.addWidget(self.dataset, 1)
        data_row.addWidget(self.format)
        form.addRow("Dataset", data_row)
        model_row = QHBoxLayout()
        model_row.addWidget(self.arch, 1)
        model_row.addWidget(self.width_box)
        form.addRow("Model, width", model_row)
        form.addRow("Stage", self.stage)
        numbers = QHBoxLayout()
        numbers.addWidget(self.iterations, 2)
        numbers.addWidget(self.batch_size, 1)
        numbers.addWidget(self.lr, 2)
        form.addRow("Iterations, batch, lr", numbers)
        form.addRow("Device", self.device)
        form.addRow("Initial weights", self.init)
        form.addRow("Config", self.config_file)
        form.addRow("Settings", self.settings)
        form.addRow("Run folder", self.run_dir)

    def _guess_format(self) -> None:
        folder = self.dataset.path()
        fmt = guess_format(folder) if folder is not None else None
        if fmt is not None:
            self.format.setCurrentText(fmt)

    def stage_choice(self) -> str:
        return str(self.stage.currentData())

    def plan(self) -> list[TrainRequest]:
        """The validated runs to start, in order (an empty run folder field means a new timestamped folder).

        Raises :class:`DeconvGuiError` with a message for the panel when a field is wrong.
        """
        data = self.dataset.path()
        if data is None:
            raise DeconvGuiError("choose a dataset folder")
        lr_text = self.lr.text().strip()
        try:
            lr = float(lr_text) if lr_text else None
        except ValueError:
            raise DeconvGuiError(f"learning rate {lr_text!r} is not a number") from None
        run_dir = self.run_dir.path()
        if run_dir is None:  # a new folder per Start; the panel's status line names it
            run_dir = default_run_dir(self.arch.currentText(), self.stage_choice())
        request = TrainRequest(
            data=data, format=self.format.currentText(), arch=self.arch.currentText(),
            width=self.width_box.value(), stage="whole", iterations=self.iterations.value(),
            batch_size=self.batch_size.value(), run_dir=run_dir, lr=lr, device=self.device.currentText(),
            init=self.init.path(), config_file=self.config_file.path(),
            overrides=parse_overrides(self.settings.text()),
        )
        runs = plan_runs(request, self.stage_choice())
        for i, run in enumerate(runs):
            run.validate(check_init_exists=i == 0)
        return runs
