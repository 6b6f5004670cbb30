"""The app's controller: the document (sessions, folder, engine, choices) bound to a worker, as Qt signals.

Widgets call its methods and listen to its signals; it owns no widget. Every heavy step (reading an image,
loading weights, segmenting, recombining, adding a box, running a folder) is a job on the worker thread that
carries its own completion handler (``_submit(lane, job, done, for_image=…)``): the handler runs only when the
job is the newest of its lane and, for a job about one image, that image is still the current one. The UI's
pictures of each image (its QImage, its result's overlay QImages) are kept here, beside the Qt-free sessions.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from deconv_gui.core.cancel import CancelToken, ProgressCallback
from deconv_gui.core.errors import DeconvGuiError, ImageReadError
from deconv_gui.document.autosave import EditsStore
from deconv_gui.document.eta import Eta
from deconv_gui.document.folder import FolderModel
from deconv_gui.document.jobs import Engine
from deconv_gui.document.output_folders import default_edits_folder
from deconv_gui.document.preferences import Preferences, save_preferences
from deconv_gui.document.proposal_choices import ProposalChoices
from deconv_gui.document.session import ImageSession, ImageState, ViewChoices, proposals_used
from deconv_gui.ui.controller_ahead import LookAhead
from deconv_gui.ui.controller_exports import ExportCommands
from deconv_gui.ui.controller_models import ModelLoading
from deconv_gui.ui.controller_restore import ChoiceRestore
from deconv_gui.ui.pictures import Drawn, Pictures, drawn, drawn_with_display, with_qimage
from deconv_gui.ui.qimage import LayerImages
from deconv_gui.ui.workers import TaskRunner

log = logging.getLogger(__name__)

MAX_CACHED_SESSIONS = 6
"""Opened images kept with their cached maps, for going back and forth in a folder without re-running."""
MAX_CACHE_BYTES = 2 << 30
"""…as long as their arrays stay under this (a 12 MP photo's result alone holds ~1 GB at 6 classes)."""

T = TypeVar("T")


@dataclass
class _Pending:
    """A submitted job's completion: ``done(value)`` on success; ``failed(message)`` before the error is
    reported; ``for_image``: the job is about that image and is dropped when another one is current."""

    lane: str
    done: Callable[[Any], None]
    failed: Callable[[str], None] | None = None
    for_image: Path | None = None
    quiet: bool = False
    """Look-ahead work nobody asked for: its failure and its cancelling are not reported."""


class Controller(ModelLoading, ExportCommands, ChoiceRestore, LookAhead, QObject):
    """Document + worker. Signals carry sessions/results; all are emitted on the GUI thread."""

    image_opened = Signal(object)  # ImageSession (no result yet, or a cached one)
    image_failed = Signal(object, str)  # Path, why it could not be opened (no image is current any more)
    file_failed = Signal(object, str)  # Path, why: a file of the list that could not be read (a folder run)
    result_shown = Signal(object)  # ImageSession whose ``shown`` changed
    selection_changed = Signal(object)  # int | None
    folder_changed = Signal(object)  # FolderModel
    state_changed = Signal(object, str)  # Path, state
    model_changed = Signal(str)  # description of the model and device in use
    partner_changed = Signal(bool)
    models_described = Signal(str)  # what is loaded and what it was trained on (the status bar's model line)
    model_proposals = Signal(int)  # the loaded model's own proposal count (what the count's 0 stands for)
    choices_changed = Signal(object)  # ViewChoices
    error = Signal(str)  # a user-facing message
    unexpected = Signal(str, str)  # message, traceback
    status = Signal(str)
    result_summary = Signal(str)  # "scene.png: 7 of 51 proposals used (network 2100 ms, …)" — stays on screen
    progress = Signal(int, int, str)  # done, total, stage
    busy_changed = Signal(bool)
    run_cancelled = Signal()
    folder_run_finished = Signal(int, int)  # succeeded, failed
    exported = Signal(object)  # list[Path] written
    dataset_exported = Signal(object)  # list[Path] written by a dataset export
    _folder_item = Signal(object)  # Rendered, posted from the worker during a folder run

    def __init__(self, preferences: Preferences | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.prefs = preferences or Preferences()
        self.engine = Engine()
        self.engine.device = self.prefs.device
        self.engine.set_proposals(self.prefs.num_proposals, self.prefs.edge_model_file)
        self.choices = ViewChoices(crf_params=self.prefs.crf_params())
        self.folder = FolderModel()
        self.edits = EditsStore(Path(self.prefs.annotation_folder or default_edits_folder()))
        self.session: ImageSession | None = None
        self.failed_path: Path | None = None
        """The file whose opening failed last, while it is the one on screen (nothing to export then)."""
        self._sessions: OrderedDict[Path, ImageSession] = OrderedDict()
        self.pictures: dict[Path, Pictures] = {}
        """The UI's pictures of the cached sessions (same keys, evicted together)."""
        self._latest: dict[str, int] = {}
        self._pending: dict[int, _Pending] = {}
        self._pending_boxes: list[np.ndarray] = []
        self._restoring: dict[Path, ProposalChoices] = {}
        """Images reopened with saved drawn boxes / exclusions still to re-apply once they are segmented."""
        self.tasks = TaskRunner(self)
        self.tasks.finished.connect(self._on_finished)
        self.tasks.failed.connect(self._on_failed)
        self.tasks.cancelled.connect(self._on_cancelled)
        self.tasks.progress.connect(self._on_progress)
        self._eta = Eta()
        self.tasks.busy_changed.connect(self.busy_changed)
        self._folder_item.connect(self._on_folder_item)
        self._init_look_ahead()

    # --- opening ---------------------------------------------------------------------------------------------

    def open_paths(self, paths: list[Path]) -> None:
        """Open files and/or folders; the first image is shown. A folder becomes the file list; files are
        added to the list already open (which is never replaced by a few files)."""
        try:
            opened = FolderModel.from_paths([Path(p) for p in paths])
        except DeconvGuiError as exc:  # an unlistable folder
            self.error.emit(str(exc))
            return
        skipped = opened.skipped_message()
        if not len(opened):
            self.error.emit(f"no images found in {', '.join(str(p) for p in paths)}" + (f" ({skipped})" if skipped else ""))
            return
        if self.folder.files and not any(Path(p).is_dir() for p in paths):
            added = self.folder.extend(opened)
            if added:
                self.status.emit(f"added {len(added)} image{'s' if len(added) > 1 else ''} to the list "
                                 f"({len(self.folder)} in all)")
        else:
            self.folder = opened
        self.folder_changed.emit(self.folder)
        for p in paths:
            self.prefs.add_recent_file(p)
        if skipped:
            for p, reason in opened.skipped:
                log.warning("%s: skipped (%s)", p, reason)
            self.status.emit(skipped)
        self.open_image(opened.files[0])

    def open_image(self, path: Path) -> None:
        """Show ``path``: from the cache when it was opened before, else read it on the worker."""
        path = Path(path)
        if path in self.folder.states:
            self.folder.select(self.folder.index_of(path))
        cached = self._sessions.get(path)
        self.tasks.cancel("segment")
        if cached is not None:
            self._sessions.move_to_end(path)
            self._activate(cached)
            if cached.raw is None and self.engine.ready:
                self.segment()
            return
        read = self.engine.read_job(path)
        self._submit("open", lambda progress, cancel: with_qimage(read(progress, cancel)),
                     lambda value, path=path: self._opened(path, *value),
                     failed=lambda message, path=path: self._open_failed(path, message))

    def _opened(self, path: Path, image: np.ndarray, display: QImage) -> None:
        if self.folder.mark_opened(path):
            self.state_changed.emit(path, "not run")
        session = ImageSession(path, image)
        self.pictures[path] = Pictures(display)
        self._restore_choices(session)
        self._activate(session)
        self._remember(session)
        if self.engine.ready:
            self.segment()

    def next_image(self) -> None:
        path = self.folder.next()
        if path is not None and (self.session is None or path != self.session.path):
            self.open_image(path)

    def previous_image(self) -> None:
        path = self.folder.previous()
        if path is not None and (self.session is None or path != self.session.path):
            self.open_image(path)

    def display_of(self, session: ImageSession) -> QImage | np.ndarray:
        """The picture to show for ``session``: its QImage, or its array when none was made."""
        pictures = self.pictures.get(session.path)
        return pictures.display if pictures is not None and pictures.display is not None else session.image

    def layers_of(self, session: ImageSession) -> LayerImages | None:
        """The overlay QImages of ``session``'s shown result, or None before one."""
        pictures = self.pictures.get(session.path)
        return pictures.layers if pictures is not None else None

    def _activate(self, session: ImageSession) -> None:
        self.session, self.failed_path = session, None
        self.image_opened.emit(session)
        if session.shown is not None:
            self.result_shown.emit(session)
            self._look_ahead()

    def _remember(self, session: ImageSession) -> None:
        """Cache ``session``; evict the least recently used others beyond the count or memory budget."""
        self._sessions[session.path] = session
        self._sessions.move_to_end(session.path)
        keep = {session.path, self.session.path if self.session is not None else None}
        while (len(self._sessions) > MAX_CACHED_SESSIONS
               or sum(s.nbytes() for s in self._sessions.values()) > MAX_CACHE_BYTES):
            victims = [p for p in self._sessions if p not in keep]
            if not victims:
                break
            del self._sessions[victims[0]]
            self.pictures.pop(victims[0], None)

    # --- running -----------------------------------------------------------------------------------------------

    def segment(self, *, boxes: np.ndarray | None = None) -> int | None:
        """(Re-)run the network on the current image; returns the request id."""
        if self.session is None:
            return None
        if not self.engine.ready:
            self.status.emit("no model loaded: File → Load weights…")
            return None
        try:
            job = self.engine.segment_job(self.session, self.choices, boxes)
        except DeconvGuiError as exc:
            self.error.emit(str(exc))
            return None
        self.tasks.cancel("recombine")
        return self._submit("segment", drawn(job), lambda drawn: self._shown(drawn, "segment"),
                            for_image=self.session.path)

    def cancel(self) -> None:
        self.tasks.cancel()

    def add_box(self, box: tuple[float, float, float, float]) -> None:
        """Run the network on the crop of ``box`` (x0, y0, x1, y1 image pixels) only and add it as a proposal."""
        s = self.session
        if s is None or s.raw is None:
            self.status.emit("segment the image before drawing boxes")
            return
        if s.raw.mode != "instances":
            self.status.emit("this model segments whole images; boxes apply to DeconvNet models")
            return
        self._pending_boxes.append(np.asarray(box, np.float64))
        if not self.tasks.lane_busy("add_box"):
            self._next_box()

    def _next_box(self) -> None:
        s = self.session
        if not self._pending_boxes or s is None or s.raw is None:
            self._pending_boxes.clear()
            return
        box = self._pending_boxes.pop(0)
        self._submit("add_box", drawn(self.engine.add_box_job(s, self.choices, box)),
                     lambda drawn: self._shown(drawn, "add_box"), for_image=s.path)

    def set_choices(self, **changes: object) -> None:
        """Change ensemble/crf/crf_params/aggregation/top_n and recombine from the cached maps."""
        self.choices = replace(self.choices, **changes)  # type: ignore[arg-type]
        if "crf_params" in changes:
            self.prefs.set_crf_params(self.choices.crf_params)
        self.choices_changed.emit(self.choices)
        self._recombine()

    def set_included(self, index: int, included: bool) -> None:
        if self.session is None or self.session.raw is None:
            return
        self.session.set_included(index, included)
        self._set_state(self.session.path, self.session.state)
        self._save_choices(self.session)
        self._recombine()

    def select(self, index: int | None) -> None:
        if self.session is None:
            return
        if index is not None and not (0 <= index < len(self.session.summaries)):
            index = None
        if index != self.session.selected:
            self.session.selected = index
            self.selection_changed.emit(index)

    def _recombine(self) -> None:
        s = self.session
        if s is None or s.raw is None:
            return
        if s.raw.partner_scores is None and self.engine.partner is not None and self.choices.ensemble != "off":
            self._submit("partner", self.engine.partner_job(s), self._partner_scores_ready, for_image=s.path)
            return
        self._submit("recombine", drawn(self.engine.recombine_job(s, self.choices)),
                     lambda drawn: self._shown(drawn, "recombine"), for_image=s.path)

    def _partner_scores_ready(self, scores: np.ndarray) -> None:
        assert self.session is not None
        self.session.with_partner_scores(scores)
        self._recombine()

    def _shown(self, drawn: Drawn, lane: str) -> None:
        """A run, an added box or a re-combination of the current image is ready: adopt and show it."""
        s, out = self.session, drawn.rendered
        assert s is not None
        if out.base is not None and out.base is not s.raw:
            # Combined from raw maps that have moved on (a box was added meanwhile): do it again.
            if lane == "add_box":
                assert out.raw is not None
                self._pending_boxes.insert(0, np.asarray(out.raw.boxes[-1], np.float64))
                self._next_box()
            else:
                self._recombine()
            return
        self._adopt(s, drawn)
        self.result_shown.emit(s)
        timings = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in out.shown.timings.items())
        self.result_summary.emit(f"{s.path.name}: {proposals_used(out.shown)} ({timings})")
        if lane == "add_box":
            self._next_box()
        if lane in ("segment", "add_box"):
            self._continue_restore(s, lane)
        self._look_ahead()

    # --- folder ------------------------------------------------------------------------------------------------

    def run_folder(self, *, only_not_run: bool = False) -> int | None:
        """Segment every image of the file list on the worker; per-image results land as they come."""
        if not self.engine.ready:
            self.error.emit("no model loaded: File → Load weights…")
            return None
        files = [f for f in self.folder.files if not only_not_run or self.folder.state(f) == "not run"]
        job = self.engine.folder_job(files, self.choices, self._folder_item.emit, finish=drawn_with_display)
        self._eta.restart()
        return self._submit("folder", job, self._folder_done)

    def _folder_done(self, counts: tuple[int, int]) -> None:
        ok, failed = counts
        self.folder_run_finished.emit(ok, failed)
        self.status.emit(f"folder run: {ok} segmented, {failed} failed")

    def _on_progress(self, _request_id: int, lane: str, done: int, total: int, stage: str) -> None:
        if lane == "folder" and done < total:  # Run on all images: how long is left
            stage = f"{stage} — {self._eta.text(done, total)}"
        self.progress.emit(done, total, stage)

    def _on_folder_item(self, item: object) -> None:
        if isinstance(item, DeconvGuiError):
            self.status.emit(str(item))
            if isinstance(item, ImageReadError) and item.path is not None and Path(item.path) in self.folder.states:
                self.folder.mark_failed(Path(item.path), str(item))
                self._set_state(Path(item.path), "failed")
                self.file_failed.emit(Path(item.path), str(item))
            return
        assert isinstance(item, Drawn) and item.rendered.image is not None
        out = item.rendered
        current = self.session is not None and self.session.path == out.path
        session = self.session if current else self._sessions.get(out.path) or ImageSession(out.path, out.image)
        assert session is not None
        if out.path not in self.pictures:
            self.pictures[out.path] = Pictures(item.display)
        self._adopt(session, item)
        self._remember(session)
        if current:
            self.result_shown.emit(session)

    # --- plumbing ----------------------------------------------------------------------------------------------

    def _submit(self, lane: str, job: Callable[[ProgressCallback, CancelToken], T], done: Callable[[T], None], *,
                failed: Callable[[str], None] | None = None, for_image: Path | None = None,
                quiet: bool = False) -> int:
        """Run ``job`` on the worker in ``lane`` (superseding the lane's previous job); ``done(value)`` runs on the
        GUI thread when it succeeds and is still wanted (see :class:`_Pending`). ``quiet``: look-ahead work,
        cancelled by the next request (see :mod:`deconv_gui.ui.controller_ahead`)."""
        request_id = self.tasks.submit(lane, job, quiet=quiet)
        self._latest[lane] = request_id
        self._pending[request_id] = _Pending(lane, done, failed, for_image, quiet)
        return request_id

    def _wanted(self, request_id: int, lane: str) -> _Pending | None:
        """The pending completion of ``request_id`` if it is still wanted (newest of its lane, its image current)."""
        pending = self._pending.pop(request_id, None)
        if pending is None or self._latest.get(lane) != request_id:
            return None
        if pending.for_image is not None and (self.session is None or self.session.path != pending.for_image):
            return None
        return pending

    def _set_state(self, path: Path, state: ImageState) -> None:
        self.folder.set_state(path, state)
        self.state_changed.emit(path, state)

    def _adopt(self, session: ImageSession, drawn: Drawn) -> None:
        out = drawn.rendered
        if out.raw is not None:
            session.set_result(out.raw, out.shown, out.summaries, out.combine)
        session.show(out.shown)
        self.pictures.setdefault(session.path, Pictures()).layers = drawn.layers
        self._set_state(session.path, session.state)

    def _on_finished(self, request_id: int, lane: str, value: object) -> None:
        pending = self._wanted(request_id, lane)
        if pending is not None:
            pending.done(value)

    def _on_failed(self, request_id: int, lane: str, message: str, tb: str) -> None:
        pending = self._wanted(request_id, lane)
        if pending is None:
            return
        if pending.failed is not None:
            pending.failed(message)
        if pending.quiet:  # nobody asked for it: the user meets the problem when asking
            log.info("look-ahead: %s", message)
            return
        if tb:
            self.unexpected.emit(message, tb)
        else:
            self.error.emit(message)

    def _open_failed(self, path: Path, message: str) -> None:
        """``path`` could not be read: it is marked failed and nothing stays current (the previous image's
        work is kept in the cache), so nothing of another image is shown, edited or exported as this one."""
        self.folder.mark_failed(path, message)
        self._set_state(path, "failed")
        self._sessions.pop(path, None)
        self.pictures.pop(path, None)
        self.session, self.failed_path = None, path
        self.tasks.cancel("recombine")
        self._pending_boxes.clear()
        self.image_failed.emit(path, message)

    def _on_cancelled(self, request_id: int, lane: str) -> None:
        pending = self._pending.pop(request_id, None)
        if lane == "add_box":
            self._pending_boxes.clear()
        if self._latest.get(lane) == request_id and not (pending is not None and pending.quiet):
            self.status.emit("cancelled")
            self.run_cancelled.emit()

    def shutdown(self) -> None:
        """Cancel running work, wait for the worker, save preferences."""
        self.tasks.shutdown()
        save_preferences(self.prefs)

