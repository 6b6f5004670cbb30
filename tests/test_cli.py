"""The deconv-gui CLI on synthetic scenes: palette PNGs, instances JSON, evaluate table, clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deconv_gui.cli import main
from deconv_gui.core.synthetic import SYNTHETIC_CLASSES, make_scene


def test_segment_folder_writes_palette_pngs_and_skips_bad_files(tiny_deconvnet_ckpt, scene_folder, tmp_path, capsys):
    folder = tmp_path / "in"
    shutil.copytree(scene_folder, folder)
    (folder / "broken.png").write_bytes(b"this is not a png")
    (folder / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    code = main(["segment", str(folder), "--weights", str(tiny_deconvnet_ckpt), "--out", str(out),
                 "--proposals", "3", "--min-side", "40", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1  # some files failed
    assert "broken.png" in err and "empty.jpg" in err and "Traceback" not in err
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["scene_0.png", "scene_1.png", "scene_2.png"]
    with Image.open(out / "scene_0.png") as im:
        assert im.mode == "P" and im.size == (320, 240)
        labels = np.asarray(im)
        assert labels.max() < len(SYNTHETIC_CLASSES)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # atomic writes leave nothing behind


def test_segment_instances_json(tiny_deconvnet_ckpt, scene_folder, tmp_path):
    out = tmp_path / "out"
    code = main(["segment", str(scene_folder / "scene_1.png"), "--weights", str(tiny_deconvnet_ckpt),
                 "--out", str(out), "--proposals", "4", "--min-side", "40", "--instances", "--overlay"])
    assert code == 0
    data = json.loads((out / "scene_1_instances.json").read_text())
    assert data["classes"] == list(SYNTHETIC_CLASSES)
    # Only proposals with a non-empty mask are instances (a random-init model may find none; tests/
    # test_cli_exports.py checks real instances end to end).
    assert len(data["instances"]) <= 4
    for entry in data["instances"]:
        assert len(entry["box"]) == 4 and entry["class_name"] in SYNTHETIC_CLASSES
        with Image.open(out / entry["mask"]) as m:
            assert m.size == (320, 240) and set(np.unique(np.asarray(m))) == {0, 255}
    assert (out / "scene_1_overlay.png").exists()


def _folder_dataset(root: Path, n: int = 2) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for seed in range(n):
        s = make_scene(10 + seed, height=96, width=128)
        Image.fromarray(s.image).save(root / "images" / f"s{seed}.png")
        Image.fromarray(s.semantic).save(root / "masks" / f"s{seed}.png")
    (root / "classes.txt").write_text("\n".join(SYNTHETIC_CLASSES))
    return root


def test_evaluate_prints_per_class_table(tiny_deconvnet_ckpt, tmp_path, capsys):
    data = _folder_dataset(tmp_path / "ds")
    code = main(["evaluate", "--data", str(data), "--format", "folder", "--weights", str(tiny_deconvnet_ckpt),
                 "--mode", "whole", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    for name in SYNTHETIC_CLASSES:
        assert name in out
    assert "mIoU" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--weights", "missing.pt"], "missing.pt"),
        (["--weights", "{bad}"], "bad.pt"),
    ],
)
def test_bad_weights_are_one_line(args, expected, scene_folder, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x89PNG not a checkpoint")
    args = [a.replace("{bad}", str(bad)) for a in args]
    code = main(["segment", str(scene_folder), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and expected in err[0]


def test_unwritable_output_folder(tiny_deconvnet_ckpt, scene_folder, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["segment", str(scene_folder), "--weights", str(tiny_deconvnet_ckpt), "--out", str(blocker / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "file" in err and "Traceback" not in err


def test_console_script_runs_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "deconv_gui.cli", "segment", str(tmp_path / "nope.png"),
                           "--weights", "x.pt", "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "nope.png" in proc.stderr


def test_pack_halves_and_splits_a_checkpoint(tiny_fcn_ckpt, tmp_path, capsys):
    import torch

    from deconv_gui.io.checkpoints import load_checkpoint

    assert main(["pack", str(tiny_fcn_ckpt), "--out", str(tmp_path / "p.pt"), "--fp16", "--max-file-mb", "0.1"]) == 0
    assert "p.part2.pt" in capsys.readouterr().out
    original, _ = load_checkpoint(tiny_fcn_ckpt)
    packed, _ = load_checkpoint(tmp_path / "p.pt")
    assert set(packed) == set(original)
    assert all(torch.allclose(packed[k].float(), original[k].float(), atol=1e-2, rtol=1e-2) for k in original)
