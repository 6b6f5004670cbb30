"""The same entry point under torchrun: 2 CPU processes (gloo) train, only rank 0 writes, ranks agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deconv_gui.models.registry import model_from_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deconv_gui.training.synthetic_tree import write_synthetic_tree

    return write_synthetic_tree(tmp_path_factory.mktemp("tree") / "data", "folder", n_train=4, n_val=2,
                                height=96, width=128, seed=11)


def test_two_gloo_processes_train_to_identical_weights(tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "deconv_gui.cli", "train", "--data", str(tree), "--format", "folder", "--arch", "fcn8s",
           "--width", "0.0625", "--stage", "whole", "--iterations", "4", "--batch-size", "2", "--device", "cpu",
           "--run-dir", str(run), "--checkpoint-every", "2", "--val-every", "2", "--log-every", "1",
           "--precise-bn", "2", "--set", "crop=[64,64]"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = json.loads((run / "ranks.json").read_text())["sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    events = [r["event"] for r in records if r["kind"] == "event"]
    assert events.count("started") == 1 and events[-1] == "finished"  # rank 1 wrote nothing
    assert [r["iteration"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    assert "2 process(es)" in records[0]["message"]
    assert [r["iteration"] for r in records if r["kind"] == "val"] == [2, 4]
    model, meta = model_from_checkpoint(run / "final.pt")
    assert meta.architecture == "fcn8s" and meta.train_config["precise_bn_batches"] == 2
