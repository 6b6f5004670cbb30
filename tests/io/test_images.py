"""read_image: every odd format becomes (H, W, 3) uint8 RGB; every bad file raises ImageReadError by name."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from deconv_gui.core.errors import ImageReadError
from deconv_gui.io import images
from deconv_gui.io.images import IMAGE_SUFFIXES, list_images, read_image, scan_images


def _check_rgb(arr: np.ndarray, height: int, width: int) -> None:
    assert arr.shape == (height, width, 3)
    assert arr.dtype == np.uint8


def _noise(height: int = 32, width: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ---------------------------------------------------------------- formats

@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".ppm", ".webp"])
def test_lossless_rgb_round_trip(tmp_path: Path, suffix: str) -> None:
    rgb = _noise()
    path = tmp_path / f"x{suffix}"
    Image.fromarray(rgb).save(path, **({"lossless": True} if suffix == ".webp" else {}))
    np.testing.assert_array_equal(read_image(path), rgb)


def test_jpeg(tmp_path: Path) -> None:
    rgb = np.full((20, 30, 3), (200, 40, 90), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.jpg", quality=95)
    out = read_image(tmp_path / "x.jpg")
    _check_rgb(out, 20, 30)
    assert np.abs(out.astype(int) - rgb).max() <= 4


def test_grayscale_l_and_pgm(tmp_path: Path) -> None:
    gray = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    for name in ("g.png", "g.pgm"):
        Image.fromarray(gray).save(tmp_path / name)
        out = read_image(tmp_path / name)
        _check_rgb(out, 12, 16)
        for c in range(3):
            np.testing.assert_array_equal(out[..., c], gray)


def test_16_bit_grayscale_keeps_top_byte(tmp_path: Path) -> None:
    values = np.array([[0x0000, 0x00FF, 0x1234], [0x8000, 0xFF00, 0xFFFF]], np.uint16)
    im = Image.fromarray(values)
    assert im.mode == "I;16"
    im.save(tmp_path / "deep.png")
    out = read_image(tmp_path / "deep.png")
    _check_rgb(out, 2, 3)
    np.testing.assert_array_equal(out[..., 0], [[0x00, 0x00, 0x12], [0x80, 0xFF, 0xFF]])


def test_float_tiff_in_unit_range_is_scaled(tmp_path: Path) -> None:
    values = np.array([[0.0, 0.5, 1.0]], np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    out = read_image(tmp_path / "f.tif")
    np.testing.assert_array_equal(out[0, :, 1], [0, 128, 255])


def test_rgba_alpha_is_dropped(tmp_path: Path) -> None:
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[0, 0] = (200, 100, 50, 0)  # fully transparent pixel keeps its stored colour
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    _check_rgb(out, 4, 5)
    assert tuple(out[0, 0]) == (200, 100, 50)
    assert tuple(out[2, 2]) == (10, 20, 30)


def test_palette_image_gives_palette_colours(tmp_path: Path) -> None:
    idx = np.array([[0, 1], [2, 1]], np.uint8)
    im = Image.fromarray(idx).convert("P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (253 * 3))
    im.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    out = read_image(tmp_path / "p.png")
    assert tuple(out[0, 1]) == (255, 0, 0) and tuple(out[1, 0]) == (0, 0, 255)


def test_palette_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (3, 2), 1)
    im.putpalette([0, 0, 0, 0, 255, 0] + [0] * (254 * 3))
    im.save(tmp_path / "t.png", transparency=1)
    out = read_image(tmp_path / "t.png")
    _check_rgb(out, 2, 3)
    assert tuple(out[0, 0]) == (0, 255, 0)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # pure red in CMYK
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    out = read_image(tmp_path / "c.jpg")
    _check_rgb(out, 6, 8)
    r, g, b = out[3, 4].astype(int)
    assert r > 200 and g < 50 and b < 50


def test_one_bit(tmp_path: Path) -> None:
    im = Image.new("1", (4, 3), 0)
    im.putpixel((1, 2), 1)
    im.save(tmp_path / "b.png")
    out = read_image(tmp_path / "b.png")
    _check_rgb(out, 3, 4)
    assert tuple(out[2, 1]) == (255, 255, 255)
    assert out.sum() == 3 * 255


def test_exif_orientation_rotates_pixels(tmp_path: Path) -> None:
    # Stored 40 wide × 20 high with a red block at the top-left; orientation 6 = "rotate 90° clockwise to
    # display", so the displayed image is 20 wide × 40 high with the block at the top-right.
    stored = np.full((20, 40, 3), 255, np.uint8)
    stored[:8, :8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    out = read_image(tmp_path / "phone.jpg")
    _check_rgb(out, 40, 20)
    assert out[3, 16, 0] > 200 and out[3, 16, 1] < 60  # red, top-right
    assert out[3, 3].min() > 200  # white, top-left
    assert out[36, 16].min() > 200  # white, bottom-right


def test_uppercase_suffix(tmp_path: Path) -> None:
    Image.fromarray(_noise(4, 4)).save(tmp_path / "UP.PNG")
    _check_rgb(read_image(tmp_path / "UP.PNG"), 4, 4)


# ---------------------------------------------------------------- errors

def _error(path: Path, **kwargs: int) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kwargs)
    message = str(info.value)
    assert path.name in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in _error(tmp_path / "nope.png")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    assert "folder" in _error(tmp_path / "dir.png")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    assert "empty" in _error(tmp_path / "empty.png")


def test_text_renamed_png(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("this is not an image\n" * 10)
    assert "not an image" in _error(tmp_path / "notes.png")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    full = tmp_path / f"full{suffix}"
    Image.fromarray(_noise(64, 64)).save(full)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    message = _error(cut)
    assert "truncated" in message or "corrupt" in message


def test_refuses_when_truncated_loading_is_enabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(_noise(4, 4)).save(tmp_path / "ok.png")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    assert "LOAD_TRUNCATED_IMAGES" in _error(tmp_path / "ok.png")


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width × height`` RGB but whose pixel data is a few garbage bytes."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"\x00" * 8) + chunk(b"IEND", b""))


def test_too_large_rejected_from_header(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    _png_header_only(path, 9000, 9000)  # 81 MP: above our 64 MP default, below Pillow's own bomb limit
    message = _error(path)
    # The size is reported from the header alone: decoding the garbage data would give a different error.
    assert "9000×9000 = 81 MP" in message and "64 MP limit" in message


def test_decompression_bomb_rejected_with_size(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    _png_header_only(path, 30000, 30000)
    assert "image is 900 MP, larger than the 64 MP limit" in _error(path)


def test_max_pixels_argument(tmp_path: Path) -> None:
    Image.fromarray(_noise(10, 20)).save(tmp_path / "small.png")
    assert "20×10" in _error(tmp_path / "small.png", max_pixels=100)
    _check_rgb(read_image(tmp_path / "small.png", max_pixels=200), 10, 20)


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, where chmod cannot deny reading; simulate the OS refusing instead.
    Image.fromarray(_noise(4, 4)).save(tmp_path / "locked.png")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images.Image, "open", refuse)
    assert "permission denied" in _error(tmp_path / "locked.png")


# ---------------------------------------------------------------- listing

def test_list_images_sorted_case_insensitive(tmp_path: Path) -> None:
    for name in ("b.JPG", "a.png", "c.TIFF", "notes.txt", ".hidden.png", "d.webp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG", "c.TIFF", "d.webp"]
    assert ".pgm" in IMAGE_SUFFIXES


def test_scan_images_says_what_it_skipped_and_why(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")  # not an image name: left out quietly
    (tmp_path / "link.png").symlink_to("a.png")  # a link to an image is an image
    (tmp_path / "loop.png").symlink_to("loop.png")
    (tmp_path / "gone.jpg").symlink_to("nowhere.jpg")
    (tmp_path / "sub").mkdir()
    listing = scan_images(tmp_path)
    assert [p.name for p in listing.images] == ["a.png", "link.png"]
    assert [(p.name, reason) for p, reason in listing.skipped] == [
        ("gone.jpg", "broken symbolic link (its target 'nowhere.jpg' does not exist)"),
        ("loop.png", "symbolic link loop"),
        ("sub", "folder (images in sub-folders are not read)"),
    ]
    assert listing.skipped_lines(limit=2)[-1] == "… and 1 more entries"


def test_list_images_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not found"):
        list_images(tmp_path / "missing")
