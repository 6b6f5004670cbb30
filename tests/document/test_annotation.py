"""The edit layer, its tools and its history, without Qt, checked by hand on small arrays."""

from __future__ import annotations

import numpy as np
import pytest

from deconv_gui.document.annotation import (
    AnnotationLayer,
    ToolState,
    flood_region,
    mask_region,
    polygon_region,
    segment_footprint,
    stroke_footprint,
)
from deconv_gui.document.edit_history import EditHistory


def test_disc_and_segment_footprints():
    rect, mask = segment_footprint((5.5, 5.5), (5.5, 5.5), 1, (10, 10))
    assert rect == (4, 4, 7, 7)
    assert mask.astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    # radius < 0.5 still paints the pixel under the point
    rect, mask = segment_footprint((2.2, 3.9), (2.2, 3.9), 0, (10, 10))
    assert rect == (2, 3, 3, 4) and mask.sum() == 1
    # a segment is a capsule: no gap between far-apart mouse positions
    rect, mask = segment_footprint((0.5, 1.5), (9.5, 1.5), 1, (3, 10))
    full = np.zeros((3, 10), bool)
    x0, y0, x1, y1 = rect
    full[y0:y1, x0:x1] = mask
    assert full[1].all() and full[0].all() and full[2].all()
    # clipped at the border; nothing outside the image
    assert segment_footprint((-20, -20), (-15, -15), 2, (10, 10)) is None
    rect, _ = segment_footprint((0, 0), (0, 0), 3, (10, 10))
    assert rect[0] == 0 and rect[1] == 0


def test_polyline_stroke_is_the_union_of_its_segments():
    rect, mask = stroke_footprint([(0.5, 0.5), (4.5, 0.5), (4.5, 4.5)], 0.5, (6, 6))
    full = np.zeros((6, 6), int)
    full[rect[1]:rect[3], rect[0]:rect[2]] = mask
    expected = np.zeros((6, 6), int)
    expected[0, 0:5] = 1
    expected[0:5, 4] = 1
    assert (full == expected).all()


def test_flood_fill_is_4_connected_on_equal_labels():
    label = np.zeros((5, 5), np.uint8)
    label[2, :] = 3  # a wall
    label[0, 4] = 1
    rect, mask = flood_region(label, 0.5, 0.5)
    full = np.zeros((5, 5), bool)
    full[rect[1]:rect[3], rect[0]:rect[2]] = mask
    assert full[:2, :4].all() and not full[0, 4] and not full[2:].any()
    # diagonal neighbours do not connect
    diag = np.eye(4, dtype=np.uint8)
    rect, mask = flood_region(diag, 0, 0)
    assert mask.sum() == 1
    assert flood_region(label, 7, 1) is None


def test_polygon_fills_pixel_centres_inside():
    rect, mask = polygon_region([(2, 2), (6, 2), (6, 6), (2, 6)], (10, 10))
    full = np.zeros((10, 10), bool)
    full[rect[1]:rect[3], rect[0]:rect[2]] = mask
    assert full.sum() == 16 and full[2:6, 2:6].all()
    # concave: the notch stays empty
    rect, mask = polygon_region([(0, 0), (6, 0), (6, 6), (3, 2), (0, 6)], (10, 10))
    full = np.zeros((10, 10), bool)
    full[rect[1]:rect[3], rect[0]:rect[2]] = mask
    assert full[0:2, 0:6].all() and not full[4, 2] and not full[4, 3] and full[4, 0] and full[4, 5]
    assert polygon_region([(1, 1), (2, 2)], (10, 10)) is None


def test_mask_region_crops_to_pixels_and_image():
    m = np.zeros((4, 4), bool)
    m[1:3, 2] = True
    rect, mask = mask_region(m, (10, 20))
    assert rect == (12, 21, 13, 23) and mask.all()
    rect, mask = mask_region(np.ones((4, 4), bool), (-2, 8), (10, 10))
    assert rect == (0, 8, 2, 10) and mask.shape == (2, 2)


def test_edits_sit_on_top_of_the_prediction_and_the_eraser_removes_them():
    layer = AnnotationLayer((6, 8))
    prediction = np.full((6, 8), 2, np.uint8)
    assert (layer.composite(prediction) == 2).all() and not layer.has_edits
    layer.stroke("brush", [(1.5, 1.5), (6.5, 1.5)], 0.5, 4)
    shown = layer.composite(prediction)
    assert (shown[1, 1:7] == 4).all() and (shown[0] == 2).all()
    layer.stroke("void", [(3.5, 4.5)], 0.5, 255)
    assert layer.composite(prediction)[4, 3] == 255
    layer.stroke("eraser", [(2.5, 1.5), (3.5, 1.5)], 0.5, None)
    shown = layer.composite(prediction)
    assert shown[1, 2] == 2 and shown[1, 3] == 2 and shown[1, 4] == 4
    # a new prediction under the edits never overwrites them
    assert layer.composite(np.zeros((6, 8), np.uint8))[1, 5] == 4
    # no prediction: unedited pixels are void
    assert layer.composite(None)[0, 0] == 255


