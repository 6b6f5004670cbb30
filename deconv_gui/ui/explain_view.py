"""The hover explanation: a small panel over the canvas, next to the cursor, saying which proposals scored the
top classes at that pixel (from :func:`deconv_gui.inference.explain.explain_pixel`)."""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLabel, QWidget

from deconv_gui.core.winners import BASE_RGB, WINNER_BASE
from deconv_gui.inference.explain import PixelExplanation, source_name

CURSOR_GAP = 18  # screen pixels between the cursor and the panel


def _hex(rgb: object) -> str:
    r, g, b = (int(v) for v in rgb)  # type: ignore[attr-defined]
    return f"#{r:02x}{g:02x}{b:02x}"


def _swatch(rgb: object) -> str:
    return f"<span style='color:{_hex(rgb)}'>■</span>"


def source_swatch(code: int, proposal_colours: np.ndarray) -> str:
    """A coloured square as on the winner layer (proposal colour, base grey) and the source's name."""
    if code >= 0 and code < len(proposal_colours):
        return f"{_swatch(proposal_colours[code])} {source_name(code)}"
    if code == WINNER_BASE:
        return f"{_swatch(BASE_RGB)} base"
    return source_name(code)


def explanation_html(e: PixelExplanation, palette: np.ndarray, proposal_colours: np.ndarray) -> str:
    """Rich text for the panel: the pixel, its class and winner, then one row per top class — final probability,
    DeconvNet's aggregated raw score and the best proposals' raw scores there (the winner's in bold)."""
    head = e.classes[0]
    won = "whole-image model" if e.whole_image else source_swatch(e.winner, proposal_colours)
    lines = [f"<b>({e.x}, {e.y})</b> {_swatch(palette[head.class_id])} <b>{html.escape(head.class_name)}</b>"
             f" — won by <b>{won}</b> · {e.covering} box{'es' if e.covering != 1 else ''} here",
             "<table cellspacing='0' cellpadding='1'>"
             "<tr><td></td><td align='right'>p</td><td align='right'>&nbsp;max</td><td>&nbsp;top proposals</td></tr>"]
    for c in e.classes:
        cells = []
        for k in c.contributions:
            text = f"{source_name(k.source)} {k.score:.2f}"
            cells.append(f"<b>{text}</b>" if k.source == c.winner else text)
        if c.base_score is not None:
            text = f"base {c.base_score:.2f}"
            cells.append(f"<b>{text}</b>" if c.winner == WINNER_BASE else text)
        colour = palette[c.class_id] if c.class_id < len(palette) else (200, 200, 200)
        lines.append(f"<tr><td>{_swatch(colour)} {html.escape(c.class_name)}</td>"
                     f"<td align='right'>&nbsp;{c.probability:.2f}</td><td align='right'>&nbsp;{c.aggregated:.2f}</td>"
                     f"<td>&nbsp;{' · '.join(cells) or '—'}</td></tr>")
    lines.append("</table>")
    return "".join(lines)


class ExplainOverlay(QLabel):
    """A translucent panel on the canvas's viewport, placed beside a point and kept inside the viewport; it never
    takes the mouse (hover and clicks go on to the canvas)."""

    def __init__(self, viewport: QWidget) -> None:
        super().__init__(viewport)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setStyleSheet("QLabel { background: rgba(24, 24, 24, 220); color: #f0f0f0; padding: 5px;"
                           " border: 1px solid rgba(255, 255, 255, 60); border-radius: 4px; }")
        self.hide()

    def show_at(self, text: str, point: QPoint) -> None:
        """Show ``text`` below-right of ``point`` (viewport pixels), flipped left/up where it would not fit."""
        self.setText(text)
        self.adjustSize()
        area = self.parentWidget().rect()
        x, y = point.x() + CURSOR_GAP, point.y() + CURSOR_GAP
        if x + self.width() > area.right():
            x = point.x() - CURSOR_GAP - self.width()
        if y + self.height() > area.bottom():
            y = point.y() - CURSOR_GAP - self.height()
        self.move(max(0, x), max(0, y))
        self.show()
        self.raise_()
