"""Interrupted runs: SIGKILL after a checkpoint + --resume equals an uninterrupted run; SIGTERM stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deconv_gui.training.checkpointing import load_state
from deconv_gui.training.config import build_config
from deconv_gui.training.engine import resume_config, run_training

ITERATIONS = 30
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deconv_gui.training.synthetic_tree import write_synthetic_tree

    return write_synthetic_tree(tmp_path_factory.mktemp("tree") / "data", "folder", n_train=5, n_val=1,
                                height=96, width=128, seed=7)


def _args(tree: Path, run_dir: Path, iterations: int = ITERATIONS) -> list[str]:
    # fcn8s has dropout: resuming must restore the torch RNG too, not only weights and optimizer.
    return ["--data", str(tree), "--format", "folder", "--arch", "fcn8s", "--width", "0.0625", "--stage", "whole",
            "--iterations", str(iterations), "--batch-size", "2", "--grad-accum", "2", "--run-dir", str(run_dir),
            "--checkpoint-every", "3", "--val-every", "0", "--val-limit", "1", "--log-every", "1", "--threads", "1",
            "--set", "crop=[64,64]", "--set", "lr=0.02"]


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "deconv_gui.cli", "train", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def _wait_for(proc: subprocess.Popen, run_dir: Path, predicate, timeout: float = 120.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(predicate(r) for r in _events(run_dir)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("timed out waiting for the run")


def _cfg(tree: Path, run_dir: Path):  # noqa: ANN202
    from deconv_gui.cli import build_parser
    from deconv_gui.training.cli_train import resolve_train_config

    cfg, _ = resolve_train_config(build_parser().parse_args(["train", *_args(tree, run_dir)]))
    return cfg


def test_sigkill_then_resume_reaches_the_uninterrupted_weights(tree: Path, tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    proc = _start(_args(tree, killed))
    _wait_for(proc, killed, lambda r: r.get("event") == "checkpoint" and r["iteration"] >= 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    stopped_at = load_state(killed)["iteration"]
    assert 3 <= stopped_at < ITERATIONS  # really interrupted mid-run

    result = run_training(resume_config(killed), resume=True)
    assert result.status == "finished" and result.iteration == ITERATIONS
    assert any(r.get("event") == "resumed" and r["iteration"] == stopped_at for r in _events(killed))
    trained = [r["iteration"] for r in _events(killed) if r["kind"] == "train"]
    assert trained == list(range(1, ITERATIONS + 1))  # the iterations the kill lost are not drawn twice

    straight = tmp_path / "straight"
    run_training(_cfg(tree, straight))
    a, b = load_state(killed)["model"], load_state(straight)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), rtol=1e-5, atol=1e-6), key
    # ... and it is not trivially equal: the weights moved away from the initialisation
    init_cfg = build_config({}, {"arch": "fcn8s", "width": 0.0625})
    from deconv_gui.training.run_setup import make_model

    init = make_model(init_cfg, 6).state_dict()
    assert any(not torch.allclose(init[k].float(), a[k].float()) for k in a if k.endswith("weight"))


def test_sigterm_saves_state_and_writes_a_stopped_event(tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "term"
    proc = _start(_args(tree, run, iterations=100000))
    _wait_for(proc, run, lambda r: r.get("kind") == "train" and r["iteration"] >= 2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "--resume" in out
    last = _events(run)[-1]
    assert last["kind"] == "event" and last["event"] == "stopped"
    state = load_state(run)
    assert state["iteration"] == last["iteration"] >= 2
    assert "Traceback" not in err
