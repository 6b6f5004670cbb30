"""Crops: zero (or edge-repeated) outside the image, bilinear resize to S×S, consistent with the paste-back
convention; scores over the padding replaced by the nearest in-image ones."""

import cv2
import numpy as np
import pytest

from deconv_gui.core.aggregation import resize_to_box
from deconv_gui.proposals.crops import (
    crop_and_resize,
    crop_batch,
    inside_span,
    integer_boxes,
    replicate_inside_scores,
)


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


def test_edge_fill_repeats_the_border_pixels() -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    crop = crop_and_resize(image, np.array([-40, 0, 40, 40]), 40, fill="edge")  # left half outside
    # each crop row's outside part repeats that row's first image pixel (rows are not resampled here)
    # (OpenCV's fixed-point bilinear weights may round by one level)
    assert np.abs(crop[:, :19].astype(int) - np.repeat(image[:, :1], 19, axis=1).astype(int)).max() <= 1
    inside = [crop_and_resize(image, np.array([5, 5, 30, 30]), 20, fill=f).astype(int) for f in ("edge", "zeros")]
    assert np.abs(inside[0] - inside[1]).max() <= 1  # a box inside the image: the same crop


@pytest.mark.parametrize("start", [-37, -5, 0, 3, 19])
@pytest.mark.parametrize("n, size", [(17, 224), (300, 224), (40, 8), (5, 7)])
def test_inside_span_matches_the_crop_sampling(start: int, n: int, size: int) -> None:
    image_len = 30
    u = np.arange(size)
    source = start + (u + 0.5) * n / size - 0.5  # what crop_and_resize samples
    inside = np.flatnonzero((source >= -0.5) & (source <= image_len - 0.5))
    first, last = inside_span(start, start + n, image_len, size)
    if len(inside):
        assert (first, last) == (inside[0], inside[-1])
    else:
        assert first > last


def test_pasted_border_pixels_read_only_scores_of_image_content() -> None:
    # a crop whose box reaches 20 px past the left and top image borders: the network's scores over the zero
    # padding say class 1, over the image class 0; after the replacement no visible pixel mixes in class 1
    box = np.array([-20, -20, 44, 44])
    size = 32
    scores = np.zeros((1, 2, size, size), np.float32)
    scores[0, 1] = 5.0
    scores[0, 1, 10:, 10:] = 0.0  # samples 10.. read the image (box px -20 + (u + 0.5) * 2 - 0.5 >= -0.5)
    first, _ = inside_span(-20, 44, 64, size)
    assert first == 10
    before, _ = resize_to_box(scores[0], box, (64, 64))
    assert before[1, 0, 0] > 0  # the border pixel reads half of the padding's score
    replicate_inside_scores(scores, box[None], (64, 64))
    after, (rows, cols) = resize_to_box(scores[0], box, (64, 64))
    assert (rows, cols) == (slice(0, 44), slice(0, 44))
    assert after[1].max() == 0.0
    assert scores[0, 1].max() == 0.0  # the padding's scores are now copies of the inside ones
