"""Edge and orientation maps: thinness, orientation convention, input handling, structured-model errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.proposals.edge_maps import (
    StructuredEdgeModel,
    as_rgb_uint8,
    gradient_edges,
    gradient_edges_and_orientation,
    orientation_map,
    remove_edge_fragments,
    suppress_non_maxima,
)


def square_image(height: int = 120, width: int = 160) -> np.ndarray:
    """``(H, W, 3) uint8``: a flat orange square (rows 30..89, cols 50..109) on dark grey."""
    img = np.full((height, width, 3), 40, np.uint8)
    img[30:90, 50:110] = (220, 180, 60)
    return img


def step_image(kind: str, size: int = 96) -> np.ndarray:
    """``(size, size, 3) uint8`` with one straight step edge through the centre."""
    yy, xx = np.mgrid[0:size, 0:size]
    half = size // 2
    bright = {
        "vertical": xx >= half,  # left/right boundary → normal along x
        "horizontal": yy >= half,
        "diagonal": xx + yy >= size,  # boundary along x + y = size → normal (1, 1)
        "antidiagonal": xx - yy >= 0,  # boundary along x = y → normal (1, −1)
    }[kind]
    return np.where(bright[..., None], 200, 30).astype(np.uint8).repeat(3, axis=2)


def test_gradient_edges_dtype_range_and_position() -> None:
    edges = gradient_edges(square_image())
    assert edges.shape == (120, 160) and edges.dtype == np.float32
    assert edges.min() >= 0.0 and edges.max() <= 1.0
    strong = edges > 0.1
    # The square's sides are found where they are: columns 49/50 and 109/110, rows 29/30 and 89/90.
    assert set(np.flatnonzero(strong[60])) <= {49, 50, 109, 110}
    assert set(np.flatnonzero(strong[:, 80])) <= {29, 30, 89, 90}
    assert strong[60, 49:51].any() and strong[60, 109:111].any()
    # Nothing far from the square's outline.
    assert not strong[:20].any() and not strong[45:75, 65:95].any()


def test_gradient_edges_are_at_most_two_pixels_wide() -> None:
    strong = gradient_edges(square_image()) > 0.1
    for row in range(40, 80):  # across the left and right sides
        assert strong[row, 40:60].sum() <= 2
        assert strong[row, 100:120].sum() <= 2
    for col in range(60, 100):  # across the top and bottom sides
        assert strong[20:40, col].sum() <= 2
        assert strong[80:100, col].sum() <= 2


def test_non_maximum_suppression_thins_a_thick_ridge() -> None:
    outline = np.zeros((120, 160), np.float32)
    cv2.rectangle(outline, (50, 30), (109, 89), 1.0, thickness=1)
    thick = cv2.GaussianBlur(outline, (0, 0), 2.0)
    thick /= thick.max()
    thin = suppress_non_maxima(thick, orientation_map(thick))
    assert (thin > 0.1).sum() * 3 < (thick > 0.1).sum()
    assert (thin[60, 40:60] > 0.1).sum() <= 2
    assert (thin[20:40, 80] > 0.1).sum() <= 2
    assert thin[60, 50] == pytest.approx(thick[60, 50])  # the ridge itself survives unchanged


def test_suppress_non_maxima_fades_the_image_border() -> None:
    edges = np.zeros((40, 40), np.float32)
    edges[:, 1] = 1.0  # a vertical edge one pixel from the left border
    edges[:, 20] = 1.0
    thin = suppress_non_maxima(edges, np.zeros_like(edges), border=5)
    assert thin[20, 20] == 1.0
    assert thin[20, 1] == pytest.approx(0.2)  # x / border


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("vertical", 0.0), ("horizontal", np.pi / 2), ("diagonal", np.pi / 4), ("antidiagonal", 3 * np.pi / 4)],
)
def test_orientation_is_the_edge_normal(kind: str, expected: float) -> None:
    edges, orientation = gradient_edges_and_orientation(step_image(kind))
    on_edge = edges > 0.1
    on_edge[:20] = on_edge[-20:] = False  # keep away from the faded border and image corners
    on_edge[:, :20] = on_edge[:, -20:] = False
    assert on_edge.sum() > 20
    angles = orientation[on_edge]
    assert angles.min() >= 0.0 and angles.max() < np.pi
    # Angular distance modulo π (0 and π are the same orientation).
    diff = np.abs((angles - expected + np.pi / 2) % np.pi - np.pi / 2)
    assert np.median(diff) < 0.05


def test_orientation_map_of_raw_edge_lines() -> None:
    edges = np.zeros((64, 64), np.float32)
    edges[:, 32] = 1.0  # vertical line
    edges[16, :] = 1.0  # horizontal line
    orientation = orientation_map(edges)
    assert orientation.dtype == np.float32 and orientation.shape == (64, 64)
    assert min(orientation[48, 32], np.pi - orientation[48, 32]) < 0.05
    assert orientation[16, 8] == pytest.approx(np.pi / 2, abs=0.05)


def test_remove_edge_fragments_drops_specks_and_keeps_contours() -> None:
    edges = np.zeros((50, 50), np.float32)
    edges[10, 5:45] = 0.4  # a 40-px contour, total 16
    edges[30, 30:33] = 0.4  # a 3-px speck, total 1.2
    edges[40, 40] = 0.05  # below the edge threshold: left alone
    cleaned = remove_edge_fragments(edges)
    assert np.array_equal(cleaned[10], edges[10])
    assert not cleaned[30].any()
    assert cleaned[40, 40] == pytest.approx(0.05)


def test_input_conversion_and_rejection() -> None:
    gray = np.full((20, 30), 7, np.uint8)
    assert as_rgb_uint8(gray).shape == (20, 30, 3)
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 3] = 255
    assert np.array_equal(as_rgb_uint8(rgba), np.zeros((20, 30, 3), np.uint8))
    assert gradient_edges(gray).shape == (20, 30)
    for bad in (np.zeros((20, 30, 2), np.uint8), np.zeros((2, 20, 30, 3), np.uint8), np.zeros(5, np.uint8)):
        with pytest.raises(ValueError):
            gradient_edges(bad)


def test_missing_structured_edge_model_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "model.yml.gz"
    with pytest.raises(DeconvGuiError, match="not found") as info:
        StructuredEdgeModel(missing)
    assert str(missing) in str(info.value)


def test_corrupt_structured_edge_model_names_the_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "model.yml.gz"
    corrupt.write_bytes(b"\x1f\x8b this is not a forest")
    with pytest.raises(DeconvGuiError, match="not a valid structured-edge model") as info:
        StructuredEdgeModel(corrupt)
    assert str(corrupt) in str(info.value)


def test_yaml_without_a_forest_is_rejected_not_crashing(tmp_path: Path) -> None:
    # OpenCV itself divides by options/numberOfTrees and would kill the process with SIGFPE.
    path = tmp_path / "empty.yml"
    path.write_text("%YAML:1.0\n---\nsomething: 1\n")
    with pytest.raises(DeconvGuiError, match="options/") as info:
        StructuredEdgeModel(path)
    assert str(path) in str(info.value)


def write_one_leaf_forest(path: Path) -> None:
    """A minimal structured-edge model: one tree, one leaf that marks one pixel per patch (valid, useless)."""
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    fs.startWriteStruct("options", cv2.FILE_NODE_MAP)
    options = {
        "stride": 2, "shrinkNumber": 2, "patchSize": 32, "patchInnerSize": 16,
        "numberOfGradientOrientations": 4, "gradientSmoothingRadius": 0, "regFeatureSmoothingRadius": 2,
        "ssFeatureSmoothingRadius": 8, "gradientNormalizationRadius": 4, "selfsimilarityGridSize": 5,
        "numberOfTrees": 1, "numberOfTreesToEvaluate": 1,
    }
    for key, value in options.items():
        fs.write(key, value)
    fs.endWriteStruct()
    arrays = {"childs": [0], "featureIds": [0], "thresholds": [0.0], "edgeBoundaries": [0, 1], "edgeBins": [0]}
    for key, values in arrays.items():
        fs.startWriteStruct(key, cv2.FILE_NODE_SEQ)
        fs.startWriteStruct("", cv2.FILE_NODE_SEQ | cv2.FILE_NODE_FLOW)
        for value in values:
            fs.write("", value)
        fs.endWriteStruct()
        fs.endWriteStruct()
    fs.release()


def test_structured_edge_model_detect_shapes(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yml.gz"
    write_one_leaf_forest(path)
    model = StructuredEdgeModel(path)
    edges, orientation = model.detect(square_image(60, 80))
    assert edges.shape == orientation.shape == (60, 80)
    assert edges.dtype == orientation.dtype == np.float32
    assert edges.min() >= 0.0 and edges.max() <= 1.0
    assert orientation.min() >= 0.0 and orientation.max() < np.pi + 1e-6
