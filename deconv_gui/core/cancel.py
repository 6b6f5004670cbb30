"""Cooperative cancellation and progress reporting for long work (inference, folder runs, training).

Work checks :meth:`CancelToken.raise_if_cancelled` between chunks; a UI or a signal handler calls
:meth:`CancelToken.cancel`. Nothing is ever killed mid-kernel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from deconv_gui.core.errors import Cancelled

ProgressCallback = Callable[[int, int, str], None]
"""``progress(done, total, stage)``: ``done`` of ``total`` units of ``stage`` ("proposals", "crops", …)."""


class CancelToken:
    """A thread-safe flag; set it from any thread to stop work at the next check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")


def no_progress(done: int, total: int, stage: str) -> None:  # noqa: ARG001 - signature of ProgressCallback
    """A :data:`ProgressCallback` that ignores its calls."""
