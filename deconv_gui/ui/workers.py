"""Long work off the GUI thread: one worker QThread running jobs with a CancelToken, progress and request ids.

A *job* is a plain function ``fn(progress, cancel) -> value`` (``progress(done, total, stage)``; ``cancel`` a
:class:`CancelToken`). :class:`TaskRunner` sends it to its worker thread through a queued signal and reports
back ``finished(request_id, lane, value)`` / ``failed(request_id, lane, message, traceback)`` /
``cancelled(request_id, lane)``. Results carry the request id so the caller drops stale ones (a result for an
image the user has left). Submitting a job in a *lane* cancels the lane's previous job (a new segmentation
supersedes the old one); the old job stops at its next check and the new one starts right after it.

Cancel latency. The pipeline checks the token between chunks of crops. On a CPU one chunk of 8 crops of the
full-width DeconvNet takes seconds, so the app (a) runs 2 crops per forward on the CPU
(``deconv_gui.document.jobs.APP_CPU_CHUNK``) and (b) installs forward pre-hooks on every leaf module of the
models while a job runs (``deconv_gui.inference.cancellable.cancellable``): each layer checks the token before it
runs, and the huge ones (fc6, fc7, fc6-deconv) between slices of their weights too, so Cancel stops the work
within one slice, not one chunk. The hooks are removed when the job ends; a pre-hook costs ~1 µs, nothing next to
a convolution. Nothing is ever killed (no ``QThread.terminate``).
"""

from __future__ import annotations

import itertools
import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from deconv_gui.core.cancel import CancelToken, ProgressCallback
from deconv_gui.core.errors import Cancelled, DeconvGuiError

log = logging.getLogger(__name__)

Job = Callable[[ProgressCallback, CancelToken], Any]


def user_message(exc: BaseException) -> str:
    """The message a user sees for a failed job (CUDA out-of-memory gets advice)."""
    text = str(exc)
    if "out of memory" in text.lower():
        return ("the device ran out of memory: choose the CPU in the device selector, use fewer proposals, "
                f"or a smaller image ({text.splitlines()[0][:160]})")
    return text


class _Worker(QObject):
    """Lives on the worker thread; runs one job at a time."""

    progress = Signal(int, int, int, str)
    finished = Signal(int, object)
    failed = Signal(int, str, str)
    cancelled = Signal(int)

    @Slot(int, object, object)
    def run(self, request_id: int, job: Job, cancel: CancelToken) -> None:
        if cancel.cancelled:
            self.cancelled.emit(request_id)
            return

        def progress(done: int, total: int, stage: str) -> None:
            self.progress.emit(request_id, int(done), int(total), str(stage))

        try:
            value = job(progress, cancel)
        except Cancelled:
            self.cancelled.emit(request_id)
        except DeconvGuiError as exc:
            self.failed.emit(request_id, str(exc), "")
        except Exception as exc:  # noqa: BLE001 - reported to the user; the worker must survive
            log.exception("job %d failed", request_id)
            if "out of memory" in str(exc).lower():
                self.failed.emit(request_id, user_message(exc), "")
            else:
                self.failed.emit(request_id, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            if cancel.cancelled:
                self.cancelled.emit(request_id)
            else:
                self.finished.emit(request_id, value)


class TaskRunner(QObject):
    """Runs jobs on one worker thread, newest-wins per lane. Signals arrive on the thread that owns it.

    Jobs submitted ``quiet`` (look-ahead work the user did not ask for) count neither as busy nor report
    progress, and every other submission cancels them first, so they never keep the user waiting."""

    progress = Signal(int, str, int, int, str)  # request id, lane, done, total, stage
    finished = Signal(int, str, object)  # request id, lane, value
    failed = Signal(int, str, str, str)  # request id, lane, message, traceback ("" for user errors)
    cancelled = Signal(int, str)
    busy_changed = Signal(bool)
    _submit = Signal(int, object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._tokens: dict[int, tuple[str, CancelToken]] = {}
        self._quiet: set[int] = set()
        self._thread = QThread()
        self._thread.setObjectName("deconv_gui-worker")
        self._worker = _Worker()
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.run)
        self._worker.progress.connect(self._on_progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """Whether a job the user asked for is queued or running (quiet ones do not count)."""
        return any(request_id not in self._quiet for request_id in self._tokens)

    def lane_busy(self, lane: str) -> bool:
        return any(lane_ == lane for lane_, _ in self._tokens.values())

    def submit(self, lane: str, job: Job, *, supersede: bool = True, quiet: bool = False) -> int:
        """Queue ``job`` in ``lane`` and return its request id; cancels the lane's earlier jobs when
        ``supersede``, and every quiet job unless this one is quiet too."""
        if supersede:
            self.cancel(lane)
        if not quiet:
            for request_id in self._quiet:
                self._tokens[request_id][1].cancel()
        request_id = next(self._ids)
        token = CancelToken()
        was_busy = self.busy
        self._tokens[request_id] = (lane, token)
        if quiet:
            self._quiet.add(request_id)
        elif not was_busy:
            self.busy_changed.emit(True)
        self._submit.emit(request_id, job, token)
        return request_id

    def cancel(self, lane: str | None = None) -> None:
        """Cancel the jobs of ``lane`` (all lanes when None); they report ``cancelled`` soon."""
        for lane_, token in self._tokens.values():
            if lane is None or lane_ == lane:
                token.cancel()

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel everything and stop the thread; True when it stopped within ``timeout_ms``."""
        self.cancel()
        self._thread.quit()
        return self._thread.wait(timeout_ms)

    def _done(self, request_id: int) -> str:
        lane, _ = self._tokens.pop(request_id, ("", None))
        if request_id in self._quiet:
            self._quiet.discard(request_id)
        elif not self.busy:
            self.busy_changed.emit(False)
        return lane

    def _on_progress(self, request_id: int, done: int, total: int, stage: str) -> None:
        entry = self._tokens.get(request_id)
        if entry is not None and not entry[1].cancelled and request_id not in self._quiet:
            self.progress.emit(request_id, entry[0], done, total, stage)

    def _on_finished(self, request_id: int, value: object) -> None:
        self.finished.emit(request_id, self._done(request_id), value)

    def _on_failed(self, request_id: int, message: str, tb: str) -> None:
        self.failed.emit(request_id, self._done(request_id), message, tb)

    def _on_cancelled(self, request_id: int) -> None:
        self.cancelled.emit(request_id, self._done(request_id))
