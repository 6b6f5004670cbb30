"""Export dialog: which formats, where, the current image or the whole folder; asks before overwriting."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from deconv_gui.inference.exports import FORMATS
from deconv_gui.ui.settings_dialog import path_row

FORMAT_LABELS = {
    "palette": "Label map, VOC palette PNG (255 = void)",
    "index": "Label map, single-channel index PNG",
    "overlay": "Colour overlay PNG",
    "instances": "Per-instance masks + JSON (boxes, scores, classes)",
    "coco": "COCO JSON with RLE masks",
}
MAX_LISTED = 8


class ExportDialog(QDialog):
    """Pick formats, output folder and scope; read them with :meth:`choice` after ``exec()``."""

    def __init__(self, out_dir: Path, has_folder: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        layout = QVBoxLayout(self)
        self.checks: dict[str, QCheckBox] = {}
        for fmt in FORMATS:
            check = QCheckBox(FORMAT_LABELS.get(fmt, fmt))
            check.setChecked(fmt in ("palette", "overlay"))
            layout.addWidget(check)
            self.checks[fmt] = check
        form = QFormLayout()
        self.out_dir = QLineEdit(str(out_dir))
        form.addRow("Output folder", path_row(self.out_dir, self._browse))
        self.current = QRadioButton("This image")
        self.folder = QRadioButton("All images in the file list")
        self.current.setChecked(True)
        self.folder.setEnabled(has_folder)
        scope = QHBoxLayout()
        scope.addWidget(self.current)
        scope.addWidget(self.folder)
        form.addRow("Export", scope)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export to", self.out_dir.text())
        if path:
            self.out_dir.setText(path)

    def choice(self) -> tuple[Path, set[str], bool]:
        """``(output folder, formats, whole folder?)``."""
        formats = {f for f, c in self.checks.items() if c.isChecked()}
        return Path(self.out_dir.text()).expanduser(), formats, self.folder.isChecked()


def confirm_overwrite(parent: QWidget | None, existing: list[Path]) -> bool:
    """Ask before replacing ``existing`` files; True to overwrite."""
    listed = "\n".join(str(p) for p in existing[:MAX_LISTED])
    more = f"\n… and {len(existing) - MAX_LISTED} more" if len(existing) > MAX_LISTED else ""
    answer = QMessageBox.question(
        parent, "Overwrite files?", f"{len(existing)} file(s) exist already:\n{listed}{more}\n\nReplace them?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes
