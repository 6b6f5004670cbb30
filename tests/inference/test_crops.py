"""Crops: zero outside the image, bilinear resize to S×S, consistent with the paste-back convention."""

import cv2
import numpy as np

from deconv_gui.core.aggregation import resize_to_box
from deconv_gui.inference.crops import crop_and_resize, crop_batch, integer_boxes


def test_crop_inside_image_equals_cv2_resize() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    crop = crop_and_resize(image, np.array([10, 5, 50, 45]), 20)
    expected = cv2.resize(image[5:45, 10:50], (20, 20), interpolation=cv2.INTER_LINEAR)
    assert np.abs(crop.astype(int) - expected.astype(int)).max() <= 1


def test_outside_is_zero() -> None:
    image = np.full((40, 40, 3), 200, np.uint8)
    crop = crop_and_resize(image, np.array([-40, 0, 40, 40]), 40)  # left half outside
    assert crop[:, :18].max() == 0
    assert crop[:, 22:].min() == 200


def test_integer_boxes_and_batch_shapes() -> None:
    boxes = integer_boxes(np.array([[0.4, 0.6, 10.2, 10.5], [5, 5, 5.1, 5.2]]))
    assert boxes.dtype == np.int64
    np.testing.assert_array_equal(boxes[0], [0, 1, 10, 11])
    assert boxes[1, 2] > boxes[1, 0] and boxes[1, 3] > boxes[1, 1]
    image = np.zeros((30, 30, 3), np.uint8)
    assert crop_batch(image, boxes, 16).shape == (2, 16, 16, 3)


def test_crop_then_paste_back_round_trips_a_smooth_image() -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    ramp = ((xx * 3 + yy * 2) % 256).astype(np.float32)
    image = np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8)
    box = np.array([8, 4, 56, 60])
    crop = crop_and_resize(image, box, 32).astype(np.float32)
    back, (rows, cols) = resize_to_box(crop.transpose(2, 0, 1), box, (64, 64))
    err = np.abs(back[0] - ramp[rows, cols])
    assert err[2:-2, 2:-2].mean() < 2.0  # no half-pixel shift between crop and paste-back
