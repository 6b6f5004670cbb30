"""Live training curves (pyqtgraph): loss, and train pixel accuracy with val mIoU, against the iteration."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QHBoxLayout, QWidget

from deconv_gui.document.training_run import RunSummary

_LOSS_COLOUR = (230, 120, 30)
_ACC_COLOUR = (40, 130, 220)
_MIOU_COLOUR = (30, 170, 90)
_SMOOTH_COLOUR = (200, 60, 20)


def _legend(*entries: tuple[str, tuple[int, int, int]]) -> str:
    """A plot title naming each curve in its colour (HTML)."""
    return " &nbsp; ".join(f"<span style='color: rgb{colour}'>&#9644; {name}</span>" for name, colour in entries)


def moving_average(values: np.ndarray, window: int | None = None) -> np.ndarray:
    """Trailing mean over ``window`` points (default: 1/25 of the length, at least 1); NaNs count as gaps.

    ``values`` (N,) float64 → (N,) float64; the first points average over what exists so far.
    """
    n = len(values)
    if n == 0:
        return values.copy()
    w = max(1, n // 25) if window is None else max(1, window)
    finite = np.isfinite(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    lo = np.maximum(np.arange(1, n + 1) - w, 0)
    hi = np.arange(1, n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums[hi] - sums[lo]) / (counts[hi] - counts[lo])


class TrainingCurves(QWidget):
    """Two plots side by side. ``loss_item``, ``pixel_acc_item`` and ``miou_item`` are the PlotDataItems
    (``item.getData()`` → (x, y) arrays) that :meth:`show_summary` fills from a :class:`RunSummary`.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        background = self.palette().color(QPalette.ColorRole.Base)
        foreground = self.palette().color(QPalette.ColorRole.Text)
        self.loss_plot = self._plot(background, foreground)
        self.acc_plot = self._plot(background, foreground)
        self.acc_plot.setYRange(0.0, 1.0, padding=0.02)
        # legends as coloured titles: a legend box inside the plot would hide the curves it explains
        self.loss_plot.setTitle(_legend(("train loss", _LOSS_COLOUR), ("moving average", _SMOOTH_COLOUR)),
                                size="10pt")
        self.acc_plot.setTitle(_legend(("train pixel acc", _ACC_COLOUR), ("val mIoU", _MIOU_COLOUR)), size="10pt")
        self.loss_item = self.loss_plot.plot(pen=pg.mkPen((*_LOSS_COLOUR, 140), width=1), name="train loss")
        self.loss_smooth_item = self.loss_plot.plot(pen=pg.mkPen(_SMOOTH_COLOUR, width=2), name="moving average")
        self.pixel_acc_item = self.acc_plot.plot(pen=pg.mkPen(_ACC_COLOUR, width=2), name="train pixel acc")
        self.miou_item = self.acc_plot.plot(pen=pg.mkPen(_MIOU_COLOUR, width=2), symbol="o", symbolSize=6,
                                            symbolBrush=_MIOU_COLOUR, symbolPen=None, name="val mIoU")
        for item in (self.loss_item, self.pixel_acc_item):
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.acc_plot)

    @staticmethod
    def _plot(background: object, foreground: object) -> pg.PlotWidget:
        plot = pg.PlotWidget(background=background)
        plot.setLabel("bottom", "iteration", color=foreground)
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.setMinimumSize(120, 110)  # two side by side fit a training dock under the canvas
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setTextPen(foreground)
        return plot

    def show_summary(self, summary: RunSummary) -> None:
        """Replace the curves' data with the summary's series."""
        x = np.asarray(summary.train_iterations, dtype=np.float64)
        loss = np.asarray(summary.loss, dtype=np.float64)
        self.loss_item.setData(x, loss, connect="finite")
        self.loss_smooth_item.setData(x, moving_average(loss), connect="finite")
        self.pixel_acc_item.setData(x, np.asarray(summary.pixel_acc, dtype=np.float64), connect="finite")
        self.miou_item.setData(np.asarray(summary.val_iterations, dtype=np.float64),
                               np.asarray(summary.val_miou, dtype=np.float64), connect="finite")

    def clear(self) -> None:
        self.show_summary(RunSummary())
