"""The winner of max-aggregation per pixel, by hand on tiny constant maps, and against the aggregation itself."""

import numpy as np
import pytest

from deconv_gui.core.aggregation import aggregate_instances, label_map, resize_to_box
from deconv_gui.core.winners import (
    WINNER_BASE,
    WINNER_NONE,
    pixel_sources,
    pixel_winner,
    pixels_won,
    sample_box,
    winner_colours,
    winner_map,
    winner_rgba,
)

HW = (10, 10)


def constant(values: list[float], s: int = 4) -> np.ndarray:
    """``(C, s, s)`` float16 maps, class ``c`` constant ``values[c]`` (a constant resizes to itself exactly)."""
    return np.stack([np.full((s, s), v, np.float16) for v in values])


def two_boxes() -> tuple[np.ndarray, np.ndarray]:
    # proposal 0 covers x, y in [0, 6); proposal 1 covers [4, 10): they overlap on [4, 6)²
    scores = np.stack([constant([1.0, 3.0]), constant([0.0, 5.0])])
    boxes = np.array([[0, 0, 6, 6], [4, 4, 10, 10]], np.int64)
    return scores, boxes


def test_two_overlapping_boxes_by_hand() -> None:
    scores, boxes = two_boxes()
    label = np.ones(HW, np.uint8)  # class 1 everywhere
    winner, best = winner_map(scores, boxes, HW, label)
    assert winner.dtype == np.int16 and winner.shape == HW
    assert winner[1, 1] == 0 and best[1, 1] == 3.0  # only proposal 0 covers it
    assert winner[5, 5] == 1 and best[5, 5] == 5.0  # overlap: 5 > 3
    assert winner[8, 8] == 1
    assert winner[8, 1] == WINNER_NONE and winner[1, 8] == WINNER_NONE and best[8, 1] == 0.0  # no box
    assert pixels_won(winner, 2).tolist() == [36 - 4, 36]


def test_the_label_picks_the_class_whose_winner_is_asked() -> None:
    scores, boxes = two_boxes()
    label = np.zeros(HW, np.uint8)  # class 0: proposal 0 scores 1, proposal 1 scores 0 (not above the 0 floor)
    winner, _ = winner_map(scores, boxes, HW, label)
    assert winner[5, 5] == 0 and winner[1, 1] == 0
    assert winner[8, 8] == WINNER_NONE


def test_base_pass_wins_where_no_proposal_beats_it() -> None:
    scores, boxes = two_boxes()
    label = np.ones(HW, np.uint8)
    base = np.zeros((2, *HW), np.float32)
    base[1] = 4.0
    base[1, 0, 0] = 3.0  # a tie with proposal 0: the base was there first and keeps it
    winner, best = winner_map(scores, boxes, HW, label, base_scores=base)
    assert winner[1, 1] == WINNER_BASE and best[1, 1] == 4.0  # 3 < 4
    assert winner[0, 0] == WINNER_BASE
    assert winner[5, 5] == 1  # 5 > 4
    assert winner[8, 1] == WINNER_BASE  # no box: the base
    assert (winner != WINNER_NONE).all()


def test_include_ties_and_negative_scores() -> None:
    scores, boxes = two_boxes()
    label = np.ones(HW, np.uint8)
    winner, _ = winner_map(scores, boxes, HW, label, include=np.array([True, False]))
    assert winner[5, 5] == 0 and winner[8, 8] == WINNER_NONE  # proposal 1 left out
    # a duplicate of proposal 1: ties go to the lowest index
    dup = np.concatenate([scores, scores[1:]])
    winner, _ = winner_map(dup, np.concatenate([boxes, boxes[1:]]), HW, label)
    assert winner[8, 8] == 1 and pixels_won(winner, 3)[2] == 0
    # a proposal that scores the class below 0 never beats the 0 floor
    winner, _ = winner_map(constant([0.0, -1.0])[None], np.array([[0, 0, 10, 10]]), HW, label)
    assert (winner == WINNER_NONE).all()


