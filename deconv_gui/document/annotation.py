"""Hand corrections of a predicted label map: an edit layer over the prediction, its tools and undo/redo, Qt-free.

The edit layer is two full-size arrays: ``label`` ``(H, W) uint8`` (the class painted, 255 = void) and
``edited`` ``(H, W) bool`` (painted at all). The map the app shows and exports is
``where(edited, label, prediction)`` (:meth:`AnnotationLayer.composite`): re-running the model replaces the
prediction underneath and never touches the edits; the eraser removes edits so the prediction shows again.

Tools are pure functions on numpy arrays that return the region they touch as ``(rect, mask)``: ``rect`` is
``(x0, y0, x1, y1)`` image pixels (exclusive) and ``mask`` a ``(y1 - y0, x1 - x0) bool`` array over it.
Coordinates are image pixels as floats: pixel ``(x, y)`` covers ``[x, x+1) × [y, y+1)`` and its centre is
``(x + 0.5, y + 0.5)``; a tool covers the pixels whose centres it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from deconv_gui.core.palette import VOID
from deconv_gui.document.edit_history import EditHistory, EditStep, Rect, make_patch, union_rect

Point = tuple[float, float]
Region = tuple[Rect, np.ndarray]
"""``(rect, mask)``: a rectangle and the ``(h, w) bool`` pixels of it a tool covers."""

TOOLS: tuple[str, ...] = ("pan", "brush", "eraser", "fill", "polygon", "void", "box_mask")
"""``pan``: drag pans, click selects; ``brush``/``eraser``/``void``: round strokes; ``fill``: 4-connected flood fill;
``polygon``: click vertices, close to fill; ``box_mask``: draw a box, the model segments it, the mask is accepted."""
PAINT_TOOLS: tuple[str, ...] = ("brush", "eraser", "void", "fill", "polygon")
MIN_RADIUS, MAX_RADIUS = 1, 500


@dataclass
class ToolState:
    """The active tool, brush radius (image pixels) and class (``0..254``; void is the ``void`` tool)."""

    tool: str = "pan"
    radius: int = 8
    class_id: int = 1

    def paint_value(self) -> int | None:
        """The label value the tool writes: the class, 255 for ``void``, None (erase) for ``eraser``."""
        if self.tool == "eraser":
            return None
        return VOID if self.tool == "void" else self.class_id

    def set_radius(self, radius: float) -> int:
        self.radius = int(min(MAX_RADIUS, max(MIN_RADIUS, round(radius))))
        return self.radius

    def bump_radius(self, steps: int) -> int:
        """``]`` (+1) / ``[`` (-1): about 20 % per step, at least one pixel."""
        r = self.radius
        new = r * 1.2 ** steps
        if round(new) == r:
            new = r + (1 if steps > 0 else -1)
        return self.set_radius(new)


def _clip_rect(x0: float, y0: float, x1: float, y1: float, hw: tuple[int, int]) -> Rect | None:
    h, w = hw
    r = (max(0, int(np.floor(x0))), max(0, int(np.floor(y0))), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1))))
    return r if r[0] < r[2] and r[1] < r[3] else None


def segment_footprint(p: Point, q: Point, radius: float, hw: tuple[int, int]) -> Region | None:
    """Pixels whose centres lie within ``radius`` of the segment ``p``–``q`` (a disc when ``p == q``).

    Consecutive mouse positions of a stroke are joined by such segments, so a fast stroke leaves no gaps.
    ``radius`` below 0.5 counts as 0.5 (one pixel). None when the footprint misses the image.
    """
    r = max(float(radius), 0.5)
    (px, py), (qx, qy) = (float(p[0]), float(p[1])), (float(q[0]), float(q[1]))
    # pixel x is in reach when its centre x + 0.5 lies in [min - r, max + r]
    rect = _clip_rect(np.ceil(min(px, qx) - r - 0.5), np.ceil(min(py, qy) - r - 0.5),
                      np.floor(max(px, qx) + r - 0.5) + 1, np.floor(max(py, qy) + r - 0.5) + 1, hw)
    if rect is None:
        return None
    x0, y0, x1, y1 = rect
    cx = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5 - px
    cy = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5 - py
    dx, dy = qx - px, qy - py
    length2 = dx * dx + dy * dy
    t = np.clip((cx * dx + cy * dy) / length2, 0.0, 1.0) if length2 > 0 else np.zeros((1, 1))
    mask = (cx - t * dx) ** 2 + (cy - t * dy) ** 2 <= r * r
    return (rect, mask) if mask.any() else None


def stroke_footprint(points: Sequence[Point], radius: float, hw: tuple[int, int]) -> Region | None:
    """The union of :func:`segment_footprint` along a polyline (one point: a disc)."""
    pts = list(points)
    pieces = [segment_footprint(a, b, radius, hw) for a, b in zip(pts, pts[1:] or pts, strict=False)]
    pieces = [p for p in pieces if p is not None]
    if not pieces:
        return None
    rect: Rect | None = None
    for r, _ in pieces:
        rect = union_rect(rect, r)
    assert rect is not None
    mask = np.zeros((rect[3] - rect[1], rect[2] - rect[0]), bool)
    for (x0, y0, x1, y1), m in pieces:
        mask[y0 - rect[1]: y1 - rect[1], x0 - rect[0]: x1 - rect[0]] |= m
    return rect, mask


def flood_region(label: np.ndarray, x: float, y: float) -> Region | None:
    """The 4-connected region of pixels equal to ``label[y, x]`` around pixel ``(x, y)`` (``label`` ``(H, W)``
    uint8, the displayed map). None outside the image."""
    h, w = label.shape
    xi, yi = int(np.floor(x)), int(np.floor(y))
    if not (0 <= xi < w and 0 <= yi < h):
        return None
    mask = np.zeros((h + 2, w + 2), np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    _, _, mask, (rx, ry, rw, rh) = cv2.floodFill(np.ascontiguousarray(label, np.uint8), mask, (xi, yi), 0, 0, 0,
                                                  flags)
    rect = (rx, ry, rx + rw, ry + rh)
    return rect, mask[ry + 1: ry + 1 + rh, rx + 1: rx + 1 + rw].astype(bool)


def polygon_region(points: Sequence[Point], hw: tuple[int, int]) -> Region | None:
    """Pixels whose centres lie inside the polygon ``points`` (at least 3 vertices; edges count as inside)."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) < 3:
        return None
    rect = _clip_rect(pts[:, 0].min() - 1, pts[:, 1].min() - 1, pts[:, 0].max() + 1, pts[:, 1].max() + 1, hw)
    if rect is None:
        return None
    x0, y0, x1, y1 = rect
    a, b = pts, np.roll(pts, -1, axis=0)  # edges a[k] → b[k]
    yc = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5  # scanlines through pixel centres
    crosses = (a[:, 1] <= yc) != (b[:, 1] <= yc)  # (rows, edges): half-open, so a vertex counts once
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = a[:, 0] + (yc - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    xs = np.sort(np.where(crosses, xs, np.inf), axis=1)  # crossings per row, sorted (even count)
    width = x1 - x0
    diff = np.zeros((y1 - y0, width + 1), np.int32)
    for k in range(0, xs.shape[1] - 1, 2):  # fill pixel centres between crossing pairs (even-odd rule)
        left, right = xs[:, k], xs[:, k + 1]
        ok = np.isfinite(right)
        start = np.clip(np.ceil(left[ok] - 0.5) - x0, 0, width).astype(np.int64)
        stop = np.clip(np.floor(right[ok] - 0.5) - x0 + 1, 0, width).astype(np.int64)
        rows = np.flatnonzero(ok)
        keep = stop > start
        np.add.at(diff, (rows[keep], start[keep]), 1)
        np.add.at(diff, (rows[keep], stop[keep]), -1)
    mask = np.cumsum(diff[:, :width], axis=1) > 0
    return (rect, mask) if mask.any() else None


def mask_region(mask: np.ndarray, offset: tuple[int, int] = (0, 0), hw: tuple[int, int] | None = None) -> Region | None:
    """A ``(h, w) bool`` mask placed at image pixel ``offset`` (x, y), cropped to its pixels (and the image)."""
    m = np.asarray(mask, bool)
    ox, oy = int(offset[0]), int(offset[1])
    if hw is not None:  # crop to the image
        h, w = hw
        cx0, cy0 = max(0, -ox), max(0, -oy)
        m = m[cy0: max(cy0, h - oy), cx0: max(cx0, w - ox)]
        ox, oy = ox + cx0, oy + cy0
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if not len(rows):
        return None
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return (ox + c0, oy + r0, ox + c1, oy + r1), m[r0:r1, c0:c1]


class AnnotationLayer:
    """The edits of one image and their history. ``label``: ``(H, W) uint8``; ``edited``: ``(H, W) bool``.

    Every change goes through :meth:`apply` (inside a step): it records the diff of the touched rectangle and
    bumps :attr:`revision` (the autosave compares revisions). Methods return the rectangle they changed (to
    repaint just that), or None when nothing changed.
    """

    def __init__(self, hw: tuple[int, int], history: EditHistory | None = None) -> None:
        self.label = np.zeros(hw, np.uint8)
        self.edited = np.zeros(hw, bool)
        self.history = history if history is not None else EditHistory()
        self.revision = 0
        self.saved_revision = 0
        """The :attr:`revision` last handed to the autosave (a fresh or just-loaded layer needs no save)."""
        self._step: EditStep | None = None
        self._last: Point | None = None
        self._stroke: tuple[float, int | None] = (1.0, None)

    @classmethod
    def from_arrays(cls, label: np.ndarray, edited: np.ndarray) -> AnnotationLayer:
        """A layer holding saved edits (no history). Unedited pixels' labels are reset to 0."""
        layer = cls(label.shape)
        layer.edited[:] = np.asarray(edited, bool)
        layer.label[layer.edited] = np.asarray(label, np.uint8)[layer.edited]
        return layer

    @property
    def hw(self) -> tuple[int, int]:
        return self.label.shape  # type: ignore[return-value]

    @property
    def has_edits(self) -> bool:
        return bool(self.edited.any())

    def nbytes(self) -> int:
        return self.label.nbytes + self.edited.nbytes + self.history.nbytes

    def composite(self, prediction: np.ndarray | None) -> np.ndarray:
        """``(H, W) uint8``: the edits where edited, else ``prediction`` (void where there is none)."""
        if prediction is None:
            return np.where(self.edited, self.label, np.uint8(VOID))
        return np.where(self.edited, self.label, np.asarray(prediction, np.uint8))

    # --- the one way in -----------------------------------------------------------------------------------------

    def apply(self, region: Region | None, value: int | None) -> Rect | None:
        """Paint ``region``'s pixels with ``value`` (``0..255``), or erase them (None); recorded in the current
        step (a step of its own when none is open)."""
        if region is None:
            return None
        own = self._step is None
        if own:
            self._step = EditStep("edit")
        (x0, y0, x1, y1), mask = region
        win = (slice(y0, y1), slice(x0, x1))
        label_before, edited_before = self.label[win].copy(), self.edited[win].copy()
        if value is None:
            self.edited[win][mask] = False
            self.label[win][mask] = 0
        else:
            self.label[win][mask] = int(value)
            self.edited[win][mask] = True
        patch = make_patch(x0, y0, label_before, edited_before, self.label[win], self.edited[win])
        assert self._step is not None
        if patch is not None:
            self._step.patches.append(patch)
            self.revision += 1
        if own:
            self._commit()
        return patch.rect if patch is not None else None

    def _begin(self, name: str) -> None:
        self._commit()
        self._step = EditStep(name)

    def _commit(self) -> Rect | None:
        step, self._step = self._step, None
        if step is None:
            return None
        self.history.push(step)
        return step.rect

    # --- tools ----------------------------------------------------------------------------------------------------

    def begin_stroke(self, name: str, point: Point, radius: float, value: int | None) -> Rect | None:
        """Start a brush (``value`` a class or 255) or eraser (``value`` None) stroke with a dab at ``point``."""
        self._begin(name)
        self._last, self._stroke = point, (float(radius), value)
        return self.apply(segment_footprint(point, point, radius, self.hw), value)

    def continue_stroke(self, point: Point) -> Rect | None:
        """Paint the segment from the previous point to ``point`` (no gaps however fast the mouse moves)."""
        if self._step is None or self._last is None:
            return None
        radius, value = self._stroke
        last, self._last = self._last, point
        return self.apply(segment_footprint(last, point, radius, self.hw), value)

    def end_stroke(self) -> Rect | None:
        """Close the stroke as one undo step; the rectangle it touched."""
        self._last = None
        return self._commit()

    @property
    def stroke_open(self) -> bool:
        return self._step is not None

    def stroke(self, name: str, points: Sequence[Point], radius: float, value: int | None) -> Rect | None:
        """A whole stroke at once (tests, scripts)."""
        pts = list(points)
        self.begin_stroke(name, pts[0], radius, value)
        for p in pts[1:]:
            self.continue_stroke(p)
        return self.end_stroke()

    def fill(self, x: float, y: float, value: int | None, prediction: np.ndarray | None) -> Rect | None:
        """Flood-fill the 4-connected region of equal *displayed* label around ``(x, y)``."""
        self._begin("fill")
        self.apply(flood_region(self.composite(prediction), x, y), value)
        return self._commit()

    def polygon(self, points: Sequence[Point], value: int | None) -> Rect | None:
        self._begin("polygon")
        self.apply(polygon_region(points, self.hw), value)
        return self._commit()

    def paint_mask(self, mask: np.ndarray, offset: tuple[int, int], value: int | None,
                   name: str = "instance") -> Rect | None:
        """Paint a ``(h, w) bool`` mask placed at ``offset`` (x, y) — "accept instance"."""
        self._begin(name)
        self.apply(mask_region(mask, offset, self.hw), value)
        return self._commit()

    def undo(self) -> Rect | None:
        self._commit()
        rect = self.history.undo(self.label, self.edited)
        self.revision += rect is not None
        return rect

    def redo(self) -> Rect | None:
        self._commit()
        rect = self.history.redo(self.label, self.edited)
        self.revision += rect is not None
        return rect
