"""Explaining a :class:`SegmentationResult`'s map: who won each pixel, how many pixels each proposal won, and the
scores behind one pixel (the app's inspector: winner layer, hover explanation, Ctrl-click).

The winner is defined in :mod:`deconv_gui.core.winners`: per pixel, the source (an included proposal, the
whole-image base pass, or nothing) with the largest DeconvNet raw score *for the class the result shows there*
(``result.label``, which may come after an ensemble or a CRF). A whole-image model's result is won by
:data:`WINNER_BASE` everywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from deconv_gui.core.winners import (
    WINNER_BASE,
    WINNER_NONE,
    pixel_sources,
    pixel_winner,
    pixels_won,
    winner_map,
)
from deconv_gui.inference.result import SegmentationResult

__all__ = ["WINNER_BASE", "WINNER_NONE", "Winners", "compute_winners", "explain_pixel", "PixelExplanation",
           "ClassExplanation", "Contribution", "source_name"]


@dataclass(frozen=True)
class Winners:
    """The winner layer of one shown result: ``winner`` ``(H, W) int16`` codes, ``won`` ``(N,) int64`` pixels won
    per proposal, ``seconds`` the time it took. ``result`` is the result it explains (identity = cache key:
    every recombination makes a new result)."""

    result: SegmentationResult
    winner: np.ndarray
    won: np.ndarray
    seconds: float = 0.0


def compute_winners(result: SegmentationResult) -> Winners:
    """:func:`~deconv_gui.core.winners.winner_map` of ``result``'s included proposals for its shown labels."""
    t0 = time.perf_counter()
    n = result.num_proposals
    if result.mode != "instances" or result.instance_scores is None:
        winner = np.full(result.image_hw, WINNER_BASE, np.int16)
    else:
        winner, _ = winner_map(result.instance_scores, result.boxes, result.image_hw, result.label,
                               include=result.include, base_scores=result.base_scores)
    return Winners(result, winner, pixels_won(winner, n), time.perf_counter() - t0)


@dataclass(frozen=True)
class Contribution:
    """One source's raw score for a class at a pixel: ``source`` a proposal index (0-based) or
    :data:`WINNER_BASE`."""

    source: int
    score: float


@dataclass(frozen=True)
class ClassExplanation:
    """A class at a pixel: its final ``probability``, DeconvNet's ``aggregated`` raw score, its ``winner`` (code
    as in :mod:`deconv_gui.core.winners`), the best proposals' ``contributions`` (best first) and the base pass's
    score (None without one)."""

    class_id: int
    class_name: str
    probability: float
    aggregated: float
    winner: int
    contributions: tuple[Contribution, ...]
    base_score: float | None


@dataclass(frozen=True)
class PixelExplanation:
    """Why pixel ``(x, y)`` (column, row) shows class ``label``: the top classes there, best first.
    ``winner`` is the winner for the shown class; ``covering`` how many included proposals cover the pixel."""

    x: int
    y: int
    label: int
    winner: int
    covering: int
    classes: tuple[ClassExplanation, ...]
    whole_image: bool = False


def explain_pixel(result: SegmentationResult, x: int, y: int, *, top_classes: int = 3,
                  top_proposals: int = 3) -> PixelExplanation | None:
    """The ``top_classes`` most probable classes at pixel column ``x``, row ``y`` (the shown class always first),
    each with the ``top_proposals`` included proposals covering the pixel that score it highest; None outside
    the image. One gather over the covering proposals: ~0.2 ms for 50 or 500 proposals (``bench/winners.py``),
    cheap enough for every mouse move."""
    h, w = result.image_hw
    if not (0 <= x < w and 0 <= y < h):
        return None
    shown = int(result.label[y, x])
    probs = result.probabilities[:, y, x]
    order = [int(c) for c in np.argsort(-probs, kind="stable") if int(c) != shown]
    classes_ = [shown, *order][: max(1, top_classes)]
    whole = result.mode != "instances" or result.instance_scores is None
    if whole:
        indices, scores = np.zeros(0, np.int64), np.zeros((0, len(result.class_names)), np.float32)
    else:
        indices, scores = pixel_sources(result.instance_scores, result.boxes, result.image_hw, x, y,
                                        include=result.include)
    rows = []
    for c in classes_:
        base = float(result.base_scores[c, y, x]) if result.base_scores is not None and not whole else None
        if whole:
            code = WINNER_BASE
        else:
            code, _ = pixel_winner(indices, scores, c, base)
        best = np.argsort(-scores[:, c], kind="stable")[:top_proposals] if len(indices) else []
        rows.append(ClassExplanation(
            class_id=c,
            class_name=result.class_names[c] if c < len(result.class_names) else str(c),
            probability=float(probs[c]),
            aggregated=float(result.aggregated[c, y, x]),
            winner=code,
            contributions=tuple(Contribution(int(indices[k]), float(scores[k, c])) for k in best),
            base_score=base,
        ))
    return PixelExplanation(x, y, shown, rows[0].winner, int(len(indices)), tuple(rows), whole)


def source_name(code: int) -> str:
    """A winner code as people read it: "#3" (proposals are numbered from 1), "base", "none"."""
    if code >= 0:
        return f"#{code + 1}"
    return "whole-image base" if code == WINNER_BASE else "none (0 floor)"
