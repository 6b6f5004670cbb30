"""The controller's export commands: the current image, every image of the list, the edited images as a dataset.

A mixin of :class:`deconv_gui.ui.controller.Controller` (it uses the controller's engine, folder, opened sessions,
``_submit`` and signals); kept apart so that the controller stays about opening and running.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.document.autosave import EditsStore
from deconv_gui.document.dataset_export import dataset_export_job
from deconv_gui.document.output_folders import default_edits_folder
from deconv_gui.document.session import ImageSession
from deconv_gui.inference import result_files


class ExportCommands:
    """Export commands of the controller (see the module docstring)."""

    # --- exports -----------------------------------------------------------------------------------------------

    def existing_outputs(self, out_dir: Path, formats: set[str], *, whole_folder: bool) -> list[Path]:
        """Files an export would overwrite (ask the user first)."""
        if whole_folder:
            return result_files.existing_folder_outputs(out_dir, self.folder.files, formats)
        if self.session is None:
            return []
        return result_files.existing_outputs(out_dir, self.session.path.stem, formats)

    def export_current(self, out_dir: Path, formats: set[str], *, overwrite: bool = False) -> int | None:
        """Write the shown result of the current image in ``formats`` (on the worker)."""
        s = self.session
        if s is None and self.failed_path is not None:
            self.error.emit(f"{self.failed_path.name} could not be opened: there is nothing to export for it")
            return None
        if s is None or s.shown is None:
            self.error.emit("nothing to export yet: open an image and let it segment")
            return None
        return self._submit("export", self.engine.export_job(s, out_dir, formats, overwrite=overwrite),
                            lambda written, paths=[s.path]: self._exported(paths, written))

    def export_all(self, out_dir: Path, formats: set[str], *, overwrite: bool = False) -> int | None:
        """Export every image of the file list; images without a result are segmented first (on the worker)."""
        if not self.folder.files:
            self.error.emit("no folder is open")
            return None
        cached = {p: (s.image, s.shown, s.edited_label()) for p, s in self._sessions.items() if s.shown is not None}
        if len(cached) < len(self.folder.files) and not self.engine.ready:
            self.error.emit("no model loaded to segment the images that have no result yet")
            return None
        files = list(self.folder.files)
        job = self.engine.export_folder_job(files, cached, self.choices, out_dir, formats, overwrite=overwrite,
                                            saved_edits=self._saved_edits)
        return self._submit("export", job, lambda written: self._exported(files, written))

    def _exported(self, paths: list[Path], written: list[Path]) -> None:
        for p in paths:
            self.mark_exported(p)
        self.exported.emit(written)
        self.status.emit(f"exported {len(written)} files")

    def export_dataset(self, out_dir: Path, *, overwrite: bool = False) -> int | None:
        """Write the edited images of the file list as a VOC tree for ``deconv-gui train`` (on the worker)."""
        store = self.edits
        cached = {p: (s.image, s.shown, s.edited_label()) for p, s in self._sessions.items()
                  if s.annotation is not None and s.annotation.has_edits}
        files = list(self.folder.files) or ([self.session.path] if self.session is not None else [])
        if not cached and not any(store.has_edits(p) for p in files):
            self.error.emit("no edited image to export: paint some corrections first")
            return None
        try:
            job = dataset_export_job(self.engine, files, cached, self.choices, Path(out_dir), overwrite=overwrite,
                                     has_saved_edits=lambda p: p not in cached and store.has_edits(p),
                                     saved_edits=self._saved_edits)
        except DeconvGuiError as exc:
            self.error.emit(str(exc))
            return None
        return self._submit("dataset_export", job, self._dataset_exported)

    def _dataset_exported(self, written: list[Path]) -> None:
        self.dataset_exported.emit(written)
        self.status.emit(f"dataset export: {len(written)} files written")

    def _saved_edits(self, path: Path, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Autosaved edits of an image not open in the app (read on the worker; a bad file is only logged)."""
        return self.edits.load(path, image, set_aside=False)

    def set_edits_folder(self, folder: Path | None) -> None:
        """Autosave edits into a project ``folder`` (None: the default one outside the data, never next to the
        images); remembered in the preferences."""
        self.edits = EditsStore(Path(folder) if folder else default_edits_folder())
        self.prefs.annotation_folder = str(folder) if folder else None

    def mark_changed(self, session: ImageSession) -> None:
        """The user edited ``session`` (by hand): an exported image goes back to "segmented"."""
        session.edited()
        self._set_state(session.path, session.state)

    def mark_exported(self, path: Path) -> None:
        s = self._sessions.get(Path(path))
        if s is not None:
            s.state = "exported"
        self._set_state(Path(path), "exported")
