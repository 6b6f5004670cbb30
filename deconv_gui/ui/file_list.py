"""The opened folder's file list with each image's state (and "edited" when it has hand edits), "Run on all
images" and its progress."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QProgressBar, QPushButton, QVBoxLayout, QWidget

from deconv_gui.document.folder import FolderModel
from deconv_gui.ui.elided_label import ElidedLabel

STATE_COLOURS = {"not run": QColor(150, 150, 150), "segmented": QColor(60, 170, 90), "exported": QColor(70, 130, 230),
                 "failed": QColor(220, 60, 50)}
STATE_MARKS = {"not run": "○", "segmented": "●", "exported": "✓", "failed": "✗"}
EDITED_MARK = "✎ edited"


def paths_from_mime(mime: QMimeData) -> list[Path]:
    """Local files and folders dropped on a widget."""
    return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []


class FileList(QWidget):
    """List of the folder's images; clicking one opens it. (Drops land on the main window, its parent.)"""

    open_requested = Signal(object)  # Path
    run_all_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.itemActivated.connect(self._activated)
        self.list.itemClicked.connect(self._activated)
        self.run_all = QPushButton("Run on all images")
        self.run_all.clicked.connect(self.run_all_requested)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("%p%")
        self.progress.hide()
        self.progress_text = ElidedLabel()  # "image 5/233: 0001TP_… — about 3 min left", elided, never wrapped
        self.progress_text.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.run_all)
        layout.addWidget(self.progress_text)
        layout.addWidget(self.progress)
        self._rows: dict[Path, QListWidgetItem] = {}
        self._states: dict[Path, str] = {}
        self._edited: set[Path] = set()
        self._errors: dict[Path, str] = {}

    def set_folder(self, folder: FolderModel) -> None:
        self.list.clear()
        self._rows, self._states, self._errors = {}, {}, dict(folder.errors)
        for path in folder.files:
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            self.list.addItem(item)
            self._rows[path] = item
            self.set_state(path, folder.state(path))
        self.set_current(folder.current_path)

    def set_state(self, path: Path, state: str) -> None:
        item = self._rows.get(Path(path))
        if item is not None:
            self._states[Path(path)] = state
            edited = Path(path) in self._edited
            item.setText(f"{STATE_MARKS.get(state, '?')}  {Path(path).name}" + (f"  {EDITED_MARK}" if edited else ""))
            item.setForeground(STATE_COLOURS.get(state, QColor(0, 0, 0)))
            detail = f": {self._errors.get(Path(path), '')}" if state == "failed" else ""
            item.setToolTip(f"{path}\n{state}{detail}" + (", with hand edits (autosaved)" if edited else ""))

    def set_failed(self, path: Path, message: str) -> None:
        """Mark an image that could not be opened (the reason is its tooltip)."""
        self._errors[Path(path)] = message
        self.set_state(path, "failed")

    def set_edited(self, path: Path, edited: bool) -> None:
        """Mark an image that has (autosaved) hand edits."""
        path = Path(path)
        (self._edited.add if edited else self._edited.discard)(path)
        self.set_state(path, self._states.get(path, "not run"))

    def set_current(self, path: Path | None) -> None:
        item = self._rows.get(Path(path)) if path is not None else None
        if item is not None:
            self.list.blockSignals(True)
            self.list.setCurrentItem(item)
            self.list.blockSignals(False)

    def set_progress(self, done: int, total: int, text: str) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.progress_text.setText(text)
        self.progress.setVisible(done < total)
        self.progress_text.setVisible(done < total)

    def hide_progress(self) -> None:
        self.progress.hide()
        self.progress_text.hide()

    def _activated(self, item: QListWidgetItem) -> None:
        self.open_requested.emit(Path(item.data(Qt.ItemDataRole.UserRole)))
