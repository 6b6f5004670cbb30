"""Aggregation by hand on tiny maps (paper Eq. 1 max / Eq. 2 sum, starting from 0)."""

import numpy as np
import pytest

from deconv_gui.core.aggregation import (
    aggregate_instances,
    bilinear_weights,
    label_map,
    resize_to_box,
    softmax,
    visible_window,
)


def test_bilinear_weights_match_cv2_resize() -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    src = rng.normal(size=(7, 5)).astype(np.float32)
    for out_h, out_w in [(11, 13), (3, 2), (7, 5), (20, 9)]:
        expected = cv2.resize(src, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        got = bilinear_weights(out_h, 7) @ src @ bilinear_weights(out_w, 5).T
        # cv2 uses fixed-point weights for some paths; allow its rounding
        np.testing.assert_allclose(got, expected, atol=2e-3)


def test_identity_resize_and_partial_rows() -> None:
    np.testing.assert_allclose(bilinear_weights(4, 4), np.eye(4), atol=1e-7)
    full = bilinear_weights(9, 3)
    np.testing.assert_allclose(bilinear_weights(9, 3, 2, 6), full[2:6])


def test_visible_window_clips_box_outside_image() -> None:
    rows, cols, brows, bcols = visible_window((-2, -1, 3, 2), (4, 5))
    assert (rows, cols) == (slice(0, 2), slice(0, 3))
    assert (brows, bcols) == (slice(1, 3), slice(2, 5))
    assert visible_window((10, 10, 12, 12), (4, 5)) is None


def test_max_aggregation_by_hand() -> None:
    # Two classes, two constant 2×2 score maps pasted at 1:1 scale into a 3×4 image.
    a = np.zeros((2, 2, 2), np.float32)
    a[0], a[1] = 1.0, 3.0
    b = np.zeros((2, 2, 2), np.float32)
    b[0], b[1] = 2.0, -5.0  # negative scores are clipped by the 0 start
    boxes = np.array([[0, 0, 2, 2], [1, 1, 3, 3]])
    acc = aggregate_instances(np.stack([a, b]), boxes, (3, 4), mode="max")
    expected0 = np.array([[1, 1, 0, 0], [1, 2, 2, 0], [0, 2, 2, 0]], np.float32)
    expected1 = np.array([[3, 3, 0, 0], [3, 3, 0, 0], [0, 0, 0, 0]], np.float32)
    np.testing.assert_array_equal(acc[0], expected0)
    np.testing.assert_array_equal(acc[1], expected1)
    labels = label_map(softmax(acc))
    # uncovered pixels (all-zero scores) fall to class 0 = background
    np.testing.assert_array_equal(labels, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])


def test_sum_aggregation_and_include_mask() -> None:
    a = np.full((1, 2, 2), 1.5, np.float32)
    b = np.full((1, 2, 2), 2.0, np.float32)
    boxes = np.array([[0, 0, 2, 2], [1, 0, 3, 2]])
    acc = aggregate_instances(np.stack([a, b]), boxes, (2, 3), mode="sum")
    np.testing.assert_array_equal(acc[0], [[1.5, 3.5, 2.0], [1.5, 3.5, 2.0]])
    only_b = aggregate_instances(np.stack([a, b]), boxes, (2, 3), mode="max", include=np.array([False, True]))
    np.testing.assert_array_equal(only_b[0], [[0, 2, 2], [0, 2, 2]])


def test_resize_to_box_scales_and_clips() -> None:
    scores = np.arange(4, dtype=np.float32).reshape(1, 2, 2)  # [[0, 1], [2, 3]]
    patch, (rows, cols) = resize_to_box(scores, (-2, 0, 2, 4), (4, 4))
    assert (rows, cols) == (slice(0, 4), slice(0, 2))
    # the visible right half of a 4×4 upsampling of [[0,1],[2,3]]
    full = bilinear_weights(4, 2) @ scores[0] @ bilinear_weights(4, 2).T
    np.testing.assert_allclose(patch[0], full[:, 2:])


def test_bad_mode_and_mismatch() -> None:
    with pytest.raises(ValueError, match="max"):
        aggregate_instances(np.zeros((1, 1, 2, 2)), np.array([[0, 0, 1, 1]]), (2, 2), mode="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 boxes"):
        aggregate_instances(np.zeros((1, 1, 2, 2)), np.array([[0, 0, 1, 1], [0, 0, 1, 1]]), (2, 2))


def test_aggregation_from_an_initial_whole_image_map() -> None:
    a = np.full((2, 2, 2), -1.0, np.float32)
    a[1] = 4.0
    initial = np.zeros((2, 3, 3), np.float32)
    initial[0] = 2.0  # e.g. "sky" everywhere from a whole-image pass
    initial[1] = -3.0
    acc = aggregate_instances(a[None], np.array([[0, 0, 2, 2]]), (3, 3), mode="max", initial=initial)
    np.testing.assert_array_equal(acc[0], np.full((3, 3), 2.0))
    np.testing.assert_array_equal(acc[1], [[4, 4, -3], [4, 4, -3], [-3, -3, -3]])
    assert initial[1, 0, 0] == -3.0  # the caller's map is not modified


def test_two_tap_resize_equals_the_interpolation_matrices() -> None:
    from deconv_gui.core.aggregation import bilinear_weights

    rng = np.random.default_rng(4)
    scores = rng.standard_normal((3, 17, 13)).astype(np.float32)
    box = (-5, 2, 30, 40)  # partly outside a 30×25 image
    patch, (rows, cols) = resize_to_box(scores, box, (30, 25))
    wy = bilinear_weights(38, 17, rows.start - 2, rows.stop - 2)
    wx = bilinear_weights(35, 13, cols.start + 5, cols.stop + 5)
    np.testing.assert_allclose(patch, np.einsum("yh,chw,xw->cyx", wy, scores, wx), rtol=1e-5, atol=1e-5)