def test_undo_redo_across_mixed_tools():
    layer = AnnotationLayer((10, 10))
    pred = np.zeros((10, 10), np.uint8)
    pred[:, 5:] = 1
    states = [layer.composite(pred)]
    layer.stroke("brush", [(0.5, 0.5), (3.5, 0.5)], 0.5, 3)
    states.append(layer.composite(pred))
    layer.fill(7.5, 7.5, 2, pred)  # the right half (label 1) → 2
    states.append(layer.composite(pred))
    layer.polygon([(0, 4), (4, 4), (4, 8), (0, 8)], 255)
    states.append(layer.composite(pred))
    layer.stroke("eraser", [(6.5, 2.5)], 1, None)
    states.append(layer.composite(pred))
    m = np.ones((2, 2), bool)
    layer.paint_mask(m, (1, 1), 4)
    states.append(layer.composite(pred))
    assert len(layer.history) == 5 and (states[2][:, 5:] == 2).all() and states[3][5, 1] == 255
    assert states[4][2, 6] == 1 and states[5][1, 1] == 4
    for k in range(5, 0, -1):
        assert layer.undo() is not None
        assert (layer.composite(pred) == states[k - 1]).all(), f"undo to state {k - 1}"
    assert layer.undo() is None and not layer.has_edits
    for k in range(1, 4):
        layer.redo()
        assert (layer.composite(pred) == states[k]).all(), f"redo to state {k}"
    # a new action after undo clears the redo stack
    layer.stroke("brush", [(9.5, 9.5)], 0.5, 3)
    assert not layer.history.can_redo and layer.redo() is None


def test_a_stroke_is_one_undo_step():
    layer = AnnotationLayer((20, 20))
    layer.begin_stroke("brush", (2.5, 2.5), 2, 1)
    for x in range(3, 18):
        layer.continue_stroke((x + 0.5, 2.5))
    rect = layer.end_stroke()
    assert rect is not None and rect[2] - rect[0] > 15
    assert len(layer.history) == 1
    layer.undo()
    assert not layer.edited.any()


def test_history_stays_small_on_a_big_image_and_is_capped():
    layer = AnnotationLayer((3000, 4000))
    rng = np.random.default_rng(0)
    for _ in range(100):
        x, y = rng.uniform(100, 3900), rng.uniform(100, 2900)
        layer.stroke("brush", [(x, y), (x + 15, y + 5), (x + 30, y - 5)], 6, 3)
    assert len(layer.history) == 100
    # 100 small strokes: diffs of the touched rectangles only — far below one copy of the image (12 MB)
    assert layer.history.nbytes < 600_000, layer.history.nbytes
    # the byte cap evicts the oldest steps; what remains still undoes correctly
    capped = AnnotationLayer((300, 400), EditHistory(max_steps=1000, max_bytes=200_000))
    for k in range(20):
        capped.polygon([(0, 0), (400, 0), (400, 300), (0, 300)], k % 5)  # whole-image steps, 480 kB each
    assert capped.history.nbytes <= 4 * 300 * 400 and len(capped.history) == 1  # one step is always kept
    assert capped.history.dropped > 0
    before = capped.label.copy()
    capped.undo()
    assert not np.array_equal(before, capped.label)
    counted = AnnotationLayer((10, 10))  # the default keeps at least 100 steps
    for k in range(250):
        counted.stroke("brush", [(k % 10 + 0.5, 0.5)], 0.5, 1 + (k // 10) % 2)
    assert len(counted.history) == counted.history.max_steps >= 100
    for _ in range(100):
        assert counted.undo() is not None


def test_tool_state_values_and_sizes():
    t = ToolState(tool="brush", radius=8, class_id=3)
    assert t.paint_value() == 3
    t.tool = "void"
    assert t.paint_value() == 255
    t.tool = "eraser"
    assert t.paint_value() is None
    assert t.bump_radius(+1) == 10 and t.bump_radius(-1) == 8
    t.set_radius(0)
    assert t.radius == 1 and t.bump_radius(1) == 2
    assert t.set_radius(10_000) == 500


@pytest.mark.parametrize("value", [0, 7, 255])
def test_from_arrays_round_trip(value):
    layer = AnnotationLayer((4, 4))
    layer.stroke("brush", [(1.5, 1.5)], 1, value)
    copy = AnnotationLayer.from_arrays(layer.label, layer.edited)
    assert np.array_equal(copy.label, layer.label) and np.array_equal(copy.edited, layer.edited)
    assert not copy.history.can_undo
