"""Dense CRF: smoothing toward image edges, agreement with pydensecrf2, valid output, edge cases."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from deconv_gui.core.synthetic import make_scene
from deconv_gui.postprocess.crf import CRFParams, DenseCRF, dense_crf, dense_crf_reference, pixel_features
from deconv_gui.postprocess.permutohedral import LatticeFilter, build_lattice

NORMALIZATIONS = ("none", "symmetric")


def _two_region_scene(height: int = 60, width: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Image with a wavy vertical boundary between two colours (+ mild noise), and its true labels."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    boundary = width / 2 + 8 * np.sin(ys / 7.0)
    labels = (xs >= boundary).astype(np.int64)
    colours = np.array([[200, 60, 40], [40, 90, 210]], np.float64)
    image = colours[labels] + rng.normal(0, 4, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _salted_probs(labels: np.ndarray, classes: int, flip: float, seed: int) -> np.ndarray:
    """Right label at 0.8 except a ``flip`` fraction of pixels that confidently (0.8) name a wrong class."""
    rng = np.random.default_rng(seed)
    wrong = (labels + rng.integers(1, classes, labels.shape)) % classes
    named = np.where(rng.random(labels.shape) < flip, wrong, labels)
    probs = np.full((classes, *labels.shape), 0.2 / (classes - 1), np.float32)
    np.put_along_axis(probs, named[None], 0.8, axis=0)
    return probs


def _smooth_noisy_probs(height: int, width: int, classes: int, seed: int) -> np.ndarray:
    """Random smooth class fields plus pixel noise, softmaxed: a plausible, ambiguous network output."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, 2.0, (classes, height // 10 + 2, width // 10 + 2))
    fine = np.kron(coarse, np.ones((10, 10)))[:, :height, :width] + rng.normal(0, 0.7, (classes, height, width))
    exp = np.exp(fine - fine.max(0))
    return (exp / exp.sum(0)).astype(np.float32)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_crf_removes_salt_noise_and_follows_the_edge(normalization: str) -> None:
    image, labels = _two_region_scene()
    probs = _salted_probs(labels, classes=2, flip=0.3, seed=1)
    before = np.mean(probs.argmax(0) != labels)
    refined = dense_crf(image, probs, CRFParams(normalization=normalization))
    after = np.mean(refined.argmax(0) != labels)
    assert before > 0.25
    assert after < before / 10, (before, after)
    # Along the wavy boundary (within 2 px of it) the labels follow the image edge too.
    ys, xs = np.mgrid[0:labels.shape[0], 0:labels.shape[1]]
    near_edge = np.abs(xs - (labels.shape[1] / 2 + 8 * np.sin(ys / 7.0))) < 2
    assert np.mean(refined.argmax(0)[near_edge] != labels[near_edge]) < 0.1


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize(("height", "width", "classes", "seed"), [(120, 160, 5, 3), (100, 80, 21, 4)])
def test_matches_pydensecrf2(normalization: str, height: int, width: int, classes: int, seed: int) -> None:
    pytest.importorskip("pydensecrf.densecrf", reason="pydensecrf2 (the C++ reference) is not installed")
    image = make_scene(seed, height=height, width=width).image
    probs = _smooth_noisy_probs(height, width, classes, seed)
    params = CRFParams(normalization=normalization)
    ours = dense_crf(image, probs, params)
    reference = dense_crf_reference(image, probs, params)
    agreement = np.mean(ours.argmax(0) == reference.argmax(0))
    assert agreement >= 0.999, agreement
    assert np.abs(ours - reference).max() < 1e-3
    assert np.mean(probs.argmax(0) == reference.argmax(0)) < 0.99  # the CRF did change labels


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_output_is_a_probability_map(normalization: str) -> None:
    image = make_scene(5, height=40, width=56).image
    probs = _smooth_noisy_probs(40, 56, 4, seed=5)
    out = dense_crf(image, probs, CRFParams(iterations=3, normalization=normalization))
    assert out.shape == probs.shape and out.dtype == np.float32
    assert np.all(out >= 0) and np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-5)


def test_zero_iterations_returns_the_input() -> None:
    image = make_scene(6, height=30, width=40).image
    probs = _smooth_noisy_probs(30, 40, 3, seed=6)
    out = dense_crf(image, probs, CRFParams(iterations=0))
    np.testing.assert_allclose(out, probs, rtol=1e-5, atol=1e-7)


