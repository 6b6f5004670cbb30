"""Time left for a run over many images, from the pace so far (Qt-free)."""

from __future__ import annotations

import time
from collections.abc import Callable


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 20 s"``, ``"2 h 05 min"``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Eta:
    """Estimates the time left after ``done`` of ``total`` items: the mean time per item so far × items left."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start = clock()

    def restart(self) -> None:
        self._start = self._clock()

    def seconds_left(self, done: int, total: int) -> float | None:
        """None before the first item is done (no pace yet)."""
        if done <= 0 or total <= 0:
            return None
        elapsed = self._clock() - self._start
        return elapsed / done * max(0, total - done)

    def text(self, done: int, total: int) -> str:
        """``"about 3 min 20 s left"``, or ``"estimating time left…"`` before the first item is done."""
        left = self.seconds_left(done, total)
        return "estimating time left…" if left is None else f"about {format_duration(left)} left"
