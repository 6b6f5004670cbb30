"""One opened image and everything the app shows about it, Qt-free.

An :class:`ImageSession` holds the image, the network's :class:`RawMaps`, the :class:`SegmentationResult` shown
and the user's choices (include/exclude per proposal, top-N, ensemble rule, CRF, aggregation, the selected
proposal). Changing a choice never re-runs the network: :meth:`ImageSession.recombine` rebuilds the label map from
the raw maps with :func:`deconv_gui.inference.pipeline.recombine` — the one path for the CLI and the app — and the
session's :class:`CombineCache` makes that fast.

States of an image: ``"not run"`` → ``"segmented"`` → ``"exported"`` (an edit after export goes back to
``"segmented"``); ``"failed"``: the file could not be read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from deconv_gui.core.aggregation import AggregationMode, label_map
from deconv_gui.inference.combine import CombineCache
from deconv_gui.inference.pipeline import PipelineOptions, recombine
from deconv_gui.inference.result import RawMaps, SegmentationResult
from deconv_gui.postprocess.crf import CRFParams
from deconv_gui.postprocess.ensemble import EnsembleMode

ImageState = Literal["not run", "segmented", "exported", "failed"]
IMAGE_STATES: tuple[str, ...] = ("not run", "segmented", "exported", "failed")


@dataclass(frozen=True)
class ViewChoices:
    """The user's choices that re-combine cached maps (no network): ensemble rule, CRF, aggregation, top-N."""

    ensemble: EnsembleMode = "mean"
    crf: bool = False
    crf_params: CRFParams = CRFParams()
    aggregation: AggregationMode = "max"
    top_n: int | None = None

    def pipeline_options(self) -> PipelineOptions:
        return PipelineOptions(
            aggregation=self.aggregation, ensemble=self.ensemble, crf=self.crf, crf_params=self.crf_params
        )


@dataclass(frozen=True)
class ProposalSummary:
    """One proposal as the proposals table shows it. ``box``: x0, y0, x1, y1 (exclusive, crop window)."""

    rank: int
    score: float
    box: tuple[int, int, int, int]
    class_id: int
    class_name: str
    area: int
    probability: float
    from_user: bool
    mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool), repr=False, compare=False)
    """``(h, w)`` bool: the proposal's own mask over its visible box, placed at ``offset`` (x0, y0)."""
    offset: tuple[int, int] = (0, 0)


def instance_patch(result: RawMaps, index: int) -> tuple[np.ndarray, tuple[int, int], int, float] | None:
    """Proposal ``index``'s own mask over its visible box only: ``(mask (h, w) bool, (x0, y0), class, mean p)``.

    The same mask as :meth:`SegmentationResult.instance_mask` without a full-image array (cheap for big photos);
    None when the proposal has no foreground pixel.
    """
    inst = result.instance_probabilities(index)
    if inst is None:
        return None
    probs, (rows, cols) = inst
    labels = label_map(probs)  # strip-wise: a big box's argmax would hold the GIL for long
    fg = labels != 0
    if not fg.any():
        return None
    cls = int(np.bincount(labels[fg], minlength=probs.shape[0])[1:].argmax() + 1)
    sel = labels == cls
    return sel, (int(cols.start), int(rows.start)), cls, float(probs[cls][sel].mean())


def summarise_proposals(result: RawMaps, start: int = 0) -> list[ProposalSummary]:
    """Per-proposal dominant class, mask and area from the cached maps, for proposals ``start`` onwards (a few ms
    per proposal: run it on a worker thread)."""
    rows = []
    for i in range(start, result.num_proposals):
        patch = instance_patch(result, i)
        mask, offset, cls, prob = patch if patch is not None else (np.zeros((0, 0), bool), (0, 0), 0, 0.0)
        rows.append(
            ProposalSummary(
                rank=i + 1,
                score=float(result.proposal_scores[i]),
                box=tuple(int(v) for v in result.boxes[i]),  # type: ignore[arg-type]
                class_id=cls,
                class_name=result.class_names[cls] if cls < len(result.class_names) else str(cls),
                area=int(mask.sum()),
                probability=prob,
                from_user=bool(result.from_user[i]),
                mask=mask,
                offset=offset,
            )
        )
    return rows


