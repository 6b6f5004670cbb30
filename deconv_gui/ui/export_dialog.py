"""Export dialog: which formats, where, the current image or the whole folder; asks before overwriting.

It opens with the formats and folder of the last export (the window keeps them in the preferences) and says,
as the choices change, which files go where — and warns when that is inside the image folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from deconv_gui.document.output_folders import short_path
from deconv_gui.inference.result_files import FOLDER_COCO_NAME, FORMATS, output_paths
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

    def __init__(self, out_dir: Path, has_folder: bool, parent: QWidget | None = None, *,
                 formats: list[str] | None = None, image_path: Path | None = None, num_images: int = 1) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self._image_path, self._num_images = image_path, num_images
        ticked = {f for f in formats if f in FORMATS} if formats is not None else {"palette", "overlay"}
        layout = QVBoxLayout(self)
        self.checks: dict[str, QCheckBox] = {}
        for fmt in FORMATS:
            check = QCheckBox(FORMAT_LABELS.get(fmt, fmt))
            check.setChecked(fmt in ticked)
            check.toggled.connect(self._update_where)
            layout.addWidget(check)
            self.checks[fmt] = check
        form = QFormLayout()
        self.out_dir = QLineEdit(str(out_dir))
        self.out_dir.textChanged.connect(self._update_where)
        form.addRow("Output folder", path_row(self.out_dir, self._browse))
        self.current = QRadioButton("This image")
        self.folder = QRadioButton("All images in the file list")
        self.current.setChecked(True)
        self.folder.setEnabled(has_folder)
        scope = QHBoxLayout()
        scope.addWidget(self.current)
        scope.addWidget(self.folder)
        form.addRow("Export", scope)
        self.current.toggled.connect(self._update_where)
        layout.addLayout(form)
        self.where = QLabel()
        self.where.setWordWrap(True)
        self.where.setTextInteractionFlags(self.where.textInteractionFlags() | Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.where)
        self._update_where()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export to", self.out_dir.text())
        if path:
            self.out_dir.setText(path)

    def _update_where(self) -> None:
        """Say which files go where for the current choices."""
        out_dir, formats, whole = self.choice()
        if not formats:
            self.where.setText("Choose at least one format.")
            return
        stem = self._image_path.stem if self._image_path is not None else "<image>"
        per_image = [p.name for p in output_paths(out_dir, stem, sorted(f for f in formats if f != "coco" or not whole))]
        if whole:
            text = (f"{self._num_images} images → {short_path(out_dir)}/: {', '.join(per_image)} for each"
                    + (f", and one {FOLDER_COCO_NAME}" if "coco" in formats else ""))
        else:
            text = f"Writes {', '.join(per_image)} into {short_path(out_dir)}/"
        image_dir = self._image_path.parent.resolve() if self._image_path is not None else None
        if image_dir is not None and (out_dir.resolve() == image_dir or image_dir in out_dir.resolve().parents):
            text += "\n⚠ This folder is inside the image folder: the files would go into your data."
        self.where.setText(text)

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