def test_single_class_and_reuse() -> None:
    image = make_scene(7, height=24, width=32).image
    np.testing.assert_allclose(dense_crf(image, np.ones((1, 24, 32), np.float32)), 1.0)
    crf = DenseCRF(image, CRFParams(iterations=4))
    probs = _smooth_noisy_probs(24, 32, 3, seed=7)
    np.testing.assert_array_equal(crf.refine(probs), crf.refine(probs))
    np.testing.assert_allclose(crf.refine(probs), dense_crf(image, probs, CRFParams(iterations=4)), atol=1e-6)


def test_bad_inputs_raise() -> None:
    image = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(20, 30, 3\).*\(4, 21, 30\)"):
        dense_crf(image, np.full((4, 21, 30), 0.25, np.float32))
    with pytest.raises(ValueError, match="probs must be"):
        dense_crf(image, np.full((20, 30), 0.25, np.float32))
    with pytest.raises(ValueError, match="uint8"):
        dense_crf(image.astype(np.float32), np.full((2, 20, 30), 0.5, np.float32))
    with pytest.raises(ValueError, match="uint8"):
        dense_crf(np.zeros((20, 30, 4), np.uint8), np.full((2, 20, 30), 0.5, np.float32))
    with pytest.raises(ValueError, match="normalization"):
        CRFParams(normalization="before")
    with pytest.raises(ValueError, match="iterations"):
        CRFParams(iterations=-1)
    with pytest.raises(ValueError, match="bilateral_srgb"):
        CRFParams(bilateral_srgb=0)
    with pytest.raises(ValueError, match="device"):
        DenseCRF(image, device="tpu")


def test_lattice_filter_matches_the_numpy_reference() -> None:
    """The torch sparse products equal the lattice's plain splat/blur/slice, for both normalisations."""
    image = make_scene(8, height=30, width=40).image
    gaussian = build_lattice(pixel_features(30, 40, 3.0))
    bilateral = build_lattice(pixel_features(30, 40, 20.0, image, 3.0))
    values = np.random.default_rng(8).random((30 * 40, 3)).astype(np.float32)
    raw = 3.0 * gaussian.filter(values) + 5.0 * bilateral.filter(values)
    got = LatticeFilter([(gaussian, 3.0), (bilateral, 5.0)], "none", torch.device("cpu"))(torch.from_numpy(values))
    np.testing.assert_allclose(got.numpy(), raw, rtol=1e-4, atol=1e-3)
    norm = 1 / np.sqrt(bilateral.filter(np.ones((1200, 1), np.float32)))
    expected = norm * bilateral.filter(norm * values)
    got = LatticeFilter([(bilateral, 1.0)], "symmetric", torch.device("cpu"))(torch.from_numpy(values))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_lattice_approximates_a_gaussian() -> None:
    """The 2-D lattice filter of an impulse is a bell near the impulse, of roughly the Gaussian's width and
    mass (the permutohedral approximation is coarse: off-centre by a pixel, a little wider)."""
    lattice = build_lattice(pixel_features(41, 41, 3.0))
    impulse = np.zeros((41 * 41, 1), np.float32)
    impulse[20 * 41 + 20] = 1.0
    response = lattice.filter(impulse)[:, 0].reshape(41, 41)
    peak = np.unravel_index(response.argmax(), response.shape)
    assert abs(int(peak[0]) - 20) <= 1 and abs(int(peak[1]) - 20) <= 1
    assert 0.5 < response[20, 23] / response.max() < 0.9  # one sigma: exp(-1/2) = 0.61 for the true Gaussian
    assert response[20, 8] < 0.01 * response.max() and response[32, 20] < 0.01 * response.max()  # four sigma
    assert 40 < response.sum() < 60  # the true Gaussian's mass is 2π·3² = 56.5


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback of a machine without CUDA")
def test_cuda_request_falls_back_to_cpu(caplog: pytest.LogCaptureFixture) -> None:
    image = make_scene(9, height=20, width=24).image
    probs = _smooth_noisy_probs(20, 24, 3, seed=9)
    with caplog.at_level(logging.WARNING):
        out = dense_crf(image, probs, CRFParams(iterations=2), device="cuda")
    assert "CUDA" in caplog.text
    np.testing.assert_allclose(out, dense_crf(image, probs, CRFParams(iterations=2)), atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_cuda_matches_cpu(normalization: str) -> None:
    image = make_scene(10, height=90, width=120).image
    probs = _smooth_noisy_probs(90, 120, 21, seed=10)
    params = CRFParams(normalization=normalization)
    cpu = dense_crf(image, probs, params)
    cuda = dense_crf(image, probs, params, device="cuda")
    assert np.mean(cpu.argmax(0) == cuda.argmax(0)) >= 0.999
    assert np.abs(cpu - cuda).max() < 1e-3
