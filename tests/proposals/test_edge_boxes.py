"""Edge Box proposals: selection rules, enlargement, fallbacks, caller-given boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deconv_gui.core.boxes import box_iou, enlarge_boxes
from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.proposals.edge_boxes import (
    EdgeBoxConfig,
    EdgeBoxProposer,
    Proposals,
    proposals_from_boxes,
    select_proposals,
)

RECT = np.array([100.0, 80.0, 300.0, 240.0])  # x0, y0, x1, y1 exclusive
DISC_BOX = np.array([330.0, 190.0, 450.0, 310.0])


def big_objects_scene() -> np.ndarray:
    """``(360, 480, 3) uint8``: a 200×160 red rectangle and a 120-px blue disc on a noisy grey background."""
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(110, 4, (360, 480, 3)), 0, 255).astype(np.uint8)
    img[80:240, 100:300] = (230, 60, 40)
    yy, xx = np.mgrid[0:360, 0:480]
    img[(yy + 0.5 - 250) ** 2 + (xx + 0.5 - 390) ** 2 <= 60**2] = (30, 40, 200)
    return img


@pytest.fixture(scope="module")
def scene_proposals() -> Proposals:
    return EdgeBoxProposer().propose(big_objects_scene())


def test_propose_returns_top_n_descending(scene_proposals: Proposals) -> None:
    p = scene_proposals
    assert 1 <= len(p) <= EdgeBoxConfig().top_n
    assert p.boxes.shape == p.raw_boxes.shape == (len(p), 4)
    assert p.boxes.dtype == p.raw_boxes.dtype == np.float64
    assert p.scores.shape == (len(p),) and p.scores.dtype == np.float32
    assert np.all(np.diff(p.scores) <= 0)
    assert np.all(p.scores > 0)


def test_size_filter_measures_the_enlarged_box(scene_proposals: Proposals) -> None:
    p = scene_proposals
    shorter = np.minimum(p.boxes[:, 2] - p.boxes[:, 0], p.boxes[:, 3] - p.boxes[:, 1])
    assert shorter.min() >= 112.0
    raw_shorter = np.minimum(p.raw_boxes[:, 2] - p.raw_boxes[:, 0], p.raw_boxes[:, 3] - p.raw_boxes[:, 1])
    assert raw_shorter.min() >= 112.0 / 1.2 - 1e-9


def test_size_filter_on_raw_boxes_when_asked() -> None:
    p = EdgeBoxProposer(EdgeBoxConfig(min_side_after_enlarge=False)).propose(big_objects_scene())
    raw_shorter = np.minimum(p.raw_boxes[:, 2] - p.raw_boxes[:, 0], p.raw_boxes[:, 3] - p.raw_boxes[:, 1])
    assert raw_shorter.min() >= 112.0


def test_boxes_are_raw_boxes_enlarged_about_the_centre(scene_proposals: Proposals) -> None:
    p = scene_proposals
    raw_w = p.raw_boxes[:, 2] - p.raw_boxes[:, 0]
    np.testing.assert_allclose(p.boxes[:, 2] - p.boxes[:, 0], 1.2 * raw_w)
    np.testing.assert_allclose(p.boxes[:, [0, 2]].mean(axis=1), p.raw_boxes[:, [0, 2]].mean(axis=1))
    np.testing.assert_allclose(p.boxes[:, [1, 3]].mean(axis=1), p.raw_boxes[:, [1, 3]].mean(axis=1))
    np.testing.assert_allclose(p.boxes, enlarge_boxes(p.raw_boxes, 1.2))


def test_big_objects_are_found(scene_proposals: Proposals) -> None:
    iou = box_iou(np.stack([RECT, DISC_BOX]), scene_proposals.raw_boxes)
    assert iou[0].max() >= 0.85  # the rectangle, nearly exactly
    assert iou[1].max() >= 0.7
    assert iou[0, 0] >= 0.7  # and it is the best proposal


def test_candidates_are_tight_boxes_in_image_coordinates() -> None:
    proposer = EdgeBoxProposer(EdgeBoxConfig(max_boxes=300))
    boxes, scores = proposer.candidates(big_objects_scene())
    assert 0 < len(boxes) <= 300 and scores.shape == (len(boxes),)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    assert boxes[:, :2].min() >= 0 and boxes[:, 2].max() <= 480 and boxes[:, 3].max() <= 360
    # OpenCV's 1-based x, y are converted: the best box hugs the rectangle to within a few pixels per side.
    best = boxes[box_iou(RECT[None], boxes)[0].argmax()]
    assert np.abs(best - RECT).max() <= 6


def test_results_do_not_depend_on_earlier_images() -> None:
    proposer = EdgeBoxProposer()
    scene = big_objects_scene()
    first_boxes, first_scores = proposer.candidates(scene)
    proposer.candidates(np.ascontiguousarray(scene[::-1, ::-1]))  # a different image in between
    again_boxes, again_scores = proposer.candidates(scene)
    np.testing.assert_array_equal(first_boxes, again_boxes)
    np.testing.assert_array_equal(first_scores, again_scores)


def test_grayscale_and_rgba_inputs() -> None:
    scene = big_objects_scene()
    gray = scene.mean(axis=2).astype(np.uint8)
    rgba = np.concatenate([scene, np.full((360, 480, 1), 255, np.uint8)], axis=2)
    proposer = EdgeBoxProposer()
    assert len(proposer.propose(gray)) >= 1
    np.testing.assert_array_equal(proposer.propose(rgba).boxes, proposer.propose(scene).boxes)


@pytest.mark.parametrize("shape", [(360, 480, 2), (360, 480, 3, 1), (480,)])
def test_bad_image_shapes_raise_value_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        EdgeBoxProposer().propose(np.zeros(shape, np.uint8))


def test_tiny_image_falls_back_to_the_whole_image() -> None:
    image = np.random.default_rng(1).integers(0, 255, (60, 80, 3), np.uint8)
    p = EdgeBoxProposer().propose(image)
    assert len(p) == 1
    np.testing.assert_array_equal(p.boxes, [[0.0, 0.0, 80.0, 60.0]])
    np.testing.assert_array_equal(p.raw_boxes, p.boxes)


def test_select_proposals_keeps_order_and_limit() -> None:
    config = EdgeBoxConfig(top_n=2, min_side=100.0, enlarge=1.0)
    boxes = np.array([[0, 0, 50, 200], [0, 0, 150, 150], [10, 10, 200, 200], [0, 0, 300, 300]], float)
    scores = np.array([0.9, 0.2, 0.5, 0.1], np.float32)
    p = select_proposals(boxes, scores, (400, 400), config)
    np.testing.assert_array_equal(p.raw_boxes, boxes[[2, 1]])  # the 50-px-wide box is dropped
    np.testing.assert_array_equal(p.scores, scores[[2, 1]])


def test_missing_edge_model_in_config_raises_with_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.yml.gz"
    with pytest.raises(DeconvGuiError) as info:
        EdgeBoxProposer(EdgeBoxConfig(edge_model_path=str(missing)))
    assert str(missing) in str(info.value)


def test_proposals_from_boxes() -> None:
    p = proposals_from_boxes([[10, 20, 110, 70]], (100, 200), enlarge=1.2)
    np.testing.assert_allclose(p.raw_boxes, [[10, 20, 110, 70]])
    np.testing.assert_allclose(p.boxes, [[0, 15, 120, 75]])
    np.testing.assert_array_equal(p.scores, np.ones(1, np.float32))
    single = proposals_from_boxes(np.array([0, 0, 5, 5]), (10, 10), scores=np.array([0.3]))
    assert single.boxes.shape == (1, 4) and single.scores[0] == pytest.approx(0.3)


@pytest.mark.parametrize(
    "boxes",
    [
        np.zeros((2, 3)),  # wrong width
        [[0, 0, np.nan, 10]],  # not finite
        [[0, 0, np.inf, 10]],
        [[10, 0, 10, 10]],  # zero width
        [[0, 10, 10, 5]],  # negative height
        [[200, 0, 250, 10]],  # entirely right of a 100-px-wide image
    ],
)
def test_proposals_from_boxes_rejects_bad_boxes(boxes: object) -> None:
    with pytest.raises(ValueError):
        proposals_from_boxes(boxes, (50, 100))


def test_proposals_from_boxes_rejects_bad_scores_and_enlarge() -> None:
    with pytest.raises(ValueError):
        proposals_from_boxes([[0, 0, 5, 5]], (10, 10), scores=[1.0, 2.0])
    with pytest.raises(ValueError):
        proposals_from_boxes([[0, 0, 5, 5]], (10, 10), enlarge=0.0)
