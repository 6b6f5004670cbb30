"""Keep a top-level window on its screen: never larger than the screen's available area (QScreen
.availableGeometry: without panels and docks of the desktop), never partly off it."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget


def fit_to_screen(window: QWidget) -> None:
    """Shrink ``window`` to its screen's available area (decorations included) and move it inside; a maximised
    or full-screen window is the window manager's business."""
    if window.isMaximized() or window.isFullScreen() or not window.isVisible():
        return
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return
    area = screen.availableGeometry()
    frame, inner = window.frameGeometry(), window.geometry()
    extra_w, extra_h = frame.width() - inner.width(), frame.height() - inner.height()
    width = min(window.width(), area.width() - extra_w)
    height = min(window.height(), area.height() - extra_h)
    if (width, height) != (window.width(), window.height()):
        window.resize(width, height)
    frame = window.frameGeometry()
    x = min(max(frame.x(), area.x()), area.x() + area.width() - frame.width())
    y = min(max(frame.y(), area.y()), area.y() + area.height() - frame.height())
    if (x, y) != (frame.x(), frame.y()):
        window.move(max(x, area.x()), max(y, area.y()))


def exceeds_screen(window: QWidget) -> bool:
    """Whether ``window``'s frame reaches past its screen's available area."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    return screen is not None and not screen.availableGeometry().contains(window.frameGeometry())
