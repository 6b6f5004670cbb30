"""Training meets bad files and full disks: one clear message naming the file, nothing half-written;
a resumed run's metrics hold each iteration once."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deconv_gui.cli import main
from deconv_gui.core.errors import CheckpointError, OutputError
from deconv_gui.io.atomic import temp_owner
from deconv_gui.training import engine
from deconv_gui.training.checkpointing import STATE_FILE, load_state, save_state
from deconv_gui.training.engine import resume_config, run_training

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deconv_gui.training.synthetic_tree import write_synthetic_tree

    return write_synthetic_tree(tmp_path_factory.mktemp("tree") / "data", "folder", n_train=3, n_val=1,
                                height=64, width=64, seed=7)


def _args(tree: Path, run_dir: Path, iterations: int = 2, every: int = 1) -> list[str]:
    return ["train", "--data", str(tree), "--format", "folder", "--arch", "fcn8s", "--width", "0.0625",
            "--stage", "whole", "--iterations", str(iterations), "--batch-size", "1", "--run-dir", str(run_dir),
            "--checkpoint-every", str(every), "--val-every", "0", "--log-every", "1", "--threads", "1",
            "--set", "crop=[64,64]"]


@pytest.fixture(scope="module")
def finished_run(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "ok"
    assert main(_args(tree, run)) == 0
    return run


def _resume_error(run: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


class _RunsCode:
    def __reduce__(self) -> tuple:
        return (print, ("this must never run",))


def test_resume_refuses_a_code_carrying_state_in_one_line(finished_run: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "evil"
    run.mkdir()
    state = torch.load(finished_run / STATE_FILE, weights_only=True)
    torch.save({**state, "rng": _RunsCode()}, run / STATE_FILE)
    capsys.readouterr()
    err = _resume_error(run, capsys)
    assert str(run / STATE_FILE) in err and "refused: the file contains Python code" in err
    assert "weights_only" not in err and "must never run" not in capsys.readouterr().out


def test_resume_with_a_misshaped_state_names_the_file_and_the_first_bad_key(
        finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = load_state(finished_run)
    key = next(iter(state["model"]))
    run = tmp_path / "misshaped"
    run.mkdir()
    torch.save({**state, "model": {**state["model"], key: torch.zeros(3)}}, run / STATE_FILE)
    with pytest.raises(CheckpointError, match=f"does not fit the model: {key} has shape \\(3,\\)") as info:
        run_training(resume_config(run), resume=True)
    assert info.value.path == str(run / STATE_FILE)

    extra = dict(state["model"], **{"head.surprise": torch.zeros(1)})
    torch.save({**state, "model": extra}, run / STATE_FILE)
    assert "unexpected head.surprise" in _resume_error(run, capsys)

    optimizer = {**state["optimizer"], "param_groups": []}
    torch.save({**state, "optimizer": optimizer}, run / STATE_FILE)
    err = _resume_error(run, capsys)
    assert str(run / STATE_FILE) in err and "does not fit this run" in err

    torch.save({k: v for k, v in state.items() if k != "rng"}, run / STATE_FILE)
    assert "incomplete training state: no rng" in _resume_error(run, capsys)


def _limit_file_size() -> None:  # in the child: writes past 1 MB fail (EFBIG), as on a full disk
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_training_onto_a_full_disk_stops_with_one_message_and_no_partial_file(tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "full"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "deconv_gui.cli", *_args(tree, run)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {run / STATE_FILE}: cannot write: File too large"], proc.stderr
    left = sorted(p.name for p in run.iterdir())
    assert STATE_FILE not in left and not [n for n in left if temp_owner(n) is not None], left
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "error" and "cannot write" in events[-1]["message"]


@pytest.fixture
def tiny_disk(tmp_path: Path):  # noqa: ANN201 - a real filesystem with 64 KiB (root only)
    mount = tmp_path / "tiny"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                                                        str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_state_save_on_a_really_full_disk_names_the_file_and_leaves_nothing(tiny_disk: Path) -> None:
    model = torch.nn.Linear(200, 200)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(OutputError, match="No space left on device") as info:
        save_state(tiny_disk, model=model, optimizer=optimizer, scaler_state={}, iteration=1, epoch=0,
                   best_miou=float("nan"), config={})
    assert info.value.path == str(tiny_disk / STATE_FILE)
    assert list(tiny_disk.iterdir()) == []


def test_metrics_after_a_crash_and_resume_hold_each_iteration_once(tree: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "crashed"
    real_step = engine._Trainer._step
    calls = []

    def crash_at_the_fifth_step(self, batches):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("simulated crash")
        return real_step(self, batches)

    monkeypatch.setattr(engine._Trainer, "_step", crash_at_the_fifth_step)
    with pytest.raises(RuntimeError, match="simulated crash"):
        assert main(_args(tree, run, iterations=8, every=3))
    monkeypatch.undo()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["iteration"] for x in lines if '"train"' in x] == [1, 2, 3, 4]  # 4: after the checkpoint
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "iterat')  # and a line a kill tore

    assert load_state(run)["iteration"] == 3
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale, foreign = run / f".state.pt.deconv-tmp-{proc.pid}-0123abcd.pt", run / ".state.tmpk3j_x9q1.pt"
    for path in (stale, foreign):
        path.write_bytes(b"half a state")  # a kill during a save left ours
    assert run_training(resume_config(run), resume=True).status == "finished"
    assert not stale.exists() and foreign.exists()
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["kind"] == "train"] == list(range(1, 9))
    events = [(r["event"], r["iteration"]) for r in records if r["kind"] == "event"]
    assert events[:3] == [("started", 0), ("checkpoint", 3), ("error", 0)]
    assert ("resumed", 3) in events and events[-1] == ("finished", 8)
