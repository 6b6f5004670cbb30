"""Which proposal won each pixel of the max-aggregated map (the inspector's "winner" layer), pure numpy.

DeconvNet combines the proposals' pasted raw score maps by a per-pixel, per-class maximum (paper Eq. 1; see
:mod:`deconv_gui.core.aggregation`), starting from 0 or from a whole-image "base" pass. For a pixel ``(x, y)``
and a class ``c`` the *winner* is the source whose score for ``c`` there is that maximum:

- a proposal index ``i >= 0`` — the included proposal whose pasted score for ``c`` is the largest and beats the
  starting value (ties go to the lowest index, the first one aggregation met);
- :data:`WINNER_BASE` (-1) — the whole-image base pass, when there is one and no proposal beats it (it wins ties:
  it was there first);
- :data:`WINNER_NONE` (-2) — aggregation started from 0 and no included proposal has a positive score for ``c``
  there (no box covers the pixel, or all of them score ``c`` below 0), so the 0 floor "won".

The class ``c`` per pixel is given by the caller (the app passes the shown label map, which may come from an
ensemble or a CRF: the winner then says which DeconvNet source scored the *shown* class highest). With sum
aggregation (Eq. 2) there is no single winner; the same rule names the largest single term of the sum.

The pasted scores are computed with exactly the arithmetic of :func:`~deconv_gui.core.aggregation.resize_to_box`,
so in max mode the winning score equals the aggregated score bit for bit.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np

from deconv_gui.core.aggregation import bilinear_taps, box_taps

WINNER_BASE = -1
"""Winner code: the whole-image base pass (also every pixel of a whole-image model's result)."""
WINNER_NONE = -2
"""Winner code: nothing beat aggregation's 0 floor (no included proposal scores the class above 0 there)."""
GOLDEN_RATIO = 0.618033988749895
BASE_RGB = (128, 128, 128)


def _gather(scores: np.ndarray, label: np.ndarray) -> np.ndarray:
    """``scores`` ``(C, h, w)`` and ``label`` ``(h, w)`` class ids → ``(h, w)`` float32: each pixel's score for
    its class (ids ≥ C read class C-1, which never happens for a label map of these scores)."""
    idx = np.minimum(label.astype(np.intp), scores.shape[0] - 1)
    return np.take_along_axis(scores, idx[None], axis=0)[0].astype(np.float32, copy=False)


def winner_map(
    instance_scores: np.ndarray | Sequence[np.ndarray],
    boxes: np.ndarray,
    image_hw: tuple[int, int],
    label: np.ndarray,
    *,
    include: np.ndarray | None = None,
    base_scores: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The winner of every pixel for its class in ``label`` (see the module docstring for the codes).

    ``instance_scores``: ``(N, C, S, S)`` raw scores (any float dtype); ``boxes``: ``(N, 4)`` integer crop windows
    ``x0, y0, x1, y1`` (exclusive, may reach past the image); ``label``: ``(H, W)`` integer class per pixel;
    ``include``: optional ``(N,)`` bool; ``base_scores``: optional ``(C, H, W)`` whole-image raw scores.
    Returns ``(winner (H, W) int16, best (H, W) float32)``: the winning source and its score (0 where
    :data:`WINNER_NONE`).

    One pass over the included proposals' visible windows, each read only in each pixel's class
    (:func:`paste_labelled`): 480×360 with 50 proposals takes ~40-60 ms on one loaded CPU core, about a third
    of the aggregation it explains (``bench/winners.py``).
    """
    h, w = image_hw
    n = len(boxes)
    if n > np.iinfo(np.int16).max:
        raise ValueError(f"{n} proposals: the winner map holds at most {np.iinfo(np.int16).max}")
    label = np.asarray(label)
    if label.shape != (h, w):
        raise ValueError(f"label map {label.shape} does not match the image {image_hw}")
    if base_scores is not None:
        best = _gather(np.asarray(base_scores), label).copy()
        winner = np.full((h, w), WINNER_BASE, np.int16)
    else:
        best = np.zeros((h, w), np.float32)
        winner = np.full((h, w), WINNER_NONE, np.int16)
    for i in range(n):
        if include is not None and not include[i]:
            continue
        pasted = paste_labelled(np.asarray(instance_scores[i]), boxes[i], image_hw, label)
        if pasted is None:
            continue
        values, (rows, cols) = pasted
        region_best, region_winner = best[rows, cols], winner[rows, cols]  # views into best / winner
        better = values > region_best
        np.copyto(region_best, values, where=better)
        np.copyto(region_winner, np.int16(i), where=better)
    return winner, best


def paste_labelled(
    scores: np.ndarray, box: Sequence[int], image_hw: tuple[int, int], label: np.ndarray
) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    """One proposal's pasted score for each pixel's own class: ``scores`` ``(C, S_h, S_w)`` resized to ``box``
    and read, at every visible pixel, in the class ``label`` ``(H, W)`` gives there. Returns ``((h_vis, w_vis)
    float32, (rows, cols))`` — bit-identical to ``resize_to_box(scores, box, image_hw)`` gathered by the label —
    or None when the box lies outside the image.

    Reads the four bilinear taps of the one class per pixel instead of resizing all C maps: ~20 array operations
    per visible pixel whatever C is (3-5× faster than resizing the classes present).
    """
    num_classes, s_h, s_w = scores.shape
    taps = box_taps(box, image_hw, s_h, s_w)
    if taps is None:
        return None
    (rows, cols), (y_lo, y_hi, fy), (x_lo, x_hi, fx) = taps
    flat = scores.reshape(-1)
    lab = np.minimum(label[rows, cols], num_classes - 1).astype(np.int32)
    top_left = lab * np.int32(s_h * s_w) + (y_lo * s_w).astype(np.int32)[:, None] + x_lo.astype(np.int32)[None, :]
    bottom_left = top_left + ((y_hi - y_lo) * s_w).astype(np.int32)[:, None]
    dx = (x_hi - x_lo).astype(np.int32)[None, :]
    # The operations of resize_to_box, in its order (rows first, then columns), for the same float32 rounding.
    tl, bl = flat.take(top_left).astype(np.float32), flat.take(bottom_left).astype(np.float32)
    tr, br = flat.take(top_left + dx).astype(np.float32), flat.take(bottom_left + dx).astype(np.float32)
    fy_col = fy[:, None]
    left = tl + (bl - tl) * fy_col
    right = tr + (br - tr) * fy_col
    return left + (right - left) * fx[None, :], (rows, cols)


def pixels_won(winner: np.ndarray, num_proposals: int) -> np.ndarray:
    """``(N,) int64``: how many pixels of ``winner`` (``(H, W)``, codes as above) each proposal won."""
    won = winner[winner >= 0]
    return np.bincount(won.ravel(), minlength=num_proposals)[:num_proposals].astype(np.int64)


def sample_box(scores: np.ndarray, box: Sequence[int], image_hw: tuple[int, int], x: int, y: int) -> np.ndarray | None:
    """``scores`` ``(C, S_h, S_w)`` pasted into ``box`` and read at image pixel column ``x``, row ``y``:
    ``(C,) float32``, bit-identical to ``resize_to_box(scores, box, image_hw)`` at that pixel; None when the
    pixel is outside the box's visible part."""
    h, w = image_hw
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x < w and 0 <= y < h and x0 <= x < x1 and y0 <= y < y1):
        return None
    _, s_h, s_w = scores.shape
    y_lo, y_hi, fy = bilinear_taps(y1 - y0, s_h, y - y0, y - y0 + 1)
    x_lo, x_hi, fx = bilinear_taps(x1 - x0, s_w, x - x0, x - x0 + 1)
    # The same operations, in the same order, as resize_to_box (so the same float32 rounding).
    top = scores[:, y_lo, :].astype(np.float32)
    rows = top + (scores[:, y_hi, :].astype(np.float32) - top) * fy[None, :, None]
    left = rows[:, :, x_lo]
    patch = left + (rows[:, :, x_hi] - left) * fx[None, None, :]
    return patch[:, 0, 0]


def pixel_sources(
    instance_scores: np.ndarray | Sequence[np.ndarray],
    boxes: np.ndarray,
    image_hw: tuple[int, int],
    x: int,
    y: int,
    *,
    include: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The included proposals whose box covers pixel ``(x, y)`` and their pasted scores there:
    ``(indices (M,) int64, scores (M, C) float32)``, in proposal order."""
    b = np.asarray(boxes, np.int64).reshape(-1, 4)
    h, w = image_hw
    covers = (b[:, 0] <= x) & (x < b[:, 2]) & (b[:, 1] <= y) & (y < b[:, 3]) & (0 <= x < w) & (0 <= y < h)
    if include is not None:
        covers &= np.asarray(include, bool)
    indices = np.flatnonzero(covers).astype(np.int64)
    if isinstance(instance_scores, np.ndarray):  # the app's (N, C, S, S) cache: all proposals in one gather
        return indices, _sample_many(instance_scores, b[indices], x, y, indices)
    rows = [sample_box(np.asarray(instance_scores[i]), b[i], image_hw, x, y) for i in indices.tolist()]
    num_classes = np.asarray(instance_scores[0]).shape[0] if len(b) else 0
    return indices, (np.stack(rows) if rows else np.zeros((0, num_classes), np.float32))  # type: ignore[arg-type]


def _taps_at(out_len: np.ndarray, in_len: int, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~deconv_gui.core.aggregation.bilinear_taps` of output sample ``j[m]`` of a resize to ``out_len[m]``,
    for many resizes at once (the same float64 formula, so the same taps)."""
    src = np.clip((j.astype(np.float64) + 0.5) * (in_len / out_len.astype(np.float64)) - 0.5, 0.0, in_len - 1)
    lo = np.floor(src).astype(np.int64)
    return lo, np.minimum(lo + 1, in_len - 1), (src - lo).astype(np.float32)


def _sample_many(instance_scores: np.ndarray, boxes: np.ndarray, x: int, y: int, indices: np.ndarray) -> np.ndarray:
    """:func:`sample_box` at ``(x, y)`` for the proposals ``indices`` (their ``boxes`` ``(M, 4)`` cover the pixel):
    ``(M, C) float32``, bit-identical to it — ~20 array operations for any M instead of M small resizes."""
    _, num_classes, s_h, s_w = instance_scores.shape
    if not len(indices):
        return np.zeros((0, num_classes), np.float32)
    y_lo, y_hi, fy = _taps_at(boxes[:, 3] - boxes[:, 1], s_h, y - boxes[:, 1])
    x_lo, x_hi, fx = _taps_at(boxes[:, 2] - boxes[:, 0], s_w, x - boxes[:, 0])
    m, c = indices[:, None], np.arange(num_classes)[None, :]
    tl = instance_scores[m, c, y_lo[:, None], x_lo[:, None]].astype(np.float32)
    bl = instance_scores[m, c, y_hi[:, None], x_lo[:, None]].astype(np.float32)
    tr = instance_scores[m, c, y_lo[:, None], x_hi[:, None]].astype(np.float32)
    br = instance_scores[m, c, y_hi[:, None], x_hi[:, None]].astype(np.float32)
    left = tl + (bl - tl) * fy[:, None]  # resize_to_box's order: rows first, then columns
    right = tr + (br - tr) * fy[:, None]
    return left + (right - left) * fx[:, None]


def pixel_winner(
    indices: np.ndarray, scores: np.ndarray, class_id: int, base_score: float | None
) -> tuple[int, float]:
    """The winner for ``class_id`` at one pixel, from :func:`pixel_sources`' ``indices``/``scores`` and the base
    pass's score there (None: aggregation started from 0): ``(winner code, its score)`` — the rule of
    :func:`winner_map`."""
    best = np.float32(base_score) if base_score is not None else np.float32(0.0)
    code = WINNER_BASE if base_score is not None else WINNER_NONE
    for i, value in zip(indices.tolist(), scores[:, class_id], strict=True):
        if value > best:
            best, code = value, int(i)
    return code, float(best)


def winner_colours(num_proposals: int) -> np.ndarray:
    """``(N, 3) uint8``: a distinct colour per proposal index — hues stepped by the golden ratio, so neighbouring
    indices (and any few of them) differ clearly."""
    out = np.zeros((num_proposals, 3), np.uint8)
    for i in range(num_proposals):
        hue = (0.1 + i * GOLDEN_RATIO) % 1.0
        value = 0.95 if i % 2 == 0 else 0.78
        out[i] = [round(255 * v) for v in colorsys.hsv_to_rgb(hue, 0.75, value)]
    return out


def winner_rgba(winner: np.ndarray, num_proposals: int, alpha: int = 255) -> np.ndarray:
    """``(H, W)`` winner codes → ``(H, W, 4) uint8`` picture: a proposal's colour (:func:`winner_colours`), the
    base in neutral grey, :data:`WINNER_NONE` transparent."""
    lut = np.zeros((num_proposals + 2, 4), np.uint8)
    lut[WINNER_BASE + 2] = (*BASE_RGB, alpha)
    lut[2:, :3] = winner_colours(num_proposals)
    lut[2:, 3] = alpha
    return lut[winner.astype(np.intp) + 2]
