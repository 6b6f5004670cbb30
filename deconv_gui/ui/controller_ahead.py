"""The controller's look-ahead: work done while the user looks, so that the next request finds it done.

When the worker has been idle for :data:`IDLE_MS` after a result is on screen (a user still clicking through
toggles is not slowed by work they may not want), two quiet jobs run, one at a time (see
:class:`~deconv_gui.ui.workers.TaskRunner`: they count as neither busy nor progress, and any request of the user
cancels them at once — between network chunks or CRF steps):

1. the CRF of what is shown (when the CRF is off): switching it on then only draws;
2. the next image of the file list, read and segmented into the session cache (unless it has saved ticks or
   boxes, which are re-applied when it is opened): D / PgDn then shows it at once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QTimer

from deconv_gui.document.proposal_choices import load_choices
from deconv_gui.document.session import ImageSession, ViewChoices
from deconv_gui.ui.pictures import Drawn, drawn_with_display

log = logging.getLogger(__name__)

AHEAD_LANE = "ahead"
IDLE_MS = 500
"""How long the worker must have been idle before look-ahead work starts."""


class LookAhead:
    """Mixin of :class:`~deconv_gui.ui.controller.Controller` (uses its session, folder, engine and tasks)."""

    look_ahead = True
    """Whether idle time is spent ahead (off in tests that count the worker's jobs)."""
    session: ImageSession | None
    choices: ViewChoices
    engine: Any
    tasks: Any
    folder: Any
    edits: Any
    _sessions: dict[Path, ImageSession]

    def _init_look_ahead(self) -> None:
        self._refined_for: tuple[object, ...] | None = None
        self._not_prefetched: set[Path] = set()
        self._idle_timer = QTimer(self)  # type: ignore[call-overload]
        self._idle_timer.setSingleShot(True)
        self._idle_timer.setInterval(IDLE_MS)
        self._idle_timer.timeout.connect(self._look_ahead_now)

    def _look_ahead(self) -> None:
        """Start the next piece of look-ahead work once the worker has been idle for :data:`IDLE_MS` (a new
        request before then restarts the wait)."""
        if self.look_ahead:
            self._idle_timer.start()

    def _look_ahead_now(self) -> None:
        if not self.look_ahead or self.tasks.busy or self.tasks.lane_busy(AHEAD_LANE) or not self.engine.ready:
            return
        s = self.session
        if s is not None and s.raw is not None and not self.choices.crf:
            key = (s.path, id(s.raw), s.user_include.tobytes(), self.choices)
            if key != self._refined_for:
                self._submit(AHEAD_LANE, self.engine.crf_ahead_job(s, self.choices),  # type: ignore[attr-defined]
                             lambda _, key=key: self._refined(key), for_image=s.path, quiet=True)
                return
        path = self._next_to_prefetch()
        if path is None:
            return
        job = self.engine.prefetch_job(path, self.choices, self._has_saved_choices)

        def prefetch(progress: Any, cancel: Any) -> Drawn | None:
            out = job(progress, cancel)
            return None if out is None else drawn_with_display(out)

        self._submit(AHEAD_LANE, prefetch, lambda item, path=path: self._prefetched(path, item),  # type: ignore[attr-defined]
                     failed=lambda _message, path=path: self._not_prefetched.add(path), quiet=True)

    def _refined(self, key: tuple[object, ...]) -> None:
        self._refined_for = key
        self._look_ahead_now()

    def _next_to_prefetch(self) -> Path | None:
        """The file after the current one, when it is neither cached, failed nor skipped before."""
        s = self.session
        if s is None or s.raw is None or s.path not in self.folder.states:
            return None
        index = self.folder.index_of(s.path) + 1
        if index >= len(self.folder.files):
            return None
        path = self.folder.files[index]
        if path in self._sessions or path in self._not_prefetched or self.folder.state(path) == "failed":
            return None
        return path

    def _has_saved_choices(self, path: Path, image: np.ndarray) -> bool:
        return load_choices(self.edits, path, image) is not None

    def _prefetched(self, path: Path, item: Drawn | None) -> None:
        if item is None:
            self._not_prefetched.add(path)
        elif path not in self._sessions:
            self._on_folder_item(item)  # type: ignore[attr-defined]
        self._look_ahead_now()