@dataclass
class ImageSession:
    """An opened image. ``image``: ``(H, W, 3) uint8`` RGB; ``raw``: the network's maps; ``shown``: the result
    combined from them under the user's choices (what the canvas draws); ``combine``: the cache that makes
    re-combining ``raw`` fast."""

    path: Path
    image: np.ndarray
    raw: RawMaps | None = None
    shown: SegmentationResult | None = None
    combine: CombineCache | None = None
    user_include: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    summaries: list[ProposalSummary] = field(default_factory=list)
    selected: int | None = None
    state: ImageState = "not run"
    annotation: Any = None
    """The user's hand edits (``deconv_gui.document.annotation.AnnotationLayer``), or None before any."""

    @property
    def has_result(self) -> bool:
        return self.shown is not None

    def nbytes(self) -> int:
        """Approximate memory held by the image and the results' arrays (for the app's cache budget)."""
        seen: set[int] = set()
        total = 0
        for result in (self.raw, self.shown):
            if result is None:
                continue
            for name in ("aggregated", "probabilities", "partner_scores", "instance_scores", "base_scores", "label"):
                arr = getattr(result, name, None)
                if arr is not None and id(arr) not in seen:
                    seen.add(id(arr))
                    total += arr.nbytes
        edits = self.annotation.nbytes() * 3 if self.annotation is not None else 0  # + the UI's edits overlay
        if self.combine is not None and self.shown is not None:
            total += self.shown.aggregated.nbytes  # the cache's running aggregation
        return total + self.image.nbytes * 3 + edits  # + the display and overlay images of the UI

    def edited_label(self) -> np.ndarray | None:
        """``(H, W) uint8``: the shown label map with the hand edits on top; None when nothing was edited."""
        layer = self.annotation
        if layer is None or not layer.has_edits:
            return None
        return layer.composite(self.shown.label if self.shown is not None else None)

    def class_areas(self) -> np.ndarray | None:
        """``(C,) int64`` pixels per class in what the user sees: the shown label map with the hand edits on top
        (void pixels counted nowhere); None before a result."""
        if self.shown is None:
            return None
        edited = self.edited_label()
        label = edited if edited is not None else self.shown.label
        num_classes = len(self.shown.class_names)
        return np.bincount(label.ravel(), minlength=256)[:num_classes].astype(np.int64)

    def set_result(self, raw: RawMaps, shown: SegmentationResult | None = None,
                   summaries: list[ProposalSummary] | None = None, combine: CombineCache | None = None) -> None:
        """Adopt a fresh network result ``raw`` and its combination ``shown`` (None: combined here with the
        default choices and the user's ticks); keeps user exclusions of proposals that still exist."""
        self.user_include = carried_include(self.user_include, raw.num_proposals)
        self.raw = raw
        self.combine = combine if combine is not None else self.combine_cache(raw)
        self.shown = shown if shown is not None else self.recombine(ViewChoices())
        self.summaries = summaries if summaries is not None else summarise_proposals(raw)
        if self.selected is not None and self.selected >= raw.num_proposals:
            self.selected = None
        self.state = "segmented"

    def set_included(self, index: int, included: bool) -> None:
        self.user_include[index] = included
        self.edited()

    def edited(self) -> None:
        if self.state == "exported":
            self.state = "segmented"

    def recombine(self, choices: ViewChoices, *, device: str = "cpu") -> SegmentationResult:
        """The result under ``choices`` and the user's include mask, from cached maps (no network).

        Pure: does not change the session (the caller adopts it with :meth:`show`), so it can run on a worker.
        """
        if self.raw is None:
            raise ValueError(f"{self.path.name} has no result yet")
        return recombine(
            self.raw, self.image, choices.pipeline_options(), include=self.user_include, top_n=choices.top_n,
            device=device, cache=self.combine_cache(self.raw),
        )

    def combine_cache(self, raw: RawMaps) -> CombineCache:
        """The session's :class:`CombineCache` serving ``raw`` (made on first use; the CRF's kernels are kept
        across new raw maps of this image)."""
        self.combine = CombineCache(raw, self.image) if self.combine is None else self.combine.serving(raw)
        return self.combine

    def show(self, result: SegmentationResult) -> None:
        self.shown = result

    def with_partner_scores(self, partner_scores: np.ndarray | None) -> None:
        """Attach (or drop) an ensemble partner's ``(C, H, W)`` float32 scores to the cached result."""
        if self.raw is not None:
            self.raw = replace(self.raw, partner_scores=partner_scores)

    def effective_include(self) -> np.ndarray:
        """``(N,)`` bool: the proposals taking part in the shown label map (user choice ∧ top-N)."""
        if self.shown is None:
            return np.zeros(0, bool)
        return self.shown.include

    def probe(self, x: int, y: int) -> tuple[str, float] | None:
        """``(class name, probability)`` of the shown result at pixel column ``x``, row ``y``, or None outside."""
        if self.shown is None:
            return None
        h, w = self.shown.image_hw
        if not (0 <= x < w and 0 <= y < h):
            return None
        names = self.shown.class_names
        layer = self.annotation
        if layer is not None and layer.edited[y, x]:
            cls = int(layer.label[y, x])
            return (names[cls] if cls < len(names) else "void" if cls == 255 else str(cls)) + " (edited)", 1.0
        cls = int(self.shown.label[y, x])
        prob = float(self.shown.probabilities[cls, y, x])
        return (names[cls] if cls < len(names) else str(cls)), prob


def carried_include(previous: np.ndarray | None, num_proposals: int) -> np.ndarray:
    """``(num_proposals,)`` bool: the user's include choices carried over to a new run of the same image.

    A re-run proposes the same Edge Boxes in the same order, so proposal ``i`` keeps its tick (also across a
    model change, and from ticks restored from disk); ``previous`` None or empty (no earlier result) or longer
    than the new run (it held drawn boxes) starts with all included.
    """
    include = np.ones(num_proposals, bool)
    if previous is not None and len(previous) <= num_proposals:
        include[: len(previous)] = previous
    return include


def proposals_used(result: SegmentationResult) -> str:
    """"7 of 51 proposals used" (user ticks ∧ top-N), or "whole image" for a whole-image model."""
    if result.mode != "instances":
        return "whole image"
    return f"{int(np.count_nonzero(result.include))} of {result.num_proposals} proposals used"


def class_boundaries(label: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels whose right or lower neighbour has another class (1-px class borders)."""
    edge = np.zeros(label.shape, bool)
    diff_x = label[:, 1:] != label[:, :-1]
    diff_y = label[1:, :] != label[:-1, :]
    edge[:, :-1] |= diff_x
    edge[:, 1:] |= diff_x
    edge[:-1, :] |= diff_y
    edge[1:, :] |= diff_y
    return edge
