"""EDeconvNet: combine DeconvNet's aggregated scores with a whole-image model's (FCN-8s by default).

Both inputs are raw class scores ``(C, H, W)`` float32 on the same grid; the result is class probabilities
``(C, H, W)`` float32.

- ``"mean"`` (the paper): the mean of the two class-conditional probability maps.
- ``"product"`` (the original release): softmax of the element-wise product of the two ReLU'd score maps.
- ``"off"``: DeconvNet alone.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from deconv_gui.core.aggregation import softmax

EnsembleMode = Literal["mean", "product", "off"]
ENSEMBLE_MODES: tuple[str, ...] = ("mean", "product", "off")


def ensemble_probabilities(
    deconv_scores: np.ndarray, partner_scores: np.ndarray | None, mode: EnsembleMode = "mean"
) -> np.ndarray:
    """Return ``(C, H, W)`` probabilities for ``mode``; ``partner_scores`` may be ``None`` only with ``"off"``."""
    if mode not in ENSEMBLE_MODES:
        raise ValueError(f"ensemble mode must be one of {ENSEMBLE_MODES}, not {mode!r}")
    if mode == "off":
        return softmax(deconv_scores)
    if partner_scores is None:
        raise ValueError(f"ensemble mode {mode!r} needs the partner model's scores")
    if partner_scores.shape != deconv_scores.shape:
        raise ValueError(f"score maps differ in shape: {deconv_scores.shape} vs {partner_scores.shape}")
    if mode == "mean":
        return (softmax(deconv_scores) + softmax(partner_scores)) * np.float32(0.5)
    return softmax(np.maximum(deconv_scores, 0.0) * np.maximum(partner_scores, 0.0))
