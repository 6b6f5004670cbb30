"""ImageSession: results adopted, include/exclude and top-N recombine from cached maps, probes, masks."""

from __future__ import annotations

import numpy as np
import pytest

from deconv_gui.core.synthetic import make_scene
from deconv_gui.document.session import (
    ImageSession,
    ViewChoices,
    class_boundaries,
    instance_patch,
    summarise_proposals,
)
from deconv_gui.inference.pipeline import Segmenter
from deconv_gui.inference.runner import ModelRunner, RunnerOptions

BOXES = np.array([[0, 0, 120, 100], [60, 40, 200, 180], [150, 90, 320, 240], [10, 120, 110, 230]], float)


@pytest.fixture(scope="module")
def segmented(tiny_deconvnet_ckpt):
    scene = make_scene(3, height=120, width=160)
    runner = ModelRunner.from_checkpoint(str(tiny_deconvnet_ckpt), RunnerOptions(device="cpu"))
    result = Segmenter(runner).run(scene.image, boxes=BOXES / 2)
    return scene.image, result


def test_set_result_and_exclusion_recombines_without_network(segmented, tmp_path):
    image, result = segmented
    s = ImageSession(tmp_path / "a.png", image)
    assert s.state == "not run" and not s.has_result
    s.set_result(result)
    assert s.state == "segmented" and len(s.summaries) == result.num_proposals
    assert s.user_include.all()
    s.user_include[:] = False
    empty = s.recombine(ViewChoices())
    assert not empty.include.any()
    assert (empty.label == 0).all()  # nothing aggregated: every class scores 0, ties go to class 0
    s.user_include[:] = True
    s.user_include[1] = False
    partial = s.recombine(ViewChoices())
    assert partial.include.tolist() == [True, False, True, True]
    assert s.shown is not partial  # recombine is pure; show() adopts
    s.show(partial)
    assert s.effective_include().tolist() == [True, False, True, True]
    assert s.nbytes() >= result.instance_scores.nbytes + 2 * result.aggregated.nbytes + image.nbytes


def test_top_n_keeps_the_best_edge_boxes(segmented, tmp_path):
    image, result = segmented
    s = ImageSession(tmp_path / "a.png", image)
    s.set_result(result)
    # boxes given by a caller count as user boxes, which top-N always keeps
    assert s.recombine(ViewChoices(top_n=1)).include.all()
    from dataclasses import replace

    s.set_result(replace(result, from_user=np.zeros(result.num_proposals, bool)))
    assert s.recombine(ViewChoices(top_n=2)).include.tolist() == [True, True, False, False]


def test_exported_state_returns_to_segmented_on_edit(segmented, tmp_path):
    image, result = segmented
    s = ImageSession(tmp_path / "a.png", image)
    s.set_result(result)
    s.state = "exported"
    s.set_included(0, False)
    assert s.state == "segmented" and not s.user_include[0]


def test_probe_and_instance_patch(segmented, tmp_path):
    image, result = segmented
    s = ImageSession(tmp_path / "a.png", image)
    assert s.probe(0, 0) is None
    s.set_result(result)
    name, p = s.probe(5, 7)
    assert name == result.class_names[result.label[7, 5]]
    assert 0.0 < p <= 1.0
    assert s.probe(-1, 0) is None and s.probe(160, 0) is None
    for i in range(result.num_proposals):
        patch = instance_patch(result, i)
        full, cls, prob = result.instance_mask(i)
        if patch is None:
            assert not full.any()
            continue
        mask, (x0, y0), pcls, pprob = patch
        assert pcls == cls and pprob == pytest.approx(prob)
        assert full[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]].sum() == mask.sum() == full.sum()


def test_summaries_match_instance_masks(segmented):
    _, result = segmented
    rows = summarise_proposals(result)
    for i, row in enumerate(rows):
        mask, cls, _ = result.instance_mask(i)
        assert row.rank == i + 1 and row.class_id == cls and row.area == int(mask.sum())
        assert row.box == tuple(int(v) for v in result.boxes[i])
        assert row.mask.sum() == row.area


def test_class_boundaries_marks_both_sides_of_a_border():
    label = np.zeros((4, 6), np.uint8)
    label[:, 3:] = 2
    edges = class_boundaries(label)
    assert edges[:, 2].all() and edges[:, 3].all()
    assert not edges[:, [0, 1, 4, 5]].any()


def test_class_areas_count_the_edits_and_not_void(segmented, tmp_path):
    from deconv_gui.document.annotation import AnnotationLayer

    image, result = segmented
    s = ImageSession(tmp_path / "a.png", image)
    assert s.class_areas() is None
    s.set_result(result)
    num = len(result.class_names)
    np.testing.assert_array_equal(s.class_areas(), np.bincount(result.label.ravel(), minlength=num))
    s.annotation = AnnotationLayer(image.shape[:2])
    s.annotation.paint_mask(np.ones((10, 20), bool), (0, 0), 1)  # 200 px of class 1
    s.annotation.paint_mask(np.ones((5, 4), bool), (30, 50), 255)  # 20 px of void
    edited = result.label.copy()
    edited[:10, :20] = 1
    edited[50:55, 30:34] = 255
    expected = np.bincount(edited.ravel(), minlength=256)[:num]
    np.testing.assert_array_equal(s.class_areas(), expected)
    assert s.class_areas().sum() == image.shape[0] * image.shape[1] - 20
