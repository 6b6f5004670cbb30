"""Segmentation metrics from a confusion matrix (FCN ``score.py`` convention).

Only pixels whose ground truth lies in ``[0, C)`` are counted; void (255) and any other out-of-range target
label are dropped — they are never false positives. Predictions must lie in ``[0, C)`` (a network's argmax
always does); anything else is a programming error and raises ``ValueError``.

Per class ``c``: ``IoU_c = TP / (TP + FP + FN)``; a class absent from both ground truth and prediction has
IoU ``nan`` and is left out of the mean (nan-mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class ConfusionMatrix:
    """Accumulates a ``(C, C) int64`` matrix ``mat``: rows = ground truth, columns = prediction."""

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be ≥ 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.mat = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, target: np.ndarray, pred: np.ndarray) -> None:
        """Add one pair of label maps (any equal shape, integer dtype) to the matrix.

        ``target`` values outside ``[0, C)`` (e.g. 255 void) are ignored. ``pred`` values at counted pixels
        must lie in ``[0, C)``, otherwise ``ValueError``.
        """
        target = np.asarray(target)
        pred = np.asarray(pred)
        if target.shape != pred.shape:
            raise ValueError(f"target shape {target.shape} != prediction shape {pred.shape}")
        c = self.num_classes
        t = target.ravel().astype(np.int64, copy=False)
        p = pred.ravel().astype(np.int64, copy=False)
        keep = (t >= 0) & (t < c)
        t = t[keep]
        p = p[keep]
        if p.size and (p.min() < 0 or p.max() >= c):
            bad = int(p[(p < 0) | (p >= c)][0])
            raise ValueError(f"prediction holds label {bad}, outside [0, {c})")
        self.mat += np.bincount(t * c + p, minlength=c * c).reshape(c, c)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add ``other``'s counts (same number of classes) into this matrix."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes}-class matrix into {self.num_classes}-class one")
        self.mat += other.mat

    def reset(self) -> None:
        """Zero all counts."""
        self.mat[...] = 0

    def iou(self) -> np.ndarray:
        """``(C,) float64`` per-class IoU; ``nan`` for classes absent from both ground truth and prediction."""
        tp = np.diag(self.mat).astype(np.float64)
        union = self.mat.sum(axis=0) + self.mat.sum(axis=1) - np.diag(self.mat)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def class_accuracy(self) -> np.ndarray:
        """``(C,) float64`` recall per class (TP / ground-truth pixels); ``nan`` where a class has no pixels."""
        gt = self.mat.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gt > 0, np.diag(self.mat) / np.maximum(gt, 1), np.nan)

    def mean_iou(self) -> float:
        """nan-mean of :meth:`iou` (``nan`` when nothing was counted)."""
        return _nanmean(self.iou())

    def pixel_accuracy(self) -> float:
        """Correct pixels / counted pixels (``nan`` when nothing was counted)."""
        total = int(self.mat.sum())
        return float(np.trace(self.mat) / total) if total else math.nan

    def mean_class_accuracy(self) -> float:
        """nan-mean over classes present in the ground truth of per-class recall."""
        return _nanmean(self.class_accuracy())

    def table(self, class_names: Sequence[str]) -> str:
        """Plain-text per-class table (IoU and accuracy in %), then mIoU, pixel and mean class accuracy."""
        if len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for a {self.num_classes}-class matrix")
        width = max([len("mean class acc"), *(len(n) for n in class_names)])
        lines = [f"{'class':<{width}}  {'IoU':>6}  {'acc':>6}", "-" * (width + 16)]
        for name, iou, acc in zip(class_names, self.iou(), self.class_accuracy(), strict=True):
            lines.append(f"{name:<{width}}  {_pct(iou)}  {_pct(acc)}")
        lines.append("-" * (width + 16))
        lines.append(f"{'mIoU':<{width}}  {_pct(self.mean_iou())}")
        lines.append(f"{'pixel acc':<{width}}  {_pct(self.pixel_accuracy())}")
        lines.append(f"{'mean class acc':<{width}}  {_pct(self.mean_class_accuracy())}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, pixels={int(self.mat.sum())})"


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def _pct(value: float) -> str:
    return f"{'n/a':>6}" if math.isnan(value) else f"{100.0 * value:6.2f}"
