"""Exporting segmentation results: every format read back, instances vs. the result's own masks, COCO RLE,
overwrite refusal, unwritable folders, interrupted writes, folder exports. No network: results are built by hand
from synthetic scenes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from deconv_gui.core.cancel import CancelToken
from deconv_gui.core.errors import Cancelled, OutputError
from deconv_gui.core.palette import voc_palette
from deconv_gui.core.synthetic import SYNTHETIC_CLASSES, make_scene, synthetic_palette
from deconv_gui.inference import result_files
from deconv_gui.inference.result import SegmentationResult
from deconv_gui.inference.result_files import (
    FORMATS,
    existing_folder_outputs,
    existing_outputs,
    export_folder,
    export_result,
    folder_output_paths,
    instance_records,
    output_paths,
)
from deconv_gui.io.label_maps import overlay_image

# pycocotools' decode trips numpy 2's __array__ copy deprecation; only the tests decode.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

C = len(SYNTHETIC_CLASSES)
S = 32  # per-instance score map side (224 in real runs; resize_to_box works for any size)
H, W = 96, 128


def _onehot_scores(classes: np.ndarray, strength: float = 8.0) -> np.ndarray:
    """``(h, w)`` class ids → ``(C, h, w)`` raw scores that argmax to them."""
    return (np.eye(C, dtype=np.float32)[classes] * strength).transpose(2, 0, 1)


def _resize_nearest(a: np.ndarray, size: int) -> np.ndarray:
    rows = (np.arange(size) * a.shape[0] // size).clip(0, a.shape[0] - 1)
    cols = (np.arange(size) * a.shape[1] // size).clip(0, a.shape[1] - 1)
    return a[np.ix_(rows, cols)]


def _instance_result(seed: int = 1) -> tuple[np.ndarray, SegmentationResult]:
    """A result in instance mode: one proposal per scene instance (the first one reaching past the image),
    plus an all-background proposal (empty mask) and an excluded one."""
    scene = make_scene(seed, height=H, width=W)
    boxes, maps = [], []
    for k, box in enumerate(scene.boxes.astype(np.int64), start=1):
        x0, y0, x1, y1 = box
        if k == 1:
            x0, y0 = -10, y0 - 6  # reaches past the image (crop padded with zeros)
        window = np.zeros((y1 - y0, x1 - x0), np.int64)
        vy0, vx0 = max(y0, 0), max(x0, 0)
        inside = scene.instances[vy0:y1, vx0:x1] == k
        window[vy0 - y0:, vx0 - x0:][inside] = scene.classes[k - 1]
        boxes.append([x0, y0, x1, y1])
        maps.append(_onehot_scores(_resize_nearest(window, S)))
    boxes += [[0, 0, 40, 40], [10, 10, 60, 60]]
    maps += [_onehot_scores(np.zeros((S, S), np.int64)), maps[0]]
    n = len(boxes)
    include = np.ones(n, bool)
    include[-1] = False
    result = SegmentationResult(
        image_hw=(H, W), class_names=list(SYNTHETIC_CLASSES), palette=synthetic_palette()[:C],
        boxes=np.asarray(boxes, np.int64), proposal_scores=np.linspace(0.9, 0.1, n).astype(np.float32),
        instance_scores=np.stack(maps).astype(np.float16), aggregated=np.zeros((C, H, W), np.float32),
        partner_scores=None, probabilities=_onehot_scores(scene.semantic.astype(np.int64), 0.9) / 1.0,
        label=scene.semantic.copy(), include=include, from_user=np.arange(n) == n - 2,
    )
    return scene.image, result


def _whole_result(seed: int = 2) -> tuple[np.ndarray, SegmentationResult]:
    image, res = _instance_result(seed)
    probs = np.full((C, H, W), 0.1 / (C - 1), np.float32)
    np.put_along_axis(probs, res.label[None].astype(np.int64), 0.9, axis=0)
    empty = np.zeros((0, 4), np.int64)
    return image, SegmentationResult(
        image_hw=(H, W), class_names=res.class_names, palette=res.palette, boxes=empty,
        proposal_scores=np.zeros(0, np.float32), instance_scores=None, aggregated=probs, partner_scores=None,
        probabilities=probs, label=res.label, include=np.zeros(0, bool), from_user=np.zeros(0, bool), mode="whole",
    )


def _expected_instances(result: SegmentationResult) -> dict[int, tuple[np.ndarray, int, float]]:
    out = {}
    for i in range(result.num_proposals):
        mask, cls, prob = result.instance_mask(i)
        if result.include[i] and mask.any():
            out[i] = (mask, cls, prob)
    return out


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".")]  # temporaries, staged sets, probes


def test_every_format_reads_back(tmp_path: Path) -> None:
    image, result = _instance_result()
    written = export_result(tmp_path, "scene", image, result, FORMATS, image_name="scene.jpg")
    assert set(written) >= {tmp_path / "scene.png", tmp_path / "scene_index.png", tmp_path / "scene_overlay.png",
                            tmp_path / "scene_instances.json", tmp_path / "scene_coco.json"}
    assert all(p.is_file() for p in written)
    with Image.open(tmp_path / "scene.png") as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), result.label)
        pal = np.asarray(im.getpalette()[: 256 * 3], np.uint8).reshape(256, 3)
    np.testing.assert_array_equal(pal[:C], synthetic_palette()[:C])
    np.testing.assert_array_equal(pal[255], voc_palette()[255])  # void keeps the VOC void colour
    with Image.open(tmp_path / "scene_index.png") as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), result.label)
    with Image.open(tmp_path / "scene_overlay.png") as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), overlay_image(image, result.label, result.palette))
    assert _no_temp_files(tmp_path)


def test_instances_json_and_masks_match_the_result(tmp_path: Path) -> None:
    image, result = _instance_result()
    expected = _expected_instances(result)
    assert len(expected) == result.num_proposals - 2  # the empty and the excluded proposal are not instances
    export_result(tmp_path, "scene", image, result, ["instances"], image_name="scene.jpg")
    data = json.loads((tmp_path / "scene_instances.json").read_text())
    assert data["image"] == "scene.jpg" and data["image_size"] == {"height": H, "width": W}
    assert data["classes"] == list(SYNTHETIC_CLASSES) and "exclusive" in data["box_format"]
    assert [e["proposal"] for e in data["instances"]] == [i + 1 for i in sorted(expected)]  # numbered from 1
    for entry in data["instances"]:
        i = entry["proposal"] - 1
        mask, cls, prob = expected[i]
        assert entry["class_id"] == cls and entry["class_name"] == SYNTHETIC_CLASSES[cls]
        assert entry["mean_probability"] == pytest.approx(prob, abs=1e-6)
        assert entry["objectness"] == pytest.approx(float(result.proposal_scores[i]))
        assert entry["box_raw"] == [float(v) for v in result.boxes[i]]
        x0, y0, x1, y1 = result.boxes[i]
        assert entry["box"] == [max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)]
        assert entry["area"] == int(mask.sum())
        assert entry["user_box"] == bool(result.from_user[i])
        assert entry["source"] == ("user_box" if result.from_user[i] else "proposal")
        with Image.open(tmp_path / entry["mask"]) as m:
            np.testing.assert_array_equal(np.asarray(m) == 255, mask)
        ys, xs = np.nonzero(mask)
        assert entry["mask_box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    first = data["instances"][0]
    assert first["box_raw"][0] < 0 and first["box"][0] == 0  # raw box reaches past the image, clipped is inside
    assert sorted(p.name for p in (tmp_path / "scene_instances").iterdir()) == [
        f"{i + 1:03d}.png" for i in sorted(expected)]


def test_coco_rle_decodes_to_the_instance_masks(tmp_path: Path) -> None:
    image, result = _instance_result()
    expected = _expected_instances(result)
    export_result(tmp_path, "scene", image, result, ["coco"], image_name="scene.jpg")
    coco = json.loads((tmp_path / "scene_coco.json").read_text())
    assert coco["images"] == [{"id": 1, "file_name": "scene.jpg", "height": H, "width": W}]
    assert [c["id"] for c in coco["categories"]] == list(range(2, C + 1))  # class + 1; no background category
    assert [c["class_index"] for c in coco["categories"]] == list(range(1, C))
    assert [c["name"] for c in coco["categories"]] == list(SYNTHETIC_CLASSES[1:])
    anns = coco["annotations"]
    assert len(anns) == len(expected) and len({a["id"] for a in anns}) == len(anns)
    for ann in anns:
        mask, cls, prob = expected[ann["proposal"] - 1]
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), mask)
        assert ann["image_id"] == 1 and ann["category_id"] == cls + 1 and ann["iscrowd"] == 0
        assert ann["area"] == int(mask.sum()) == int(mask_utils.area(rle))
        np.testing.assert_allclose(ann["bbox"], mask_utils.toBbox(rle))
        assert ann["score"] == pytest.approx(prob, abs=1e-6)


def test_whole_image_mode_uses_connected_components(tmp_path: Path) -> None:
    image, result = _whole_result()
    label = result.label.copy()
    label[:4, :4] = 1  # a 16-pixel speck of class 1 is kept as its own component (minimum area 16)
    label[-2:, -2:] = 2  # a 4-pixel speck is too small
    export_result(tmp_path, "w", image, result, ["instances", "coco"], label=label)
    coco = json.loads((tmp_path / "w_coco.json").read_text())
    data = json.loads((tmp_path / "w_instances.json").read_text())
    anns = coco["annotations"]
    assert len(anns) == len(data["instances"]) >= 3
    union = np.zeros((H, W), bool)
    for ann, entry in zip(anns, data["instances"], strict=True):
        mask = mask_utils.decode(dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())) > 0
        assert (label[mask] == ann["category_id"] - 1).all()  # one class per component
        assert ann["source"] == entry["source"] == "component" and entry["box"] is None
        assert entry["objectness"] is None and ann["proposal"] is None
        assert not (union & mask).any()
        union |= mask
    assert any(a["bbox"] == [0, 0, 4, 4] for a in anns)
    scores = [a["score"] for a in anns]  # mean probability of the class: 0.9 where the label was not edited
    assert sum(sc == pytest.approx(0.9) for sc in scores) >= len(scores) - 2 and min(scores) < 0.5
    assert not any(a["bbox"][:2] == [W - 2, H - 2] for a in anns)
    big = (label != 0) & ~union
    assert big.sum() < 16 * 4  # everything else of every object class is covered by some component


def test_label_override_exports_the_edited_map(tmp_path: Path) -> None:
    image, result = _instance_result()
    edited = result.label.copy()
    edited[10:20, 10:30] = 255
    edited[50:60, 70:90] = 3
    export_result(tmp_path, "e", image, result, ["palette", "index", "overlay"], label=edited)
    for name in ("e.png", "e_index.png"):
        with Image.open(tmp_path / name) as im:
            np.testing.assert_array_equal(np.asarray(im), edited)
    with Image.open(tmp_path / "e_overlay.png") as im:
        over = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(over[10:20, 10:30], image[10:20, 10:30])  # void shows the image
    with pytest.raises(ValueError, match="does not match"):
        export_result(tmp_path, "bad", image, result, ["palette"], label=edited[:-1])


def test_refuses_to_overwrite_and_names_the_file(tmp_path: Path) -> None:
    image, result = _instance_result()
    formats = ["palette", "instances"]
    assert existing_outputs(tmp_path, "s", formats) == []
    export_result(tmp_path, "s", image, result, formats)
    assert existing_outputs(tmp_path, "s", formats) == output_paths(tmp_path, "s", formats)
    before = (tmp_path / "s.png").read_bytes()
    edited = np.zeros_like(result.label)
    with pytest.raises(OutputError, match="already exists") as info:
        export_result(tmp_path, "s", image, result, formats, label=edited)
    assert info.value.path == str(tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes() == before
    export_result(tmp_path, "s", image, result, formats, overwrite=True, label=edited)
    with Image.open(tmp_path / "s.png") as im:
        assert not np.asarray(im).any()


def test_overwrite_removes_stale_instance_masks(tmp_path: Path) -> None:
    image, result = _instance_result()
    export_result(tmp_path, "s", image, result, ["instances"])
    n_before = len(list((tmp_path / "s_instances").iterdir()))
    fewer = instance_records(result)[:1]
    result.include[[r.index for r in instance_records(result)[1:]]] = False
    export_result(tmp_path, "s", image, result, ["instances"], overwrite=True)
    left = sorted(p.name for p in (tmp_path / "s_instances").iterdir())
    assert n_before > 1 and left == [f"{fewer[0].index + 1:03d}.png"]
    assert len(json.loads((tmp_path / "s_instances.json").read_text())["instances"]) == 1


def test_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    image, result = _instance_result()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot create the output folder") as info:
        export_result(blocker / "out", "s", image, result, ["palette"])
    assert "a_file" in str(info.value)
    with pytest.raises(OutputError, match="is a file, not a folder"):
        export_result(blocker, "s", image, result, ["palette"])


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_is_refused_up_front(tmp_path: Path) -> None:
    image, result = _instance_result()
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            export_result(folder, "s", image, result, FORMATS)
    finally:
        folder.chmod(0o700)


def test_interrupted_png_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image, result = _instance_result()

    def half_then_fail(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"\x89PNG\r\n\x1a\n half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", half_then_fail)
    with pytest.raises(OutputError, match="No space left") as info:
        export_result(tmp_path, "s", image, result, ["palette"])
    assert info.value.path == str(tmp_path / "s.png")
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary file


def test_interrupted_json_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image, result = _instance_result()
    real_write_bytes = Path.write_bytes

    def half_then_fail(self: Path, data: bytes) -> int:
        real_write_bytes(self, data[: len(data) // 2])
        raise KeyboardInterrupt  # an interruption, not an OSError: it must propagate and still clean up

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        export_result(tmp_path, "s", image, result, ["coco"])
    assert list(tmp_path.iterdir()) == []


def test_folder_export_writes_one_coco_file(tmp_path: Path) -> None:
    made = [_instance_result(1), _instance_result(2), _whole_result(3)]
    paths = [Path("in/a.png"), Path("in/b.png"), Path("in/a.jpg")]  # a.png and a.jpg share a stem
    calls: list[tuple[int, int, str]] = []
    items = ((p, img, res) for p, (img, res) in zip(paths, made, strict=True))
    out = tmp_path / "out"
    formats = ["palette", "instances", "coco"]
    written = export_folder(items, out, formats, progress=lambda d, t, s: calls.append((d, t, s)))
    assert calls == [(1, 0, "export"), (2, 0, "export"), (3, 0, "export")]
    assert {out / "a.png", out / "b.png", out / "a_jpg.png", out / "coco.json"} <= set(written)
    assert not (out / "a_coco.json").exists()
    assert existing_folder_outputs(out, paths, formats) == folder_output_paths(out, paths, formats)
    coco = json.loads((out / "coco.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == ["a.png", "b.png", "a.jpg"]
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
    for image_id, (_, res) in enumerate(made, start=1):
        anns = [a for a in coco["annotations"] if a["image_id"] == image_id]
        assert len(anns) == len(instance_records(res)) > 0
    with pytest.raises(OutputError, match="already exists") as info:
        export_folder([(paths[0], *made[0])], out, formats)
    assert info.value.path == str(out / "coco.json")


def test_folder_export_cancel_writes_no_coco(tmp_path: Path) -> None:
    token = CancelToken()
    image, result = _instance_result()

    def items():
        yield Path("a.png"), image, result
        token.cancel()
        yield Path("b.png"), image, result

    with pytest.raises(Cancelled):
        export_folder(items(), tmp_path, ["palette", "coco"], cancel=token)
    assert (tmp_path / "a.png").exists()
    assert not (tmp_path / "b.png").exists() and not (tmp_path / "coco.json").exists()


def test_unknown_format_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        output_paths(tmp_path, "s", ["palette", "tiff"])
    assert result_files.check_formats(["coco", "palette", "coco"]) == ("palette", "coco")


def test_instances_follow_the_hand_edits(tmp_path: Path) -> None:
    image, result = _instance_result()
    before = {r.index: r for r in instance_records(result)}
    erased, trimmed = sorted(before)[:2]
    edited = result.label.copy()
    edited[before[erased].mask] = 0  # erase one instance completely
    cut = before[trimmed].mask.copy()
    cut[: int(np.nonzero(cut)[0].mean())] = False  # and the lower half of another one
    edited[cut] = 0
    free = (result.label == 0) & (edited == 0)
    ys, xs = np.nonzero(free)
    y, x = ys[len(ys) // 2], xs[len(xs) // 2]
    blob = np.zeros((H, W), bool)
    blob[max(y - 3, 0):y + 3, max(x - 3, 0):x + 3] = True
    blob &= free
    edited[blob] = 2  # a new object painted on the background
    grow_cls = before[sorted(before)[-1]].class_id
    host = before[sorted(before)[-1]].mask
    rim = np.zeros((H, W), bool)
    ys, xs = np.nonzero(host)
    rim[ys.min():ys.max() + 1, min(xs.max() + 1, W - 1)] = True  # a 1-px column right of the instance
    rim &= edited == 0
    edited[rim] = grow_cls

    after = instance_records(result, edited)
    by_index = {r.index: r for r in after}
    assert erased not in by_index
    np.testing.assert_array_equal(by_index[trimmed].mask, before[trimmed].mask & ~(cut & (result.label != 0)))
    if rim.any():
        assert by_index[sorted(before)[-1]].mask[rim].all()  # touching paint joins the instance of its class
    new = [r for r in after if r.source == "edit"]
    assert len(new) == 1 and new[0].class_id == 2 and new[0].score == 1.0
    np.testing.assert_array_equal(new[0].mask, blob)
    assert new[0].index >= result.num_proposals  # its mask file cannot clash with a proposal's

    export_result(tmp_path, "e", image, result, ["instances"], label=edited)
    entries = json.loads((tmp_path / "e_instances.json").read_text())["instances"]
    assert [e["source"] for e in entries].count("edit") == 1
    assert next(e for e in entries if e["source"] == "edit")["proposal"] is None
    assert instance_records(result, result.label.copy())[0].mask.sum() == before[sorted(before)[0]].mask.sum()


def test_an_export_finishes_an_interrupted_set_and_removes_only_our_stale_temporaries(tmp_path: Path) -> None:
    import subprocess
    import sys

    from deconv_gui.io.atomic import COMMIT_MARK

    image, result = _instance_result()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = proc.pid
    out = tmp_path / "out"
    out.mkdir()
    stale = [f".scene.png.deconv-tmp-{dead}-0123abcd.png", f".other_instances.deconv-tmp-{dead}-89abcdef"]
    (out / stale[0]).write_bytes(b"half a png")
    (out / stale[1]).mkdir()  # a set a kill cut short while staging: no commit mark
    (out / stale[1] / "000.png").write_bytes(b"mask")
    swapped = out / "old_instances"  # a set a kill cut inside its swap: masks in, JSON still staged
    swapped.mkdir()
    (swapped / ".deconv-staged.json").write_text('{"instances": []}')
    (swapped / COMMIT_MARK).write_text(json.dumps({"pid": dead, "folder": "old_instances",
                                                   "json": "old_instances.json"}))
    foreign = [".scene.png.tmpk3j_x9q1.png", "notes.deconv-tmp-1.txt", ".hidden"]
    for name in foreign:
        (out / name).write_bytes(b"not ours")
    export_result(out, "scene", image, result, ("palette", "instances"))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*foreign, "scene.png", "scene_instances", "scene_instances.json", "old_instances", "old_instances.json"])
    assert json.loads((out / "old_instances.json").read_text()) == {"instances": []}
    assert sorted(p.name for p in swapped.iterdir()) == []
