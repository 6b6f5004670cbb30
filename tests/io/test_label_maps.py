"""Label PNG writers round-trip, open as the right mode with the palette, and are atomic; JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deconv_gui.core.errors import ImageReadError, OutputError
from deconv_gui.core.palette import voc_palette
from deconv_gui.io.label_maps import (
    overlay_image,
    read_label_png,
    write_index_png,
    write_json,
    write_mask_png,
    write_overlay_png,
    write_palette_png,
)

LABEL = np.array([[0, 1, 2, 3], [20, 255, 1, 0], [5, 5, 5, 255]], np.uint8)


def test_palette_png_round_trip_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "label.png"
    pal = voc_palette()
    write_palette_png(path, LABEL.astype(np.int64), pal)
    with Image.open(path) as im:
        assert im.mode == "P"
        stored = np.array(im.getpalette(), np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(stored[:256], pal)
        # Colours through the palette are the VOC colours: class 1 is (128, 0, 0).
        assert im.convert("RGB").getpixel((1, 0)) == (128, 0, 0)
    np.testing.assert_array_equal(read_label_png(path), LABEL)
    assert [p.name for p in tmp_path.iterdir()] == ["label.png"]


def test_short_palette_is_padded(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    write_palette_png(path, np.array([[0, 1]]), np.array([[1, 2, 3], [4, 5, 6]], np.uint8))
    with Image.open(path) as im:
        assert im.convert("RGB").getpixel((1, 0)) == (4, 5, 6)


def test_index_png_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "idx.png"
    write_index_png(path, LABEL)
    with Image.open(path) as im:
        assert im.mode == "L"
    np.testing.assert_array_equal(read_label_png(path), LABEL)


def test_label_values_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="0, 255"):
        write_index_png(tmp_path / "bad.png", np.array([[0, 256]]))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        write_index_png(tmp_path / "bad.png", np.zeros((2, 2, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_mask_png(tmp_path: Path) -> None:
    mask = np.array([[True, False], [False, True]])
    write_mask_png(tmp_path / "m.png", mask)
    with Image.open(tmp_path / "m.png") as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.array(im), [[255, 0], [0, 255]])


def test_overlay_blends_except_void(tmp_path: Path) -> None:
    image = np.full((3, 4, 3), 100, np.uint8)
    pal = np.zeros((256, 3), np.uint8)
    pal[1] = (200, 0, 0)
    pal[255] = (0, 0, 255)
    out = overlay_image(image, LABEL, pal, alpha=0.5)
    assert tuple(out[0, 1]) == (150, 50, 50)  # class 1 blended
    assert tuple(out[0, 0]) == (50, 50, 50)  # class 0 (black) blended too
    assert tuple(out[1, 1]) == (100, 100, 100)  # void keeps the image
    write_overlay_png(tmp_path / "o.png", image, LABEL, pal, alpha=0.5)
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.array(im), out)
    with pytest.raises(ValueError, match="differ"):
        overlay_image(image[:2], LABEL, pal)


def test_read_label_png_errors(tmp_path: Path) -> None:
    Image.new("RGB", (3, 3)).save(tmp_path / "colour.png")
    with pytest.raises(ImageReadError, match="single-channel") as info:
        read_label_png(tmp_path / "colour.png")
    assert "colour.png" in str(info.value)
    (tmp_path / "text.png").write_text("not a png")
    with pytest.raises(ImageReadError, match="text.png"):
        read_label_png(tmp_path / "text.png")
    with pytest.raises(ImageReadError, match="not found"):
        read_label_png(tmp_path / "missing.png")
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(ImageReadError, match="300"):
        read_label_png(tmp_path / "deep.png")


def test_16_bit_label_with_small_values_is_accepted(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 7, 255]], np.uint16)).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "deep.png"), [[0, 7, 255]])


def test_writer_to_unwritable_place_raises_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        write_palette_png(tmp_path / "file" / "label.png", LABEL, voc_palette())


def test_write_json_converts_numpy(tmp_path: Path) -> None:
    obj = {
        "miou": np.float32(0.5),
        "iou": np.array([0.25, np.nan]),
        "count": np.int64(3),
        "path": tmp_path / "x.png",
        "shape": (2, 3),
        "flag": np.bool_(True),
        "inf": float("inf"),
    }
    write_json(tmp_path / "out.json", obj)
    text = (tmp_path / "out.json").read_text(encoding="utf-8")
    assert text.startswith("{\n  ")  # indent 2
    loaded = json.loads(text)
    assert loaded == {
        "miou": 0.5, "iou": [0.25, None], "count": 3, "path": str(tmp_path / "x.png"), "shape": [2, 3],
        "flag": True, "inf": None,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
