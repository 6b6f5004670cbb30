"""The inspector's explanations of a hand-built SegmentationResult: winners, pixels won, one pixel's scores."""

from dataclasses import replace

import numpy as np

from deconv_gui.core.aggregation import aggregate_instances, label_map, softmax
from deconv_gui.inference.explain import WINNER_BASE, WINNER_NONE, compute_winners, explain_pixel, source_name
from deconv_gui.inference.result import SegmentationResult

HW = (10, 10)
NAMES = ["background", "cat", "dog"]


def constant(values: list[float], s: int = 4) -> np.ndarray:
    return np.stack([np.full((s, s), v, np.float16) for v in values])


def make_result(base: np.ndarray | None = None, include: np.ndarray | None = None) -> SegmentationResult:
    """Proposal 0 on [0, 6)² says cat 3 / dog 2; proposal 1 on [4, 10)² cat 5 / dog 1; proposal 2 on [0, 10)²
    says dog 0.5 (everything else 0)."""
    scores = np.stack([constant([0.0, 3.0, 2.0]), constant([0.0, 5.0, 1.0]), constant([0.0, 0.0, 0.5])])
    boxes = np.array([[0, 0, 6, 6], [4, 4, 10, 10], [0, 0, 10, 10]], np.int64)
    include = np.ones(3, bool) if include is None else include
    agg = aggregate_instances(scores, boxes, HW, include=include, initial=base)
    probs = softmax(agg)
    return SegmentationResult(image_hw=HW, class_names=NAMES, palette=np.zeros((3, 3), np.uint8), boxes=boxes,
                              proposal_scores=np.array([0.9, 0.8, 0.7], np.float32), instance_scores=scores,
                              aggregated=agg, partner_scores=None, probabilities=probs, label=label_map(probs),
                              include=include, from_user=np.zeros(3, bool), base_scores=base)


def test_winners_and_pixels_won_by_hand() -> None:
    result = make_result()
    assert result.label[1, 1] == 1 and result.label[8, 8] == 1 and result.label[8, 1] == 2
    w = compute_winners(result)
    assert w.result is result and w.winner.shape == HW
    assert w.winner[1, 1] == 0 and w.winner[5, 5] == 1 and w.winner[8, 8] == 1
    assert w.winner[8, 1] == 2  # only proposal 2 covers it: dog 0.5
    # cat pixels: proposal 0 alone on [0,6)² minus the overlap (32), proposal 1 on [4,10)² (36); dog: the rest (32)
    assert w.won.tolist() == [32, 36, 32]
    # excluding proposal 1 hands its pixels back: the overlap to proposal 0, the rest to proposal 2 (dog)
    w2 = compute_winners(make_result(include=np.array([True, False, True])))
    assert w2.won.tolist() == [36, 0, 64]


def test_whole_image_results_are_won_by_the_base_and_base_codes() -> None:
    whole = replace(make_result(), mode="whole", instance_scores=None)
    w = compute_winners(whole)
    assert (w.winner == WINNER_BASE).all() and w.won.tolist() == [0, 0, 0]
    base = np.zeros((3, *HW), np.float32)
    base[1] = 4.0
    w = compute_winners(make_result(base=base))
    assert w.winner[1, 1] == WINNER_BASE and w.winner[5, 5] == 1 and (w.winner != WINNER_NONE).all()
    assert source_name(0) == "#1" and source_name(WINNER_BASE) == "whole-image base"
    assert source_name(WINNER_NONE).startswith("none")


def test_explain_pixel_lists_the_top_proposals_for_the_top_classes() -> None:
    result = make_result()
    e = explain_pixel(result, 5, 5, top_classes=2, top_proposals=3)
    assert e is not None and (e.x, e.y, e.label) == (5, 5, 1) and e.covering == 3 and e.winner == 1
    cat, dog = e.classes
    assert (cat.class_name, cat.winner, cat.aggregated, cat.base_score) == ("cat", 1, 5.0, None)
    assert [(c.source, c.score) for c in cat.contributions] == [(1, 5.0), (0, 3.0), (2, 0.0)]
    assert dog.class_name == "dog" and dog.winner == 0
    assert [(c.source, c.score) for c in dog.contributions] == [(0, 2.0), (1, 1.0), (2, 0.5)]
    assert cat.probability > dog.probability
    one = explain_pixel(result, 5, 5, top_classes=1, top_proposals=1)
    assert len(one.classes) == 1 and len(one.classes[0].contributions) == 1
    assert explain_pixel(result, 10, 0) is None and explain_pixel(result, -1, 3) is None


def test_explain_pixel_agrees_with_the_winner_map_and_sees_the_base() -> None:
    base = np.zeros((3, *HW), np.float32)
    base[1] = 4.0
    result = make_result(base=base)
    w = compute_winners(result)
    for y in range(HW[0]):
        for x in range(HW[1]):
            assert explain_pixel(result, x, y).winner == w.winner[y, x]
    e = explain_pixel(result, 1, 1)
    assert e.winner == WINNER_BASE and e.classes[0].base_score == 4.0
    assert explain_pixel(replace(result, mode="whole", instance_scores=None), 1, 1).whole_image
