"""``deconv-gui segment --instances --coco`` end to end on a folder of synthetic scenes.

The model is a tiny DeconvNet whose score layer says "square" everywhere, so every proposal is a non-empty
instance whose mask is exactly its visible box: the exported files can be checked against known answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from deconv_gui.cli import main
from deconv_gui.core.synthetic import SYNTHETIC_CLASSES, make_scene, synthetic_palette
from deconv_gui.io.checkpoints import ModelMeta, save_checkpoint
from deconv_gui.models.registry import build_model

# pycocotools' decode trips numpy 2's __array__ copy deprecation; only the tests decode.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

SQUARE = SYNTHETIC_CLASSES.index("square")
ARGS = ["--proposals", "3", "--min-side", "40", "--device", "cpu", "--ensemble", "off"]


@pytest.fixture(scope="module")
def square_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    n = len(SYNTHETIC_CLASSES)
    model = build_model("deconvnet", num_classes=n, width=0.0625)
    state = model.state_dict()
    state["score.weight"].zero_()
    state["score.bias"].copy_(torch.where(torch.arange(n) == SQUARE, 6.0, 0.0))
    meta = ModelMeta(architecture="deconvnet", width=0.0625, num_classes=n, class_names=list(SYNTHETIC_CLASSES),
                     palette=synthetic_palette()[:n].tolist())
    path = tmp_path_factory.mktemp("ckpt") / "square.pt"
    save_checkpoint(path, state, meta)
    return path


def _decode(segmentation: dict) -> np.ndarray:
    return mask_utils.decode(dict(segmentation, counts=segmentation["counts"].encode("ascii"))).astype(bool)


def _box_mask(box: list[float], hw: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(hw, bool)
    x0, y0, x1, y1 = (int(v) for v in box)
    mask[y0:y1, x0:x1] = True
    return mask


def test_segment_folder_instances_and_coco(square_ckpt: Path, scene_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["segment", str(scene_folder), "--weights", str(square_ckpt), "--out", str(out), "--instances",
            "--coco", *ARGS]
    assert main(argv) == 0
    coco = json.loads((out / "coco.json").read_text())
    names = sorted(p.name for p in scene_folder.iterdir())
    assert [i["file_name"] for i in coco["images"]] == names
    assert [c["name"] for c in coco["categories"]] == list(SYNTHETIC_CLASSES[1:])
    assert not list(out.glob("*_coco.json"))  # one COCO file for the folder
    ann_ids = [a["id"] for a in coco["annotations"]]
    assert len(set(ann_ids)) == len(ann_ids)
    for entry in coco["images"]:
        stem, hw = Path(entry["file_name"]).stem, (entry["height"], entry["width"])
        inst = json.loads((out / f"{stem}_instances.json").read_text())
        covered = np.zeros(hw, bool)
        for rec in inst["instances"]:
            covered |= _box_mask(rec["box"], hw)
        with Image.open(out / f"{stem}.png") as im:  # aggregation starts from 0: background outside every box
            assert im.mode == "P"
            np.testing.assert_array_equal(np.asarray(im), np.where(covered, SQUARE, 0))
        anns = [a for a in coco["annotations"] if a["image_id"] == entry["id"]]
        assert 1 <= len(anns) == len(inst["instances"]) <= 3
        for ann, rec in zip(anns, inst["instances"], strict=True):
            assert ann["proposal"] == rec["proposal"] and ann["category_id"] == rec["class_id"] + 1 == SQUARE + 1
            mask = _decode(ann["segmentation"])
            np.testing.assert_array_equal(mask, _box_mask(rec["box"], hw))  # the whole visible box
            with Image.open(out / rec["mask"]) as m:
                np.testing.assert_array_equal(np.asarray(m) == 255, mask)
            assert ann["area"] == rec["area"] == int(mask.sum())
            assert rec["mask_box"] == [int(v) for v in rec["box"]]
            expected = np.exp(6.0) / (np.exp(6.0) + len(SYNTHETIC_CLASSES) - 1)  # softmax of the biased scores
            assert ann["score"] == pytest.approx(expected, abs=1e-3)
            assert rec["mean_probability"] == pytest.approx(expected, abs=1e-3)
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporaries
    assert main(argv) == 0  # the CLI overwrites its earlier outputs


def test_segment_single_image_coco_and_whole_image_components(square_ckpt: Path, scene_folder: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    image = scene_folder / "scene_1.png"
    assert main(["segment", str(image), "--weights", str(square_ckpt), "--out", str(out), "--coco", "--mode",
                 "whole", "--overlay", *ARGS]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["scene_1.png", "scene_1_coco.json", "scene_1_overlay.png"]
    coco = json.loads((out / "scene_1_coco.json").read_text())
    (entry,) = coco["images"]
    assert entry["file_name"] == "scene_1.png"
    (ann,) = coco["annotations"]  # the label map is "square" everywhere: one component, the whole image
    assert ann["category_id"] == SQUARE + 1 and ann["source"] == "component"
    assert _decode(ann["segmentation"]).all() and ann["bbox"] == [0, 0, entry["width"], entry["height"]]


def test_segment_folder_with_a_latin1_name_and_odd_entries(square_ckpt: Path, tmp_path: Path, capsys) -> None:
    """A name that is not UTF-8 is exported like any other (JSON keeps its bytes as \\udcXX escapes); loops,
    broken links and sub-folders are each reported on one line and the run goes on."""
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    for seed, name in ((0, b"good.png"), (1, b"caf\xe9.png")):
        Image.fromarray(make_scene(seed, height=120, width=160).image).save(folder / os.fsdecode(name))
    (folder / "loop.png").symlink_to("loop.png")
    (folder / "gone.png").symlink_to("nowhere.png")
    (folder / "sub").mkdir()
    out = tmp_path / "out"
    assert main(["segment", str(folder), "--weights", str(square_ckpt), "--out", str(out), "--instances", "--coco",
                 *ARGS]) == 0
    captured = capsys.readouterr()
    assert "2 of 2 images segmented" in captured.out and "3 folder entries skipped" in captured.out
    assert f"skipped: {folder / 'loop.png'}: symbolic link loop" in captured.err
    assert f"skipped: {folder / 'gone.png'}: broken symbolic link" in captured.err
    assert f"skipped: {folder / 'sub'}: folder" in captured.err
    raw = (out / "coco.json").read_bytes()
    assert b"caf\\udce9.png" in raw  # valid UTF-8, the bad byte as an escape
    coco = json.loads(raw.decode("utf-8"))
    assert sorted(os.fsencode(i["file_name"]) for i in coco["images"]) == [b"caf\xe9.png", b"good.png"]
    inst = json.loads((out / os.fsdecode(b"caf\xe9_instances.json")).read_bytes().decode("utf-8"))
    assert os.fsencode(inst["image"]) == b"caf\xe9.png" and inst["instances"]


@pytest.mark.parametrize(("target", "reason"), [("a.png", "symbolic link loop"), ("b.png", "broken symbolic link")])
def test_segment_a_bad_link_is_one_line(square_ckpt: Path, tmp_path: Path, capsys, target: str, reason: str) -> None:
    link = tmp_path / "a.png"
    link.symlink_to(target)
    assert main(["segment", str(link), "--weights", str(square_ckpt), "--out", str(tmp_path / "out"), *ARGS]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {link}: {reason}") and err.count("\n") == 1


def test_an_output_folder_named_in_latin1_prints_under_a_strict_utf8_stdout(square_ckpt: Path, tmp_path: Path) -> None:
    """Under en_US.UTF-8 stdout is strict: the summary line naming the folder must not raise."""
    import os
    import subprocess
    import sys

    image = tmp_path / "a.png"
    Image.fromarray(make_scene(0, height=120, width=160).image).save(image)
    out = os.fsencode(tmp_path) + b"/r\xe9sultats"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "deconv_gui.cli", "segment", str(image), "--weights", str(square_ckpt),
                           "--out", os.fsdecode(out), *ARGS], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.endswith(b"r\\udce9sultats\n") and os.path.exists(out + b"/a.png")
