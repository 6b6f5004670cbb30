"""``torchrun --nproc_per_node 2 -m deconv_gui.cli segment DIR``: 2 gloo processes on the CPU share the files,
each image is done exactly once, rank 0 merges one valid COCO file (pycocotools loads it) and a summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from pycocotools.coco import COCO

from deconv_gui.cli import main, shard_files
from deconv_gui.core.synthetic import make_scene
from tests.conftest import save_tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]


def test_shard_files_is_a_disjoint_cover_keeping_same_stems_together() -> None:
    files = [Path(n) for n in ("a.jpg", "a.png", "b.png", "c.png", "d.png", "e.png")]
    shares = [shard_files(files, r, 3) for r in range(3)]
    assert sorted(f for s in shares for f in s) == sorted(files)
    assert shares[0] == [Path("a.jpg"), Path("a.png"), Path("d.png")]  # a.* together, order kept
    assert shard_files(files, 0, 1) == files


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("many")
    for seed in range(5):
        Image.fromarray(make_scene(seed, height=96, width=128, min_size=30, max_size=70).image).save(
            d / f"img_{seed}.png")
    Image.fromarray(make_scene(9, height=96, width=128).image).save(d / "img_0.jpg")  # same stem as img_0.png
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 20)
    return d


def test_two_gloo_processes_segment_each_image_once(folder: Path, tmp_path: Path) -> None:
    ckpt = save_tiny_checkpoint(tmp_path / "fcn.pt", "fcn8s", width=0.125, seed=2)
    out = tmp_path / "out"
    common = ["segment", str(folder), "--weights", str(ckpt), "--mode", "whole", "--coco", "--device", "cpu",
              "--precision", "fp32"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "deconv_gui.cli", *common, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0  # broken.png failed: the run says so
    assert "6 of 7 images segmented" in proc.stdout and "by 2 processes" in proc.stdout
    assert proc.stdout.count("images segmented") == 1  # only rank 0 reports
    assert "broken.png" in proc.stderr

    summary = json.loads((out / "segment_summary.json").read_text())
    done = [f for r in summary["ranks"] for f in r["files"]]
    assert sorted(done) == sorted(str(p) for p in folder.iterdir())  # every image exactly once
    assert len(done) == len(set(done)) == 7
    assert all(r["files"] for r in summary["ranks"])  # both ranks worked
    assert summary["failed"] == [str(folder / "broken.png")] and summary["segmented"] == 6

    coco = COCO(str(out / "coco.json"))  # valid for pycocotools
    names = [img["file_name"] for img in coco.dataset["images"]]
    assert sorted(names) == sorted(p.name for p in folder.iterdir() if p.name != "broken.png")
    assert [img["id"] for img in coco.dataset["images"]] == list(range(1, 7))
    assert [a["id"] for a in coco.dataset["annotations"]] == list(range(1, len(coco.dataset["annotations"]) + 1))
    assert not list(out.glob(".coco.rank*"))  # the ranks' parts are gone

    # the same as one process
    single = tmp_path / "single"
    assert main([*common, "--out", str(single)]) == 1
    one = json.loads((single / "coco.json").read_text())
    assert one["images"] == coco.dataset["images"] and one["categories"] == coco.dataset["categories"]
    # the same output files: img_0.jpg → img_0.png, img_0.png → img_0_png.png on whichever rank had both
    assert sorted(p.name for p in out.iterdir()) == sorted([*(p.name for p in single.iterdir()),
                                                            "segment_summary.json"])
    assert (out / "img_0_png.png").exists()
    per_image = [(a["image_id"], a["category_id"]) for a in one["annotations"]]
    assert per_image == [(a["image_id"], a["category_id"]) for a in coco.dataset["annotations"]]
