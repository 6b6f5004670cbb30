"""Fast re-combination of one image's per-instance maps: what makes the app's include/exclude, top-N and CRF
toggles answer at once.

:class:`CombineCache` belongs to one :class:`~deconv_gui.inference.result.RawMaps` and its image. It pastes
proposals with torch (the same two-tap half-pixel sampling as :func:`deconv_gui.core.aggregation.resize_to_box`,
several times faster than the numpy reference, and only over the pixels a step needs), remembers its last max-
aggregation so that toggling a few proposals only redoes their boxes, and keeps the dense CRF's kernels of the
image so that the CRF's lattices are built once per image, not once per toggle.

Thread-safety: one lock per cache; the app runs its jobs on one worker thread anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from deconv_gui.core.aggregation import AggregationMode, softmax, visible_window
from deconv_gui.inference.result import RawMaps
from deconv_gui.postprocess.crf import CRFParams, DenseCRF

PATCH_BUDGET_BYTES = 768 << 20
"""Pasted proposals are kept (float32, or float16 when that is what fits) while they fit in this; beyond it (huge
photos) each step pastes again."""
INCREMENTAL_AREA = 0.6
"""Redo only the toggled boxes while their visible areas add up to less than this share of the image; above it a
full re-aggregation is as cheap."""


def paste_instance(scores: np.ndarray, box: Sequence[int], image_hw: tuple[int, int]
                   ) -> tuple[torch.Tensor, tuple[slice, slice]] | None:
    """``scores`` ``(C, S, S)`` resized bilinearly to the integer ``box`` ``(x0, y0, x1, y1)``, visible part only:
    ``(patch (C, h_vis, w_vis) float32 tensor, (rows, cols) image slices)``, or None outside the image. Torch's
    bilinear resize samples as :func:`deconv_gui.core.aggregation.resize_to_box` does (half-pixel centres, edges
    clamped), several times faster."""
    window = visible_window(box, image_hw)
    if window is None:
        return None
    rows, cols, box_rows, box_cols = window
    x0, y0, x1, y1 = (int(v) for v in box)
    source = torch.from_numpy(np.ascontiguousarray(scores)).float()[None]
    resized = F.interpolate(source, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[0]
    return resized[:, box_rows, box_cols], (rows, cols)


def _overlaps(a: tuple[slice, slice], b: tuple[slice, slice]) -> tuple[slice, slice] | None:
    """The intersection of two (rows, cols) windows, or None."""
    r0, r1 = max(a[0].start, b[0].start), min(a[0].stop, b[0].stop)
    c0, c1 = max(a[1].start, b[1].start), min(a[1].stop, b[1].stop)
    if r1 <= r0 or c1 <= c0:
        return None
    return slice(r0, r1), slice(c0, c1)


class CombineCache:
    """Re-aggregation and CRF state of one image's :class:`RawMaps` (see the module docstring)."""

    def __init__(self, raw: RawMaps, image: np.ndarray) -> None:
        self.raw = raw
        self.image = image
        self._lock = threading.Lock()
        self._windows = [visible_window(b, raw.image_hw) for b in raw.boxes]
        self._patches: dict[int, tuple[torch.Tensor, tuple[slice, slice]]] = {}
        self._keep_dtype = self._patch_dtype()
        self._acc: torch.Tensor | None = None
        self._include: np.ndarray | None = None
        self._mode: AggregationMode | None = None
        self._crf: DenseCRF | None = None
        self._crf_key: tuple[CRFParams, str] | None = None
        self._partner_probs: tuple[np.ndarray, np.ndarray] | None = None
        self._refined: tuple[tuple[object, ...], np.ndarray | None, np.ndarray] | None = None

    def refined(self, key: tuple[object, ...]) -> np.ndarray | None:
        """The CRF marginals last kept for ``key`` with the current partner scores (see :meth:`keep_refined`)."""
        with self._lock:
            kept = self._refined
            if kept is None or kept[0] != key or kept[1] is not self.raw.partner_scores:
                return None
            return kept[2]

    def keep_refined(self, key: tuple[object, ...], probs: np.ndarray) -> None:
        """Keep one CRF result, ``probs`` ``(C, H, W)``, for the recombination ``key`` names (what was included,
        aggregation, ensemble, CRF parameters) with the current partner scores: the app refines ahead while
        idle, so that switching the CRF on then only draws."""
        with self._lock:
            self._refined = (key, self.raw.partner_scores, probs)

    def _patch_dtype(self) -> torch.dtype | None:
        """float32 when every pasted proposal fits in the budget, float16 when only half precision does, else
        None (nothing kept)."""
        if self.raw.instance_scores is None:
            return None
        c = self.raw.instance_scores.shape[1]
        values = c * sum((w[0].stop - w[0].start) * (w[1].stop - w[1].start) for w in self._windows if w)
        if values * 4 <= PATCH_BUDGET_BYTES:
            return torch.float32
        return torch.float16 if values * 2 <= PATCH_BUDGET_BYTES else None

    def serving(self, raw: RawMaps) -> CombineCache:
        """A cache for ``raw``: this one when ``raw`` holds the same proposal maps (e.g. only the partner's scores
        changed), else a fresh one for the same image that keeps the CRF's kernels (e.g. a box was added)."""
        same = (raw.instance_scores is self.raw.instance_scores and raw.boxes is self.raw.boxes
                and raw.base_scores is self.raw.base_scores)
        if same:
            self.raw = raw
            return self
        fresh = CombineCache(raw, self.image)
        fresh._crf, fresh._crf_key = self._crf, self._crf_key
        n = self.raw.num_proposals
        grown = (raw.num_proposals > n and raw.base_scores is self.raw.base_scores and self.raw.instance_scores is not None
                 and raw.instance_scores is not None and np.array_equal(raw.boxes[:n], self.raw.boxes)
                 and raw.appended_to == id(self.raw.instance_scores)  # self.raw keeps that array alive: unique
                 and np.array_equal(raw.instance_scores[:n, :, ::16, ::16], self.raw.instance_scores[:, :, ::16, ::16]))
        if grown and fresh._keep_dtype == self._keep_dtype:  # boxes appended: the rest carries over
            fresh._patches = dict(self._patches)
            if self._acc is not None and self._include is not None:
                fresh._acc, fresh._mode = self._acc.clone(), self._mode
                fresh._include = np.concatenate([self._include, np.zeros(raw.num_proposals - n, bool)])
        return fresh

    def _start(self, rows: slice | None = None, cols: slice | None = None) -> torch.Tensor:
        """The accumulator's start over the window: the whole-image base scores, or 0 (float32 ``(C, h, w)``)."""
        raw = self.raw
        h, w = raw.image_hw
        rows, cols = rows or slice(0, h), cols or slice(0, w)
        if raw.base_scores is not None:
            return torch.from_numpy(np.array(raw.base_scores[:, rows, cols], np.float32))
        c = raw.instance_scores.shape[1] if raw.instance_scores is not None and len(raw.instance_scores) else 1
        return torch.zeros((c, rows.stop - rows.start, cols.stop - cols.start), dtype=torch.float32)

    def _patch(self, index: int) -> tuple[torch.Tensor, tuple[slice, slice]] | None:
        """Proposal ``index`` pasted over its visible box (kept when the budget allows; see ``PATCH_BUDGET_BYTES``)."""
        if self._windows[index] is None:
            return None
        kept = self._patches.get(index)
        if kept is not None:
            return kept[0].float(), kept[1]
        assert self.raw.instance_scores is not None
        pasted = paste_instance(self.raw.instance_scores[index], self.raw.boxes[index], self.raw.image_hw)
        if pasted is not None and self._keep_dtype is not None:
            self._patches[index] = (pasted[0].to(self._keep_dtype), pasted[1])
        return pasted

    def _fold(self, acc: torch.Tensor, index: int, mode: AggregationMode,
              region: tuple[slice, slice] | None = None) -> None:
        """Fold proposal ``index`` into ``acc``, which covers the image (``region`` None) or ``region`` only."""
        window = self._windows[index]
        if window is None:
            return
        target = (window[0], window[1]) if region is None else _overlaps((window[0], window[1]), region)
        if target is None:
            return
        pasted = self._patch(index)
        assert pasted is not None
        patch, (rows, cols) = pasted
        src = patch[:, target[0].start - rows.start: target[0].stop - rows.start,
                    target[1].start - cols.start: target[1].stop - cols.start]
        off_r, off_c = (0, 0) if region is None else (region[0].start, region[1].start)
        view = acc[:, target[0].start - off_r: target[0].stop - off_r, target[1].start - off_c: target[1].stop - off_c]
        if mode == "max":
            torch.maximum(view, src, out=view)
        else:
            view.add_(src.clamp_min(0.0))

    def aggregate(self, include: np.ndarray, mode: AggregationMode = "max") -> np.ndarray:
        """``(C, H, W)`` float32 aggregation of the included proposals (``include`` ``(N,)`` bool), from the base
        scores or 0 — equal to :func:`deconv_gui.core.aggregation.aggregate_instances` up to float rounding.

        With ``"max"``, a call that toggles a few proposals since the last one redoes only their boxes."""
        if mode not in ("max", "sum"):
            raise ValueError(f"aggregation mode must be 'max' or 'sum', not {mode!r}")
        include = np.asarray(include, bool)
        if self.raw.instance_scores is None:
            raise ValueError("this result keeps no per-instance maps; re-run with keep_instance_scores=True")
        with self._lock:
            if not self._update(include, mode):
                acc = self._start()
                for i in np.flatnonzero(include):
                    self._fold(acc, int(i), mode)
                self._acc = acc
            self._include, self._mode = include.copy(), mode
            assert self._acc is not None
            return self._acc.numpy().copy()

    def _update(self, include: np.ndarray, mode: AggregationMode) -> bool:
        """Bring the remembered max-aggregation up to ``include`` box by box; False when a full pass is due."""
        if self._acc is None or mode != "max" or self._mode != "max" or self._include is None \
                or len(self._include) != len(include):
            return False
        changed = np.flatnonzero(include != self._include)
        h, w = self.raw.image_hw
        windows = [self._windows[i] for i in changed]
        area = sum((win[0].stop - win[0].start) * (win[1].stop - win[1].start) for win in windows if win)
        if area > INCREMENTAL_AREA * h * w:
            return False
        acc = self._acc
        for i, win in zip(changed, windows, strict=True):
            if win is None:
                continue
            rows, cols = win[0], win[1]
            if include[i]:  # ticked: the max only grows
                self._fold(acc, int(i), mode)
                continue
            region = self._start(rows, cols)  # unticked: redo its box from the proposals still in
            for j in np.flatnonzero(include):
                self._fold(region, int(j), mode, (rows, cols))
            acc[:, rows, cols] = region
        return True

    def partner_probabilities(self) -> np.ndarray | None:
        """``softmax`` of the partner's ``(C, H, W)`` scores (computed once per partner), or None without one."""
        scores = self.raw.partner_scores
        if scores is None:
            return None
        with self._lock:
            if self._partner_probs is None or self._partner_probs[0] is not scores:
                self._partner_probs = (scores, softmax(scores))
            return self._partner_probs[1]

    def crf(self, params: CRFParams, device: str) -> DenseCRF:
        """The image's dense CRF for ``params`` (kernels built on first use, then kept)."""
        with self._lock:
            if self._crf is None or self._crf_key != (params, device):
                self._crf, self._crf_key = DenseCRF(self.image, params, device=device), (params, device)
            return self._crf
