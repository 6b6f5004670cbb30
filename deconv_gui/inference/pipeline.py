"""The whole DeconvNet pipeline for one image, in two steps that every caller (CLI and app) goes through.

:meth:`Segmenter.segment` runs the networks — proposals → crops → batched forward in chunks (bounded memory for any
N; progress and cancel between chunks) → optional whole-image base and partner passes — and returns their
:class:`RawMaps`. :func:`recombine` is the only way from raw maps to a label map: aggregation of the included
proposals → ensemble → optional dense CRF → labels. A GUI calls it again for every include/exclude, top-N,
aggregation, ensemble or CRF change, without the network (and fast, with a :class:`CombineCache`).
:meth:`Segmenter.run` is the two in one.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, replace

import numpy as np

from deconv_gui.core.aggregation import (
    AggregationMode,
    accumulate_instance,
    label_map,
    softmax,
)
from deconv_gui.core.cancel import CancelToken, ProgressCallback, no_progress
from deconv_gui.core.vocabulary import BaseMode, InferenceMode, uses_whole_image_base
from deconv_gui.inference.combine import CombineCache
from deconv_gui.inference.result import RawMaps, SegmentationResult
from deconv_gui.inference.runner import ModelRunner
from deconv_gui.io.checkpoints import ModelMeta
from deconv_gui.postprocess.crf import CRFParams
from deconv_gui.postprocess.ensemble import EnsembleMode, ensemble_probabilities
from deconv_gui.proposals.crops import crop_batch, integer_boxes, replicate_inside_scores
from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer, proposals_from_boxes

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class PipelineOptions:
    """Choices that shape one run.

    ``mode``: ``"instances"`` (DeconvNet's proposal-wise inference), ``"whole"`` (one pass on the whole image),
    ``"auto"`` (instances for DeconvNet, whole for the others). ``keep_instance_scores`` keeps the
    ``(N, C, S, S)`` float16 cache a GUI needs; turn it off for memory-bounded batch runs. ``base``: what
    instance-wise aggregation starts from, see :func:`uses_whole_image_base`. ``ensemble_weight`` is
    DeconvNet's share in the ``"weighted"`` ensemble; :func:`options_for_model` fills it and ``crf_params``
    from a checkpoint's tuned values.
    """

    mode: InferenceMode = "auto"
    base: BaseMode = "auto"
    aggregation: AggregationMode = "max"
    ensemble: EnsembleMode = "mean"
    ensemble_weight: float = 0.5
    crf: bool = False
    crf_params: CRFParams = CRFParams()
    keep_instance_scores: bool = True


def edge_box_config(meta: ModelMeta | None = None, **overrides: object) -> EdgeBoxConfig:
    """Edge Box settings for a model: :class:`EdgeBoxConfig`'s defaults (DeconvNet's VOC procedure), then the
    model's own ``meta.proposals`` (e.g. a CamVid model's smaller minimum side), then ``overrides`` whose value
    is not None (the user's flags). Unknown keys in the metadata are ignored with a warning."""
    names = {f.name for f in dataclasses.fields(EdgeBoxConfig)}
    stored = dict(meta.proposals) if meta is not None else {}
    unknown = sorted(set(stored) - names)
    if unknown:
        log.warning("ignoring unknown proposal settings in the checkpoint: %s", ", ".join(unknown))
    values = {k: v for k, v in stored.items() if k in names}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return EdgeBoxConfig(**values)  # type: ignore[arg-type]


def options_for_model(meta: ModelMeta, *, ensemble: str = "auto", **changes: object) -> PipelineOptions:
    """PipelineOptions with the model's tuned post-processing (``deconv-gui tune-ensemble`` / ``tune-crf``).

    ``ensemble="auto"`` is the stored rule (``"weighted"`` with the stored weight, or ``"product"``) when the
    checkpoint has one, else the paper's ``"mean"``; the CRF parameters are the stored ones, else DeconvNet's preset. ``changes`` override fields.
    """
    from deconv_gui.inference.tuning import crf_params_from_meta

    weight = meta.ensemble.get("weight")
    stored_weight = isinstance(weight, (int, float)) and 0.0 <= float(weight) <= 1.0
    values: dict[str, object] = {"ensemble": ensemble}
    if ensemble == "auto":
        rule = meta.ensemble.get("rule", "weighted")
        values["ensemble"] = (rule if rule in ("weighted", "product") else "weighted") if stored_weight else "mean"
    if stored_weight:
        values["ensemble_weight"] = float(weight)  # type: ignore[arg-type]
    crf_params = crf_params_from_meta(meta.crf)
    if crf_params is not None:
        values["crf_params"] = crf_params
    values.update(changes)
    return PipelineOptions(**values)  # type: ignore[arg-type]


def chunk_bounds(n: int, max_chunk: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``n`` items in the fewest chunks of at most ``max_chunk``, sizes as even
    as possible (50 crops by 8 → 8, 7, 7, 7, 7, 7, 7 rather than a wasteful last chunk of 2)."""
    if n <= 0:
        return []
    count = -(-n // max(1, max_chunk))
    edges = [round(i * n / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


class Segmenter:
    """Runs the pipeline with one main model, an optional ensemble partner and an Edge Box proposer."""

    def __init__(
        self,
        runner: ModelRunner,
        *,
        partner: ModelRunner | None = None,
        proposer: EdgeBoxProposer | None = None,
        options: PipelineOptions = PipelineOptions(),
    ) -> None:
        if partner is not None and partner.meta.class_names != runner.meta.class_names:
            raise ValueError(
                f"the ensemble partner's classes {partner.meta.class_names} differ from the model's "
                f"{runner.meta.class_names}"
            )
        self.runner = runner
        self.partner = partner
        self.proposer = proposer or EdgeBoxProposer(edge_box_config(runner.meta))
        self.options = options

    @property
    def instance_mode(self) -> bool:
        if self.options.mode == "auto":
            return self.runner.architecture == "deconvnet"
        return self.options.mode == "instances"

    def _crf_device(self) -> str:
        return "cuda" if self.runner.device.type == "cuda" else "cpu"

    def instance_scores(
        self,
        image: np.ndarray,
        boxes: np.ndarray,
        *,
        aggregation: AggregationMode = "max",
        keep: bool = True,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken | None = None,
        initial: np.ndarray | None = None,
        stream: bool = True,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Run the network on every integer box, chunk by chunk.

        Returns ``(aggregated (C, H, W) float32 or None, instance_scores (N, C, S, S) float16 or None)``. Only
        one chunk of crops and scores is alive at a time, plus the float16 cache when ``keep``. With ``stream``
        the crops are aggregated on the way (from ``initial`` ``(C, H, W)`` when given, else from 0); without,
        the first value is None.
        """
        size = int(self.runner.meta.input_size)
        h, w = image.shape[:2]
        n = len(boxes)
        c = self.runner.num_classes
        cache = np.empty((n, c, size, size), np.float16) if keep else None
        acc = None
        if stream:
            acc = np.zeros((c, h, w), np.float32) if initial is None else np.array(initial, np.float32, copy=True)
        progress(0, n, "crops")
        for start, stop in chunk_bounds(n, self.runner.chunk_size):
            if cancel is not None:
                cancel.raise_if_cancelled()
            crops = crop_batch(image, boxes[start:stop], size, self.runner.meta.crop_fill)
            scores = self.runner.forward_crops(crops)
            replicate_inside_scores(scores, boxes[start:stop], (h, w))
            for j, i in enumerate(range(start, stop)):
                if cache is not None:
                    cache[i] = scores[j]
                if acc is not None:
                    accumulate_instance(acc, scores[j], boxes[i], aggregation)
            progress(stop, n, "crops")
        return acc, cache

    def segment(
        self,
        image: np.ndarray,
        *,
        boxes: np.ndarray | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken | None = None,
    ) -> RawMaps:
        """The networks' maps for ``image`` ``(H, W, 3)`` uint8 RGB; ``boxes`` ``(N, 4)`` overrides the Edge Box
        proposals. Without ``keep_instance_scores`` the proposals are max/sum-aggregated on the way (bounded
        memory) and only that aggregation is kept."""
        opts = self.options
        timings: dict[str, float] = {}
        h, w = image.shape[:2]
        base_scores = aggregated = cache = None
        crop_boxes, scores = np.zeros((0, 4), np.int64), np.zeros((0,), np.float32)
        t0 = time.perf_counter()
        if self.instance_mode:
            progress(0, 1, "proposals")
            props = self.proposer.propose(image) if boxes is None else proposals_from_boxes(boxes, image.shape[:2])
            crop_boxes = integer_boxes(props.boxes)
            scores = np.asarray(props.scores, np.float32)
            timings["proposals"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            if uses_whole_image_base(opts.base, list(self.runner.meta.class_names)):
                progress(0, 1, "whole image")
                base_scores = self.runner.whole_image_scores(image)
                timings["base"] = time.perf_counter() - t0
            streamed, cache = self.instance_scores(
                image, crop_boxes, aggregation=opts.aggregation, keep=opts.keep_instance_scores,
                progress=progress, cancel=cancel, initial=base_scores, stream=not opts.keep_instance_scores,
            )
            aggregated = None if cache is not None else streamed
        else:
            progress(0, 1, "whole image")
            aggregated = self.runner.whole_image_scores(image)
        timings["network"] = time.perf_counter() - t0
        partner_scores = None
        if self.partner is not None and opts.ensemble != "off":
            if cancel is not None:
                cancel.raise_if_cancelled()
            t0 = time.perf_counter()
            progress(0, 1, "ensemble partner")
            partner_scores = self.partner.whole_image_scores(image)
            timings["partner"] = time.perf_counter() - t0
        if cancel is not None:
            cancel.raise_if_cancelled()
        progress(1, 1, "done")
        return RawMaps(
            image_hw=(h, w),
            class_names=list(self.runner.meta.class_names),
            palette=np.asarray(self.runner.meta.palette, np.uint8),
            boxes=crop_boxes,
            proposal_scores=scores,
            instance_scores=cache,
            from_user=np.full(len(crop_boxes), boxes is not None and self.instance_mode),
            partner_scores=partner_scores,
            base_scores=base_scores,
            aggregated=aggregated,
            mode="instances" if self.instance_mode else "whole",
            timings=timings,
            device=self.runner.describe_device(),
        )

    def run(
        self,
        image: np.ndarray,
        *,
        boxes: np.ndarray | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken | None = None,
    ) -> SegmentationResult:
        """:meth:`segment` then :func:`recombine` with this Segmenter's options: the label map of ``image``."""
        raw = self.segment(image, boxes=boxes, progress=progress, cancel=cancel)
        if self.options.crf:
            progress(0, 1, "CRF")
        return recombine(raw, image, self.options, device=self._crf_device())

    def add_box(self, raw: RawMaps, image: np.ndarray, box: np.ndarray) -> RawMaps:
        """``raw`` with one more proposal: the crop of a caller-given ``box`` (x0, y0, x1, y1; no extra context),
        run alone and appended as a user box. Nothing is recombined here."""
        if raw.instance_scores is None:
            raise ValueError("this result keeps no per-instance maps; re-run with keep_instance_scores=True")
        props = proposals_from_boxes(np.asarray(box, np.float64).reshape(1, 4), image.shape[:2])
        new_box = integer_boxes(props.boxes)
        _, cache = self.instance_scores(image, new_box, keep=True, stream=False)
        assert cache is not None
        return replace(
            raw,
            boxes=np.concatenate([raw.boxes, new_box]),
            proposal_scores=np.concatenate([raw.proposal_scores, np.ones(1, np.float32)]),
            instance_scores=np.concatenate([raw.instance_scores, cache]),
            from_user=np.concatenate([raw.from_user, np.ones(1, bool)]),
            appended_to=id(raw.instance_scores),
        )


def recombine(
    raw: RawMaps,
    image: np.ndarray,
    options: PipelineOptions = PipelineOptions(),
    *,
    include: np.ndarray | None = None,
    top_n: int | None = None,
    device: str = "cpu",
    cache: CombineCache | None = None,
    cancel: CancelToken | None = None,
) -> SegmentationResult:
    """The label map of ``raw`` under ``options``: aggregate the included proposals → ensemble (when there are
    partner scores and the mode is not off) → optional CRF → argmax. No network. ``cancel`` is checked between
    CRF steps.

    ``include``: ``(N,)`` bool mask (default: all); ``top_n``: keep only the first ``top_n`` Edge Box proposals
    (sorted by objectness), user boxes always kept. ``cache``: the image's :class:`CombineCache`, which makes
    repeated calls fast (incremental aggregation, the CRF's kernels kept, the last CRF result kept); results are
    equal without it.
    """
    timings: dict[str, float] = {}
    inc = np.ones(raw.num_proposals, bool) if include is None else np.asarray(include, bool).copy()
    t0 = time.perf_counter()
    cache = CombineCache(raw, image) if cache is None else cache.serving(raw)
    if raw.mode == "instances" and raw.instance_scores is not None:
        if top_n is not None:
            edge_box = ~raw.from_user
            inc &= ~edge_box | (np.cumsum(edge_box) <= top_n)
        aggregated = cache.aggregate(inc, options.aggregation)
        timings["aggregate"] = time.perf_counter() - t0
    elif raw.aggregated is not None:
        aggregated = raw.aggregated
        if raw.mode == "instances" and not inc.all():
            raise ValueError("this result keeps no per-instance maps; re-run with keep_instance_scores=True")
    else:
        raise ValueError("these raw maps hold neither per-instance maps nor an aggregation")
    t0 = time.perf_counter()
    mode = options.ensemble if raw.partner_scores is not None else "off"
    probs = ensemble_probabilities(aggregated, raw.partner_scores, mode, options.ensemble_weight,
                                   partner_probabilities=cache.partner_probabilities() if mode != "off" else None)
    timings["ensemble"] = time.perf_counter() - t0
    if options.crf:
        t0 = time.perf_counter()
        key = (inc.tobytes(), options.aggregation, mode, options.ensemble_weight, options.crf_params, device)
        refined = cache.refined(key)
        if refined is None:
            refined = cache.crf(options.crf_params, device).refine(probs, cancel)
            cache.keep_refined(key, refined)
        probs = refined
        timings["crf"] = time.perf_counter() - t0
    fields = {f.name: getattr(raw, f.name) for f in dataclasses.fields(RawMaps)}
    fields.update(aggregated=aggregated, timings={**raw.timings, **timings})
    return SegmentationResult(**fields, probabilities=probs, label=label_map(probs), include=inc)


__all__ = ["PipelineOptions", "RawMaps", "Segmenter", "recombine", "SegmentationResult", "softmax"]
