"""Edge Box proposal cache: computed once per image and config, on disk, reused by new objects and processes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer
from deconv_gui.training.datasets import open_dataset
from deconv_gui.training.proposal_cache import TRAINING_EDGE_BOX_CONFIG, ProposalCache, config_hash
from deconv_gui.training.synthetic_tree import write_synthetic_tree


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = write_synthetic_tree(tmp_path_factory.mktemp("pc") / "camvid", "camvid", n_train=3, n_val=1,
                                height=120, width=160)
    return open_dataset(root, "camvid", "train")


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts EdgeBoxProposer.candidates calls (the expensive part)."""
    calls: list[int] = []
    original = EdgeBoxProposer.candidates

    def counting(self, image):  # noqa: ANN001, ANN202
        calls.append(1)
        return original(self, image)

    monkeypatch.setattr(EdgeBoxProposer, "candidates", counting)
    return calls


def test_computes_once_and_reuses_the_files(ds, tmp_path: Path, counted: list[int]) -> None:  # noqa: ANN001
    cache = ProposalCache(tmp_path)
    first = cache.boxes(1, ds)
    assert len(counted) == 1 and cache.computed == 1
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 1 and files[0].name.startswith("scene_0001.png-")
    assert np.array_equal(cache.boxes(1, ds), first) and len(counted) == 1
    fresh = ProposalCache(tmp_path)   # nothing in memory: reads the file
    assert np.array_equal(fresh.boxes(1, ds), first) and len(counted) == 1 and fresh.computed == 0
    fresh.precompute(ds, progress=False)
    assert len(counted) == len(ds) and len(list(tmp_path.rglob("*.npz"))) == len(ds)
    ProposalCache(tmp_path).precompute(ds, progress=False)
    assert len(counted) == len(ds)


def test_selection_settings_reuse_the_cache_other_settings_do_not(ds, tmp_path: Path,  # noqa: ANN001
                                                                  counted: list[int]) -> None:
    base = ProposalCache(tmp_path, TRAINING_EDGE_BOX_CONFIG)
    boxes, scores = base.candidates(0, ds)
    assert len(boxes) == len(scores) > 0 and np.all(np.diff(scores) <= 0)
    few = ProposalCache(tmp_path, dataclasses.replace(TRAINING_EDGE_BOX_CONFIG, top_n=3, min_side=50.0))
    picked = few.boxes(0, ds)
    assert len(counted) == 1
    shorter = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert np.array_equal(picked, boxes[shorter >= 50][:3])
    other = dataclasses.replace(TRAINING_EDGE_BOX_CONFIG, alpha=0.5)
    assert config_hash(other) != config_hash(TRAINING_EDGE_BOX_CONFIG)
    ProposalCache(tmp_path, other).boxes(0, ds)
    assert len(counted) == 2 and len(list(tmp_path.iterdir())) == 2


def test_corrupt_file_is_recomputed(ds, tmp_path: Path, counted: list[int]) -> None:  # noqa: ANN001
    cache = ProposalCache(tmp_path)
    good = cache.boxes(2, ds)
    cache.path_for(ds.image_paths[2]).write_bytes(b"garbage")
    again = ProposalCache(tmp_path).boxes(2, ds)
    assert np.array_equal(again, good) and len(counted) == 2


def test_cache_survives_a_new_process(ds, tmp_path: Path) -> None:  # noqa: ANN001
    ProposalCache(tmp_path, EdgeBoxConfig(top_n=20, min_side=0.0)).precompute(ds, progress=False)
    script = f"""
import numpy as np
from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer
from deconv_gui.training.datasets import open_dataset
from deconv_gui.training.proposal_cache import ProposalCache

def refuse(self, image):
    raise SystemExit("Edge Boxes ran again")

EdgeBoxProposer.candidates = refuse
ds = open_dataset({str(ds.root)!r}, "camvid", "train")
cache = ProposalCache({str(tmp_path)!r}, EdgeBoxConfig(top_n=20, min_side=0.0))
print(sum(len(cache.boxes(i, ds)) for i in range(len(ds))), cache.computed)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    total, computed = (int(v) for v in done.stdout.split())
    assert computed == 0 and 0 < total <= 20 * len(ds)
