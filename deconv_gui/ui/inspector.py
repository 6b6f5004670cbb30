"""The inspector: the winner layer (which proposal won each pixel), the hover explanation and Ctrl-click "select
the proposal that won this pixel", bound to the controller, the canvas and the proposals panel.

After every shown result (each recombination makes a new one) the winner map is computed on the inspector's own
worker thread (:func:`deconv_gui.inference.explain.compute_winners`, ~40 ms at 480×360 with 50 proposals), drawn
as the canvas's "winner" layer and counted into the table's "won" column; a result that is no longer the shown
one when its map lands is dropped. The hover explanation and Ctrl-click read one pixel on the GUI thread
(~0.2 ms, plus laying out the panel's text), at most once per :data:`HOVER_MS` however fast the mouse moves.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QPointF, QTimer, Signal

from deconv_gui.core.cancel import CancelToken, ProgressCallback
from deconv_gui.core.winners import WINNER_BASE, winner_colours, winner_rgba
from deconv_gui.document.session import ImageSession
from deconv_gui.inference.explain import (
    PixelExplanation,
    Winners,
    compute_winners,
    explain_pixel,
    source_name,
)
from deconv_gui.inference.result import SegmentationResult
from deconv_gui.ui.explain_view import ExplainOverlay, explanation_html
from deconv_gui.ui.qimage import to_qimage
from deconv_gui.ui.workers import Job, TaskRunner

if TYPE_CHECKING:
    from PySide6.QtGui import QImage

    from deconv_gui.ui.canvas import ImageCanvas
    from deconv_gui.ui.controller import Controller
    from deconv_gui.ui.main_window import MainWindow
    from deconv_gui.ui.proposals_panel import ProposalsPanel

log = logging.getLogger(__name__)

HOVER_MS = 15
"""The hover explanation follows the mouse at most this often (one pixel's read costs ~0.2 ms)."""


def winners_job(result: SegmentationResult) -> Job:
    """A worker job: ``(Winners, QImage of the winner layer)`` for ``result``."""

    def job(progress: ProgressCallback, cancel: CancelToken) -> tuple[Winners, QImage]:
        winners = compute_winners(result)
        cancel.raise_if_cancelled()
        return winners, to_qimage(winner_rgba(winners.winner, result.num_proposals))

    return job


class Inspector(QObject):
    """Winner layer + hover explanation + Ctrl-click for the current image. ``winners`` is the shown result's
    winner map once computed; ``message`` carries status-bar text."""

    winners_ready = Signal(object)  # Winners of the shown result
    message = Signal(str)

    def __init__(self, controller: Controller, canvas: ImageCanvas, proposals: ProposalsPanel,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller, self.canvas, self.proposals = controller, canvas, proposals
        self.winners: Winners | None = None
        self.explaining = False
        self.last_explanation: PixelExplanation | None = None
        self.hud = ExplainOverlay(canvas.viewport())
        self.tasks = TaskRunner(self)
        self.tasks.finished.connect(self._on_finished)
        self.tasks.failed.connect(lambda _id, _lane, message, tb: log.warning("winner map failed: %s\n%s", message, tb))
        self._hover: tuple[int, int] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(HOVER_MS)
        self._timer.timeout.connect(self.explain_now)
        controller.result_shown.connect(self._on_result)
        controller.image_opened.connect(self._on_image)
        controller.image_failed.connect(lambda *_: self._on_image(None))
        canvas.hovered.connect(self.hover)
        canvas.left.connect(self.leave)
        canvas.ctrl_clicked.connect(self.pick_winner)

    # --- the winner layer ----------------------------------------------------------------------------------------

    def _shown(self) -> SegmentationResult | None:
        s = self.controller.session
        return s.shown if s is not None else None

    def _on_image(self, session: ImageSession | None) -> None:
        self.winners = None
        self.tasks.cancel()
        self.canvas.overlays.show_winners(None)
        self.hud.hide()
        if session is not None and session.shown is None:
            self.proposals.set_won(None)

    def _on_result(self, session: ImageSession) -> None:
        shown = session.shown
        if shown is None:
            return
        self.proposals.set_class_names(list(shown.class_names))
        if self.winners is not None and self.winners.result is shown:
            self.proposals.set_won(self.winners.won)
            return
        self.tasks.submit("winners", winners_job(shown))

    def _on_finished(self, _request_id: int, _lane: str, value: object) -> None:
        winners, image = value  # type: ignore[misc]
        if winners.result is not self._shown():
            return  # the user has moved on (another recombination or image): a newer job is on its way
        self.winners = winners
        self.canvas.overlays.show_winners(image)
        self.proposals.set_won(winners.won)
        log.debug("winner map %s: %.1f ms", winners.winner.shape, winners.seconds * 1000)
        self.winners_ready.emit(winners)
        if self.hud.isVisible():
            self.explain_now()

    # --- hover -------------------------------------------------------------------------------------------------

    def set_explaining(self, on: bool) -> None:
        """Show (or stop showing) the explanation of the pixel under the cursor."""
        self.explaining = bool(on)
        if on and self._hover is not None:
            self.explain_now()
        elif not on:
            self.hud.hide()

    def hover(self, x: int, y: int) -> None:
        self._hover = (x, y)
        if self.explaining and not self._timer.isActive():
            self._timer.start()

    def leave(self) -> None:
        self._hover = None
        self._timer.stop()
        self.hud.hide()

    def explain_now(self) -> None:
        """Explain the last hovered pixel in the panel beside it."""
        shown = self._shown()
        if not self.explaining or shown is None or self._hover is None:
            self.hud.hide()
            return
        x, y = self._hover
        e = explain_pixel(shown, x, y)
        self.last_explanation = e
        if e is None:
            self.hud.hide()
            return
        colours = winner_colours(shown.num_proposals)
        point = self.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))
        self.hud.show_at(explanation_html(e, np.asarray(shown.palette), colours), point)

    # --- Ctrl-click --------------------------------------------------------------------------------------------

    def winner_at(self, x: int, y: int) -> int | None:
        """The winner code of pixel ``(x, y)`` of the shown result (None outside it / without a result)."""
        shown = self._shown()
        if shown is None:
            return None
        h, w = shown.image_hw
        if not (0 <= x < w and 0 <= y < h):
            return None
        if self.winners is not None and self.winners.result is shown:
            return int(self.winners.winner[y, x])
        e = explain_pixel(shown, x, y, top_classes=1, top_proposals=0)
        return e.winner if e is not None else None

    def pick_winner(self, fx: float, fy: float) -> int | None:
        """Ctrl-click at image point ``(fx, fy)``: select the proposal that won that pixel (its row in the table);
        the status bar says when the whole-image base or nothing won it, or when the table's filter hides it."""
        x, y = int(np.floor(fx)), int(np.floor(fy))
        code = self.winner_at(x, y)
        if code is None:
            return None
        if code < 0:
            what = "the whole-image base pass" if code == WINNER_BASE else "no proposal (the 0 floor)"
            self.message.emit(f"({x}, {y}) was won by {what}")
            return code
        self.controller.select(code)
        hidden = "" if self.proposals.is_listed(code) else " — the table's filter hides its row"
        self.message.emit(f"({x}, {y}) was won by proposal {source_name(code)}{hidden}")
        return code

    def show_inspection(self, x: int, y: int) -> None:
        """Everything at once, for a screenshot: the winner layer on, pixel ``(x, y)`` explained and its winner
        selected."""
        window = self.parent()
        layers = getattr(window, "layers", None)
        if layers is not None:
            layers.checks["winner"].setChecked(True)
        actions = getattr(window, "actions_", {})
        if "explain" in actions:
            actions["explain"].setChecked(True)
        else:
            self.set_explaining(True)
        self.pick_winner(x + 0.5, y + 0.5)
        self._hover = (x, y)
        self.explain_now()

    def shutdown(self) -> None:
        self.tasks.shutdown()


def wire_inspector(window: MainWindow) -> Inspector:
    """Create the window's inspector and connect its actions: W the winner layer, I the hover explanation."""
    inspector = Inspector(window.controller, window.canvas, window.proposals, window)
    a = window.actions_
    a["toggle_winners"].triggered.connect(lambda: window.layers.toggle("winner"))
    a["explain"].toggled.connect(inspector.set_explaining)
    inspector.message.connect(lambda text: window.statusBar().showMessage(text, 8000))
    return inspector
