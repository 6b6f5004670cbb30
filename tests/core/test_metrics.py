"""ConfusionMatrix: hand-computed values on tiny maps, void handling, nan-mean, merge, table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deconv_gui.core.metrics import ConfusionMatrix

# 2×3 maps, 3 classes.  Pixel pairs (gt → pred): 0→0, 0→1, 1→1, 1→1, 2→0, 255→2 (void, ignored).
TARGET = np.array([[0, 0, 1], [1, 2, 255]], np.uint8)
PRED = np.array([[0, 1, 1], [1, 0, 2]], np.uint8)


def test_matrix_counts_by_hand() -> None:
    cm = ConfusionMatrix(3)
    cm.update(TARGET, PRED)
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 0]], np.int64)
    np.testing.assert_array_equal(cm.mat, expected)
    assert cm.mat.dtype == np.int64


def test_iou_accuracy_by_hand() -> None:
    cm = ConfusionMatrix(3)
    cm.update(TARGET, PRED)
    # class 0: TP 1, FP 1 (2→0), FN 1 (0→1) → 1/3; class 1: TP 2, FP 1, FN 0 → 2/3;
    # class 2: TP 0, FP 0 (the 2 predicted on void is not counted), FN 1 → 0.
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 0.0])
    assert cm.mean_iou() == pytest.approx(1 / 3)
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)
    # recall: class 0 1/2, class 1 2/2, class 2 0/1
    assert cm.mean_class_accuracy() == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_void_is_never_a_false_positive() -> None:
    cm = ConfusionMatrix(2)
    cm.update(np.full((4, 4), 255, np.uint8), np.ones((4, 4), np.uint8))
    assert cm.mat.sum() == 0
    assert math.isnan(cm.mean_iou()) and math.isnan(cm.pixel_accuracy())


def test_absent_class_is_nan_and_left_out_of_mean() -> None:
    cm = ConfusionMatrix(4)
    cm.update(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]))
    iou = cm.iou()
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    np.testing.assert_allclose(iou[:2], [1 / 2, 2 / 3])
    assert cm.mean_iou() == pytest.approx((1 / 2 + 2 / 3) / 2)
    # A class predicted but absent from the ground truth has IoU 0, not nan.
    cm.update(np.array([0]), np.array([3]))
    assert cm.iou()[3] == 0.0 and math.isnan(cm.iou()[2])


def test_prediction_out_of_range_raises_but_ignored_under_void() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="outside"):
        cm.update(np.array([0, 1]), np.array([0, 7]))
    cm.update(np.array([0, 255]), np.array([0, 7]))  # 7 sits on a void pixel: not counted
    assert cm.mat.sum() == 1
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 3)))


def test_merge_equals_joint_update_and_reset() -> None:
    rng = np.random.default_rng(0)
    t1, p1, t2, p2 = (rng.integers(0, 5, (7, 9)) for _ in range(4))
    joint = ConfusionMatrix(5)
    joint.update(t1, p1)
    joint.update(t2, p2)
    a, b = ConfusionMatrix(5), ConfusionMatrix(5)
    a.update(t1, p1)
    b.update(t2, p2)
    a.merge(b)
    np.testing.assert_array_equal(a.mat, joint.mat)
    with pytest.raises(ValueError):
        a.merge(ConfusionMatrix(4))
    a.reset()
    assert a.mat.sum() == 0


def test_table_lists_classes_and_summary() -> None:
    cm = ConfusionMatrix(3)
    cm.update(TARGET, PRED)
    text = cm.table(["background", "cat", "dog"])
    lines = text.splitlines()
    assert any(line.startswith("cat") and "66.67" in line for line in lines)
    assert lines[-3].startswith("mIoU") and "33.33" in lines[-3]
    assert lines[-2].startswith("pixel acc") and "60.00" in lines[-2]
    with pytest.raises(ValueError):
        cm.table(["a", "b"])


def test_camvid_sized_maps_with_void() -> None:
    rng = np.random.default_rng(1)
    target = rng.integers(0, 12, (360, 480)).astype(np.uint8)
    target[target == 11] = 255
    pred = rng.integers(0, 11, (360, 480)).astype(np.uint8)
    cm = ConfusionMatrix(11)
    cm.update(target, pred)
    assert cm.mat.sum() == np.count_nonzero(target != 255)
    assert np.trace(cm.mat) == np.count_nonzero(target == pred)
