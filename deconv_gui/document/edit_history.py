"""Undo/redo of hand edits as diffs of the touched rectangles only (bounded memory on big photos), Qt-free.

An edit *step* (one brush stroke, one fill, one accepted instance…) is a list of :class:`Patch` es. A patch
holds the before/after values of the edit layer's two arrays (label ``uint8`` and edited ``bool``) over the
tight bounding box of the pixels that changed, so a 20-pixel brush dab on a 4000×3000 image costs a few kB,
not 24 MB. :class:`EditHistory` keeps at most ``max_steps`` steps and ``max_bytes`` bytes of patches; beyond
either, the oldest steps are dropped (they can no longer be undone).

Rectangles are ``(x0, y0, x1, y1)`` integer image pixels, exclusive at the right/bottom (as boxes elsewhere).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

Rect = tuple[int, int, int, int]
"""``x0, y0, x1, y1`` image pixels, exclusive."""

DEFAULT_MAX_STEPS = 200
DEFAULT_MAX_BYTES = 128 << 20


def union_rect(a: Rect | None, b: Rect | None) -> Rect | None:
    """The smallest rectangle holding ``a`` and ``b`` (either may be None)."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


@dataclass
class Patch:
    """Before/after values of one rectangle at ``(x0, y0)``: labels ``(h, w) uint8``, edited flags ``(h, w) bool``."""

    x0: int
    y0: int
    label_before: np.ndarray
    edited_before: np.ndarray
    label_after: np.ndarray
    edited_after: np.ndarray

    @property
    def rect(self) -> Rect:
        h, w = self.label_before.shape
        return self.x0, self.y0, self.x0 + w, self.y0 + h

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.label_before, self.edited_before, self.label_after, self.edited_after))

    def apply(self, label: np.ndarray, edited: np.ndarray, *, forward: bool) -> Rect:
        """Write the after (``forward``) or before values into the full-size arrays; returns the rectangle."""
        x0, y0, x1, y1 = self.rect
        label[y0:y1, x0:x1] = self.label_after if forward else self.label_before
        edited[y0:y1, x0:x1] = self.edited_after if forward else self.edited_before
        return self.rect


def make_patch(
    x0: int, y0: int, label_before: np.ndarray, edited_before: np.ndarray, label_after: np.ndarray,
    edited_after: np.ndarray,
) -> Patch | None:
    """A patch cropped to the pixels that changed between before and after (None when nothing changed)."""
    changed = (label_before != label_after) | (edited_before != edited_after)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if not len(rows):
        return None
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = (slice(r0, r1), slice(c0, c1))
    return Patch(x0 + int(c0), y0 + int(r0), label_before[crop].copy(), edited_before[crop].copy(),
                 label_after[crop].copy(), edited_after[crop].copy())


@dataclass
class EditStep:
    """One undoable action: ``name`` (e.g. ``"brush"``) and its patches in the order they were applied."""

    name: str
    patches: list[Patch] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.patches)

    @property
    def rect(self) -> Rect | None:
        out: Rect | None = None
        for p in self.patches:
            out = union_rect(out, p.rect)
        return out

    def undo(self, label: np.ndarray, edited: np.ndarray) -> Rect | None:
        for p in reversed(self.patches):
            p.apply(label, edited, forward=False)
        return self.rect

    def redo(self, label: np.ndarray, edited: np.ndarray) -> Rect | None:
        for p in self.patches:
            p.apply(label, edited, forward=True)
        return self.rect


class EditHistory:
    """Undo and redo stacks of :class:`EditStep` s with a step count and a byte cap (oldest dropped first)."""

    def __init__(self, max_steps: int = DEFAULT_MAX_STEPS, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_steps = int(max_steps)
        self.max_bytes = int(max_bytes)
        self._undo: deque[EditStep] = deque()
        self._redo: list[EditStep] = []
        self.dropped = 0
        """Steps evicted so far (no longer undoable)."""

    def __len__(self) -> int:
        return len(self._undo)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def nbytes(self) -> int:
        """Bytes held by the patches of both stacks."""
        return sum(s.nbytes for s in self._undo) + sum(s.nbytes for s in self._redo)

    def push(self, step: EditStep) -> None:
        """Record a new step (an empty one is ignored); clears the redo stack, then evicts to the caps."""
        if not step.patches:
            return
        self._undo.append(step)
        self._redo.clear()
        while len(self._undo) > self.max_steps or (len(self._undo) > 1 and self.nbytes > self.max_bytes):
            self._undo.popleft()
            self.dropped += 1

    def undo(self, label: np.ndarray, edited: np.ndarray) -> Rect | None:
        """Revert the newest step in ``label``/``edited``; the rectangle it touched (None: nothing to undo)."""
        if not self._undo:
            return None
        step = self._undo.pop()
        self._redo.append(step)
        return step.undo(label, edited)

    def redo(self, label: np.ndarray, edited: np.ndarray) -> Rect | None:
        if not self._redo:
            return None
        step = self._redo.pop()
        self._undo.append(step)
        return step.redo(label, edited)

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
