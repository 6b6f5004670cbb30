"""EDeconvNet: combine DeconvNet's aggregated scores with a whole-image model's (FCN-8s by default).

Both inputs are raw class scores ``(C, H, W)`` float32 on the same grid; the result is class probabilities
``(C, H, W)`` float32.

- ``"mean"`` (the paper): the mean of the two class-conditional probability maps.
- ``"weighted"``: ``w · p_deconv + (1 − w) · p_partner``, ``w`` chosen on held-out data by
  ``deconv-gui tune-ensemble`` and stored in the DeconvNet checkpoint (``mean`` is ``w = 0.5``).
- ``"product"`` (the original release): softmax of the element-wise product of the two ReLU'd score maps.
- ``"off"``: DeconvNet alone.
"""

from __future__ import annotations

import numpy as np

from deconv_gui.core.aggregation import softmax
from deconv_gui.core.vocabulary import ENSEMBLE_MODES, EnsembleMode


def ensemble_probabilities(
    deconv_scores: np.ndarray, partner_scores: np.ndarray | None, mode: EnsembleMode = "mean",
    weight: float = 0.5, *, partner_probabilities: np.ndarray | None = None,
) -> np.ndarray:
    """Return ``(C, H, W)`` probabilities for ``mode``; ``partner_scores`` may be ``None`` only with ``"off"``.

    ``weight`` is DeconvNet's share in ``"weighted"`` (0 = the partner alone, 1 = DeconvNet alone).
    ``partner_probabilities``: ``softmax(partner_scores)`` when the caller has it already (a GUI re-combining
    the same image), used by ``"mean"`` and ``"weighted"``.
    """
    if mode not in ENSEMBLE_MODES:
        raise ValueError(f"ensemble mode must be one of {ENSEMBLE_MODES}, not {mode!r}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"ensemble weight must be in [0, 1], got {weight}")
    if mode == "off":
        return softmax(deconv_scores)
    if partner_scores is None:
        raise ValueError(f"ensemble mode {mode!r} needs the partner model's scores")
    if partner_scores.shape != deconv_scores.shape:
        raise ValueError(f"score maps differ in shape: {deconv_scores.shape} vs {partner_scores.shape}")
    if mode in ("mean", "weighted"):
        share = np.float32(0.5 if mode == "mean" else weight)
        partner = softmax(partner_scores) if partner_probabilities is None else partner_probabilities
        out = softmax(deconv_scores)
        out *= share
        out += partner * (np.float32(1.0) - share)
        return out
    return softmax(np.maximum(deconv_scores, 0.0) * np.maximum(partner_scores, 0.0))