def test_boxes_past_the_image_and_outside_it() -> None:
    scores = np.stack([constant([0.0, 2.0]), constant([0.0, 9.0])])
    boxes = np.array([[-5, -5, 3, 3], [20, 20, 30, 30]], np.int64)
    winner, _ = winner_map(scores, boxes, HW, np.ones(HW, np.uint8))
    assert (winner[:3, :3] == 0).all() and (winner[3:, :] == WINNER_NONE).all()


def random_case(seed: int, with_base: bool):
    rng = np.random.default_rng(seed)
    h, w, c, n = 20, 24, 4, 9
    scores = rng.normal(0.5, 2.0, size=(n, c, 7, 7)).astype(np.float16)
    x0 = rng.integers(-6, w - 3, n)
    y0 = rng.integers(-6, h - 3, n)
    boxes = np.stack([x0, y0, x0 + rng.integers(3, 18, n), y0 + rng.integers(3, 18, n)], 1).astype(np.int64)
    include = rng.random(n) > 0.2
    base = rng.normal(0.0, 1.0, size=(c, h, w)).astype(np.float32) if with_base else None
    agg = aggregate_instances(scores, boxes, (h, w), include=include, initial=base)
    return scores, boxes, include, base, agg, label_map(agg)


@pytest.mark.parametrize("with_base", [False, True])
def test_winning_score_is_the_aggregated_score_and_each_pixel_agrees(with_base: bool) -> None:
    scores, boxes, include, base, agg, label = random_case(3, with_base)
    hw = label.shape
    winner, best = winner_map(scores, boxes, hw, label, include=include, base_scores=base)
    shown = np.take_along_axis(agg, label[None].astype(np.intp), 0)[0]
    np.testing.assert_array_equal(best, np.where(winner == WINNER_NONE, 0.0, shown))  # bit for bit
    assert ((winner == WINNER_NONE) == (shown == 0.0) if base is None else (winner != WINNER_NONE)).all()
    assert set(np.unique(winner[winner >= 0]).tolist()) <= set(np.flatnonzero(include).tolist())
    for y in range(hw[0]):
        for x in range(hw[1]):
            idx, sc = pixel_sources(scores, boxes, hw, x, y, include=include)
            code, value = pixel_winner(idx, sc, int(label[y, x]), float(base[label[y, x], y, x]) if with_base else None)
            assert code == winner[y, x] and value == best[y, x], (x, y)


def test_sample_box_is_resize_to_box_at_one_pixel() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(3, 9, 9)).astype(np.float16)
    box = (-3, 2, 11, 13)
    patch, (rows, cols) = resize_to_box(scores, box, HW)
    for y in range(rows.start, rows.stop):
        for x in range(cols.start, cols.stop):
            np.testing.assert_array_equal(sample_box(scores, box, HW, x, y), patch[:, y - rows.start, x - cols.start])
    assert sample_box(scores, box, HW, 1, 1) is None and sample_box(scores, box, HW, 12, 5) is None


def test_winner_colours_are_distinct_and_base_grey() -> None:
    colours = winner_colours(50)
    assert len({tuple(c) for c in colours}) == 50
    rgba = winner_rgba(np.array([[WINNER_NONE, WINNER_BASE, 0, 49]], np.int16), 50)
    assert rgba[0, 0, 3] == 0  # nothing won: transparent
    assert tuple(rgba[0, 1]) == (128, 128, 128, 255)
    assert tuple(rgba[0, 2, :3]) == tuple(colours[0]) and tuple(rgba[0, 3, :3]) == tuple(colours[49])


def test_pixel_sources_gathers_like_one_box_at_a_time() -> None:
    scores, boxes, include, _, _, label = random_case(5, False)
    hw = label.shape
    for y in range(hw[0]):
        for x in range(hw[1]):
            idx, many = pixel_sources(scores, boxes, hw, x, y, include=include)
            idx_list, one = pixel_sources(list(scores), boxes, hw, x, y, include=include)  # the per-box path
            np.testing.assert_array_equal(idx, idx_list)
            np.testing.assert_array_equal(many, one)
            for k, i in enumerate(idx.tolist()):
                np.testing.assert_array_equal(many[k], sample_box(scores[i], boxes[i], hw, x, y))
    assert pixel_sources(scores, boxes, hw, -1, 0)[0].size == 0
