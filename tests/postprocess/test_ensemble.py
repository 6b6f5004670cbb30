"""EDeconvNet ensemble rules: mean of probabilities (paper), product of ReLU'd scores (original code), off."""

import numpy as np
import pytest

from deconv_gui.core.aggregation import softmax
from deconv_gui.postprocess.ensemble import ensemble_probabilities


def _maps() -> tuple[np.ndarray, np.ndarray]:
    deconv = np.array([[[2.0]], [[0.0]], [[-1.0]]], np.float32)  # (3, 1, 1)
    partner = np.array([[[0.0]], [[3.0]], [[1.0]]], np.float32)
    return deconv, partner


def test_mean_is_average_of_softmaxes() -> None:
    d, p = _maps()
    out = ensemble_probabilities(d, p, "mean")
    np.testing.assert_allclose(out, (softmax(d) + softmax(p)) / 2, rtol=1e-6)
    np.testing.assert_allclose(out.sum(0), 1.0, rtol=1e-6)


def test_product_relus_then_softmax() -> None:
    d, p = _maps()
    out = ensemble_probabilities(d, p, "product")
    # relu(d) * relu(p) = [0, 0, 0] → uniform
    np.testing.assert_allclose(out[:, 0, 0], [1 / 3] * 3, rtol=1e-6)
    d2 = np.array([[[2.0]], [[1.0]], [[3.0]]], np.float32)
    out2 = ensemble_probabilities(d2, p, "product")
    np.testing.assert_allclose(out2[:, 0, 0], softmax(np.array([0.0, 3.0, 3.0]))[:], rtol=1e-6)


def test_off_ignores_partner_and_validation() -> None:
    d, p = _maps()
    np.testing.assert_allclose(ensemble_probabilities(d, p, "off"), softmax(d))
    np.testing.assert_allclose(ensemble_probabilities(d, None, "off"), softmax(d))
    with pytest.raises(ValueError, match="partner"):
        ensemble_probabilities(d, None, "mean")
    with pytest.raises(ValueError, match="shape"):
        ensemble_probabilities(d, p[:2], "mean")
    with pytest.raises(ValueError, match="one of"):
        ensemble_probabilities(d, p, "max")  # type: ignore[arg-type]
