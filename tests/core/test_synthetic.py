"""Synthetic scenes: determinism, dtypes, label consistency, tight boxes, object counts."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from deconv_gui.core.synthetic import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_THING_CLASSES,
    SyntheticScene,
    make_demo_scene,
    make_scene,
    synthetic_palette,
)


def test_same_seed_gives_identical_scene() -> None:
    a, b = make_scene(7), make_scene(7)
    for name in ("image", "semantic", "instances", "boxes", "classes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_different_seeds_differ() -> None:
    a, b = make_scene(1), make_scene(2)
    assert not np.array_equal(a.image, b.image)
    assert not np.array_equal(a.semantic, b.semantic)


@pytest.mark.parametrize("height, width", [(240, 320), (96, 64)])
def test_shapes_and_dtypes(height: int, width: int) -> None:
    scene = make_scene(3, height=height, width=width)
    assert isinstance(scene, SyntheticScene)
    assert scene.image.shape == (height, width, 3) and scene.image.dtype == np.uint8
    assert scene.semantic.shape == (height, width) and scene.semantic.dtype == np.uint8
    assert scene.instances.shape == (height, width) and scene.instances.dtype == np.int32
    k = len(scene.classes)
    assert scene.boxes.shape == (k, 4) and scene.boxes.dtype == np.float64
    assert scene.classes.dtype == np.int64
    assert scene.semantic.max() < len(SYNTHETIC_CLASSES)


@pytest.mark.parametrize("seed", range(12))
def test_labels_boxes_and_classes_are_consistent(seed: int) -> None:
    scene = make_scene(seed, min_objects=3, max_objects=6)
    k = len(scene.classes)
    assert 3 <= k <= 6
    # Instance ids are exactly 1..K (fully hidden ones dropped and renumbered).
    assert set(np.unique(scene.instances)) - {0} == set(range(1, k + 1))
    # Semantic and instance maps agree: background exactly where there is no instance.
    np.testing.assert_array_equal(scene.semantic == 0, scene.instances == 0)
    for i in range(k):
        mask = scene.instances == i + 1
        assert scene.classes[i] in SYNTHETIC_THING_CLASSES
        assert np.all(scene.semantic[mask] == scene.classes[i])
        ys, xs = np.nonzero(mask)
        expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        np.testing.assert_array_equal(scene.boxes[i], expected)


def test_min_objects_is_honoured_even_when_crowded() -> None:
    for seed in range(10):
        scene = make_scene(seed, height=64, width=64, min_objects=5, max_objects=5)
        assert len(scene.classes) == 5


def test_size_bounds_and_default_sizes_reach_edge_box_minimum() -> None:
    small = [make_scene(s, min_size=20, max_size=24) for s in range(5)]
    for scene in small:
        sides = scene.boxes[:, 2:] - scene.boxes[:, :2]
        assert sides.max() <= 24 * 1.5 + 1  # rotated square's diagonal is the widest extent
    # Default sizes at 360×480: most shapes have a box side ≥ 112 px (Edge Boxes' minimum).
    sides = np.concatenate([make_scene(s, height=360, width=480).boxes for s in range(10)])
    short = np.minimum(sides[:, 2] - sides[:, 0], sides[:, 3] - sides[:, 1])
    assert np.mean(short >= 112) > 0.5


def test_every_class_occurs_and_image_is_textured() -> None:
    seen = np.concatenate([make_scene(s).classes for s in range(20)])
    assert set(seen.tolist()) == set(SYNTHETIC_THING_CLASSES)
    scene = make_scene(0)
    background = scene.image[scene.semantic == 0].astype(np.float64)
    assert background.std(axis=0).min() > 3.0  # not a flat colour


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        make_scene(0, min_objects=4, max_objects=2)
    with pytest.raises(ValueError):
        make_scene(0, height=4, width=4)


def test_palette() -> None:
    pal = synthetic_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert len({tuple(c) for c in pal[: len(SYNTHETIC_CLASSES)]}) == len(SYNTHETIC_CLASSES)


def test_any_hue_probability_changes_only_colours() -> None:
    from deconv_gui.core.synthetic import make_scene

    default = make_scene(11, height=120, width=160)
    easy = make_scene(11, height=120, width=160, any_hue_probability=0.0)
    hard = make_scene(11, height=120, width=160, any_hue_probability=1.0)
    np.testing.assert_array_equal(default.semantic, easy.semantic)  # same layout: same random draws
    np.testing.assert_array_equal(default.semantic, hard.semantic)
    assert not np.array_equal(easy.image, hard.image)


@pytest.mark.parametrize("seed", range(12))
def test_demo_scenes_hold_two_to_four_whole_shapes_that_never_touch(seed: int) -> None:
    scene = make_demo_scene(seed)
    assert scene.image.shape == (360, 480, 3) and 2 <= len(scene.classes) <= 4
    assert np.array_equal(make_demo_scene(seed).image, scene.image)  # deterministic
    # no two instances touch: dilating one by 5 px (box) never meets another
    for k in range(1, len(scene.classes) + 1):
        ys, xs = np.nonzero(scene.instances == k)
        grown = np.zeros(scene.instances.shape, bool)
        for dy in range(-5, 6, 5):
            for dx in range(-5, 6, 5):
                grown[np.clip(ys + dy, 0, 359), np.clip(xs + dx, 0, 479)] = True
        others = scene.instances[grown]
        assert set(np.unique(others)) <= {0, k}
    # each shape is painted in its class's hue (the demo variant's easy colour cue), the background is muted
    for k, cls in enumerate(scene.classes, 1):
        rgb = scene.image[scene.instances == k].astype(np.float64).mean(axis=0) / 255
        hue = colorsys.rgb_to_hsv(*rgb)[0]
        preferred = (0.0, 0.0, 0.40, 0.61, 0.18, 0.81)[cls]
        assert min(abs(hue - preferred), 1 - abs(hue - preferred)) < 0.08, (cls, hue)
    background = scene.image[scene.semantic == 0].astype(np.float64)
    assert colorsys.rgb_to_hsv(*(background.mean(axis=0) / 255))[1] < 0.35


def test_demo_tree_writes_demo_scenes(tmp_path) -> None:
    from deconv_gui.training.synthetic_tree import write_synthetic_tree

    root = write_synthetic_tree(tmp_path / "demo", "folder", n_train=2, n_val=1, height=360, width=480, seed=3,
                                variant="demo")
    from PIL import Image

    image = np.asarray(Image.open(root / "images" / "scene_0001.png"))
    assert np.array_equal(image, make_demo_scene(3001).image)
    with pytest.raises(ValueError, match="variant"):
        write_synthetic_tree(tmp_path / "x", "folder", variant="fancy")
