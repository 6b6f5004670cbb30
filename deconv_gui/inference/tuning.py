"""Choose the ensemble weight and the dense-CRF parameters on held-out images (``tune-ensemble``, ``tune-crf``).

The network runs once per image (:func:`collect`): DeconvNet's aggregated scores and the partner's whole-image
scores are cached as ``(C, H, W) float16``; every candidate is then a pure function of the cache, scored by
mIoU over all cached images (one confusion matrix per candidate, FCN's convention). The winner is stored in
the DeconvNet checkpoint's metadata (``ensemble`` / ``crf``) by :func:`store_choice`, and the pipeline uses it
by default from then on.

Choose on a split that is not the one you report (e.g. CamVid ``train@0006R0`` for a model trained on
``train+val!0006R0``); the chosen split is stored beside the values (``"chosen_on"``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from deconv_gui.core.aggregation import label_map
from deconv_gui.core.cancel import ProgressCallback, no_progress
from deconv_gui.core.metrics import ConfusionMatrix
from deconv_gui.inference.pipeline import Segmenter
from deconv_gui.io.checkpoints import update_checkpoint_meta
from deconv_gui.postprocess.crf import CRFParams, dense_crf
from deconv_gui.postprocess.ensemble import ensemble_probabilities

log = logging.getLogger(__name__)

#: DeconvNet's weights in a weighted mean that :func:`ensemble_grid` tries (0 = the partner alone).
ENSEMBLE_WEIGHTS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(11))


@dataclass
class CachedImage:
    """One tuning image: ``image (H, W, 3) uint8``, ``target (H, W) uint8`` (255 = void), the model's
    ``scores (C, H, W) float16`` and the partner's (or None)."""

    image: np.ndarray
    target: np.ndarray
    scores: np.ndarray
    partner_scores: np.ndarray | None


def collect(segmenter: Segmenter, pairs: Iterable[tuple[np.ndarray, np.ndarray]],
            progress: ProgressCallback = no_progress) -> list[CachedImage]:
    """Run ``segmenter`` (CRF off) on each ``(image, target)`` and cache its raw score maps."""
    options = dataclasses.replace(segmenter.options, crf=False, keep_instance_scores=False)
    segmenter = Segmenter(segmenter.runner, partner=segmenter.partner, proposer=segmenter.proposer,
                          options=options)
    cache = []
    pairs = list(pairs)
    for k, (image, target) in enumerate(pairs):
        result = segmenter.segment(image)
        partner = None if result.partner_scores is None else result.partner_scores.astype(np.float16)
        cache.append(CachedImage(image, target, result.aggregated.astype(np.float16), partner))
        progress(k + 1, len(pairs), "caching scores")
    return cache


def _miou(cache: list[CachedImage], num_classes: int,
          probabilities: Callable[[CachedImage], np.ndarray]) -> float:
    cm = ConfusionMatrix(num_classes)
    for item in cache:
        cm.update(item.target, label_map(probabilities(item)))
    return float(cm.mean_iou())


def ensemble_probs(item: CachedImage, mode: str, weight: float) -> np.ndarray:
    """``(C, H, W) float32`` probabilities of one cached image under an ensemble rule."""
    partner = None if item.partner_scores is None else item.partner_scores.astype(np.float32)
    return ensemble_probabilities(item.scores.astype(np.float32), partner,
                                  mode if partner is not None else "off", weight)  # type: ignore[arg-type]


def ensemble_grid(cache: list[CachedImage], num_classes: int,
                  weights: Iterable[float] = ENSEMBLE_WEIGHTS) -> list[tuple[str, float, float]]:
    """``(rule, weight, mIoU)`` for each weighted mean, plus ``product`` (weight nan) — the original code's."""
    rows = [("weighted", float(w), _miou(cache, num_classes, lambda it, w=w: ensemble_probs(it, "weighted", w)))
            for w in weights]
    rows.append(("product", float("nan"), _miou(cache, num_classes, lambda it: ensemble_probs(it, "product", 0.5))))
    return rows


def default_crf_grid(size: str = "small") -> list[CRFParams]:
    """Candidate CRF settings: DeconvNet's preset, then symmetric-normalised kernels over bilateral width,
    colour width and weight (``"small"``: 12 settings; ``"full"``: 48, Gaussian weights 1 and 3 and more widths)."""
    sxys, srgbs, weights, gaussian = (20.0, 50.0, 80.0), (3.0, 10.0), (3.0, 5.0), (3.0,)
    if size == "full":
        sxys, srgbs, weights, gaussian = (10.0, 20.0, 50.0, 80.0), (3.0, 5.0, 10.0), (3.0, 5.0), (1.0, 3.0)
    grid = [CRFParams()]  # DeconvNet's VOC values (no normalisation)
    grid += [CRFParams(gaussian_sxy=3.0, gaussian_weight=g, bilateral_sxy=s, bilateral_srgb=c, bilateral_weight=w,
                       iterations=5, normalization="symmetric")
             for g in gaussian for s in sxys for c in srgbs for w in weights]
    return grid


def crf_grid(cache: list[CachedImage], num_classes: int, grid: list[CRFParams], *, mode: str = "off",
             weight: float = 0.5, device: str = "cpu",
             progress: ProgressCallback = no_progress) -> list[tuple[CRFParams | None, float]]:
    """``(params, mIoU)`` per candidate; the first row (``None``) is the ensemble without a CRF."""
    rows: list[tuple[CRFParams | None, float]] = [
        (None, _miou(cache, num_classes, lambda it: ensemble_probs(it, mode, weight)))]
    for k, params in enumerate(grid):
        rows.append((params, _miou(cache, num_classes, lambda it, p=params: dense_crf(
            it.image, ensemble_probs(it, mode, weight), p, device=device))))
        progress(k + 1, len(grid), "CRF grid")
    return rows


def crf_record(params: CRFParams, chosen_on: str, miou: float, gain: float) -> dict:
    """What ``meta.crf`` stores: the parameters, where they were chosen, and what they gave there."""
    return {**dataclasses.asdict(params), "chosen_on": chosen_on, "miou": round(miou, 6), "gain": round(gain, 6)}


def crf_params_from_meta(stored: dict) -> CRFParams | None:
    """The CRFParams in a checkpoint's ``meta.crf`` (None when empty or unusable, after a warning)."""
    if not stored:
        return None
    names = {f.name for f in dataclasses.fields(CRFParams)}
    values = {k: v for k, v in stored.items() if k in names}
    if not values:  # e.g. {"helps": False}: tuning found nothing better than no CRF
        return None
    try:
        return CRFParams(**values)
    except (TypeError, ValueError) as err:
        log.warning("ignoring the checkpoint's CRF settings (%s)", err)
        return None


def store_choice(path: str | os.PathLike[str], key: str, record: dict) -> None:
    """Write ``record`` into the checkpoint's ``meta.<key>`` (``"ensemble"`` or ``"crf"``), atomically."""
    if key not in ("ensemble", "crf"):
        raise ValueError(f"key must be 'ensemble' or 'crf', got {key!r}")
    update_checkpoint_meta(path, {key: record})
