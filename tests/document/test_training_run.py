"""Training run model without Qt: command lines, metrics tailing, run summary, the training process."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.document.training_process import PID_FILE, TrainingProcess
from deconv_gui.document.training_run import (
    CHAINED_STAGES,
    MetricsTail,
    RunState,
    RunSummary,
    TextTail,
    TrainRequest,
    format_eta,
    load_summary,
    parse_overrides,
    plan_runs,
    result_checkpoint,
    resume_argv,
)

FAKE_TRAINER = Path(__file__).resolve().parents[1] / "ui" / "fake_trainer.py"
FAKE_COMMAND = [sys.executable, str(FAKE_TRAINER)]


def _request(tmp_path: Path, **changes: object) -> TrainRequest:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    fields: dict = dict(data=data, format="folder", arch="deconvnet", width=0.0625, stage="whole",
                        iterations=30, batch_size=2, run_dir=tmp_path / "run")
    fields.update(changes)
    return TrainRequest(**fields)


def test_argv_has_every_flag(tmp_path: Path) -> None:
    req = _request(tmp_path, lr=0.005, device="cuda", init=tmp_path / "s1.pt", overrides={"val_every": "10"})
    argv = req.argv()
    assert argv[:4] == [sys.executable, "-m", "deconv_gui.cli", "train"]
    pairs = dict(zip(argv[4::2], argv[5::2], strict=False))
    assert pairs["--data"] == str(tmp_path / "data") and pairs["--format"] == "folder"
    assert pairs["--arch"] == "deconvnet" and pairs["--width"] == "0.0625" and pairs["--stage"] == "whole"
    assert pairs["--iterations"] == "30" and pairs["--batch-size"] == "2" and pairs["--lr"] == "0.005"
    assert pairs["--run-dir"] == str(tmp_path / "run") and pairs["--init"] == str(tmp_path / "s1.pt")
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert sets == ["val_every=10", "device=cuda"]
    assert "--lr" not in _request(tmp_path).argv(), "no lr = the config's default"
    assert "--set" not in _request(tmp_path).argv(), "device auto adds nothing"
    assert resume_argv(tmp_path / "run", ["x"]) == ["x", "--resume", str(tmp_path / "run")]


@pytest.mark.parametrize(("changes", "words"), [
    ({"data": Path("/nonexistent/data")}, "dataset folder does not exist"),
    ({"format": "coco"}, "unknown dataset format"),
    ({"iterations": 0}, "at least 1"),
    ({"lr": -1.0}, "learning rate"),
    ({"init": Path("/nonexistent/stage1.pt")}, "initial checkpoint does not exist"),
    ({"run_dir": Path("")}, "choose a run folder"),
])
def test_validate_names_the_problem(tmp_path: Path, changes: dict, words: str) -> None:
    with pytest.raises(DeconvGuiError, match=words):
        _request(tmp_path, **changes).validate()


def test_validate_refuses_an_existing_run(tmp_path: Path) -> None:
    req = _request(tmp_path)
    req.validate()
    req.run_dir.mkdir()
    (req.run_dir / "state.pt").write_bytes(b"x")
    with pytest.raises(DeconvGuiError, match="use Resume"):
        req.validate()


def test_chained_plan_initialises_stage2_from_stage1(tmp_path: Path) -> None:
    first, second = plan_runs(_request(tmp_path), CHAINED_STAGES)
    assert (first.stage, second.stage) == ("stage1", "stage2")
    assert first.run_dir == tmp_path / "run" / "stage1" and second.run_dir == tmp_path / "run" / "stage2"
    assert second.init == first.run_dir / "final.pt"
    assert first.init is None
    (only,) = plan_runs(_request(tmp_path), "stage2")
    assert only.stage == "stage2" and only.run_dir == tmp_path / "run"


def test_parse_overrides() -> None:
    assert parse_overrides("a=1, b=x  c=") == {"a": "1", "b": "x", "c": ""}
    assert parse_overrides("  ") == {}
    with pytest.raises(DeconvGuiError, match="key=value"):
        parse_overrides("novalue")


def test_metrics_tail_reads_increments_and_tolerates_bad_input(tmp_path: Path, caplog) -> None:
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read() == [], "missing file reads as nothing"
    with open(path, "w") as f:
        f.write(json.dumps({"kind": "train", "iteration": 1}) + "\n" + '{"kind": "tra')
    assert [r["iteration"] for r in tail.read()] == [1], "the partial last line waits"
    with open(path, "a") as f:
        f.write('in", "iteration": 2}\nnot json\n[1, 2]\n\n' + json.dumps({"kind": "val", "iteration": 2}) + "\n")
    records = tail.read()
    assert [(r["kind"], r["iteration"]) for r in records] == [("train", 2), ("val", 2)]
    assert tail.bad_lines == 2 and "not a metrics record" in caplog.text
    assert tail.read() == []
    path.write_text(json.dumps({"kind": "event", "event": "started", "iteration": 0}) + "\n")
    assert [r["kind"] for r in tail.read()] == ["event"], "a replaced (shorter) file is read from the start"


def test_metrics_tail_starts_again_when_a_resume_replaces_the_file(tmp_path: Path) -> None:
    from deconv_gui.training.metrics_log import truncate_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(_train(i)) + "\n" for i in (1, 2, 3, 4)))
    tail = MetricsTail(path)
    assert [r["iteration"] for r in tail.read()] == [1, 2, 3, 4] and not tail.restarted
    truncate_metrics(path, 2)  # a resume from iteration 2: atomically replaced ...
    with open(path, "a") as f:  # ... and the resumed run has already logged past the old end
        f.write("".join(json.dumps(_train(i, loss=0.5)) + "\n" for i in (3, 4, 5, 6, 7)))
    records = tail.read()
    assert tail.restarted and [r["iteration"] for r in records] == [1, 2, 3, 4, 5, 6, 7]
    summary = RunSummary()
    summary.update(records)
    assert summary.train_iterations == [1, 2, 3, 4, 5, 6, 7]
    assert tail.read() == [] and not tail.restarted


def test_text_tail_keeps_last_carriage_return_segment(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    path.write_bytes(b"hello\n 10%|#   \r 50%|#####  \r100%|########\nnext")
    tail = TextTail(path)
    assert tail.read_lines() == ["hello", "100%|########"]
    with open(path, "ab") as f:
        f.write(" line \xe9\n".encode())
    assert tail.read_lines() == ["next line \xe9"]
    # the last 20 bytes are "####\nnext line \xe9\n": the cut first line is dropped
    assert TextTail(path, initial_bytes=20).read_lines() == ["next line \xe9"]
    assert TextTail(path, initial_bytes=1000).read_lines() == ["hello", "100%|########", "next line \xe9"]


def _train(it: int, n: int = 10, loss: float = 1.0) -> dict:
    return {"kind": "train", "iteration": it, "max_iterations": n, "epoch": 0, "loss": loss, "lr": 0.01,
            "pixel_acc": 0.5, "images_per_s": 10.0, "eta_s": 5.0 * (n - it), "time": 0.0}


def _val(it: int, miou: float) -> dict:
    return {"kind": "val", "iteration": it, "miou": miou, "pixel_acc": 0.6, "class_iou": {"a": miou, "b": None}}


def _event(name: str, it: int, path: str | None = None) -> dict:
    return {"kind": "event", "event": name, "iteration": it, "path": path, "message": name + " msg"}


def test_summary_follows_a_run_through_resume() -> None:
    s = RunSummary()
    s.update([_event("started", 0), *[_train(i) for i in range(1, 7)], _val(3, 0.4), _val(6, 0.3)])
    assert s.state == RunState.RUNNING and s.iteration == 6 and s.max_iterations == 10
    assert s.eta_s == 20.0 and s.progress == pytest.approx(0.6)
    assert (s.best_miou, s.best_iteration) == (0.4, 3)
    assert s.class_iou == {"a": 0.3, "b": None}
    s.update([_event("stopped", 6, "/r/state.pt")])
    assert s.state == RunState.STOPPED and s.checkpoint == "/r/state.pt"
    # the interrupted run had logged up to 6 but checkpointed at 2: resuming drops 3..6
    s.update([_event("resumed", 2), _train(3, loss=0.5)])
    assert s.state == RunState.RUNNING
    assert s.train_iterations == [1, 2, 3] and s.loss[-1] == 0.5
    assert s.val_iterations == [] and s.best_miou is None
    s.update([_val(10, 0.7), _event("finished", 10, "/r/final.pt"), {"kind": "val", "iteration": "x"}])
    assert s.state == RunState.FINISHED and s.best_miou == 0.7 and s.checkpoint == "/r/final.pt"


def test_summary_process_exit_states() -> None:
    crashed = RunSummary()
    crashed.update([_event("started", 0), _train(1)])
    crashed.process_exited(1, last_output="Traceback: boom")
    assert crashed.state == RunState.FAILED and "exit status 1" in crashed.message and "boom" in crashed.message
    stopped = RunSummary()
    stopped.update([_event("stopped", 4)])
    stopped.process_exited(0)
    assert stopped.state == RunState.STOPPED
    killed = RunSummary(state=RunState.STOPPING)
    killed.process_exited(-9, killed=True)
    assert killed.state == RunState.STOPPED and "killed" in killed.message
    errored = RunSummary()
    errored.update([_event("error", 3)])
    errored.process_exited(2)
    assert errored.state == RunState.FAILED and errored.message == "error msg"


def test_format_eta_and_result_checkpoint(tmp_path: Path) -> None:
    assert format_eta(3725) == "1h 02m" and format_eta(75) == "1m 15s" and format_eta(9) == "9s"
    assert format_eta(None) == "–" and format_eta(math.nan) == "–"
    assert result_checkpoint(tmp_path) is None
    (tmp_path / "final.pt").write_bytes(b"f")
    assert result_checkpoint(tmp_path) == tmp_path / "final.pt"
    (tmp_path / "best.pt").write_bytes(b"b")
    assert result_checkpoint(tmp_path) == tmp_path / "best.pt"


def test_process_runs_to_the_end_and_summary_loads(tmp_path: Path) -> None:
    req = _request(tmp_path, iterations=6, overrides={"fake_delay": "0"})
    proc = TrainingProcess.start(req.argv(FAKE_COMMAND), req.run_dir)
    assert (req.run_dir / PID_FILE).exists()
    assert proc.wait(30)
    assert proc.returncode == 0 and not (req.run_dir / PID_FILE).exists()
    summary = load_summary(req.run_dir)
    assert summary.state == RunState.FINISHED and summary.train_iterations == [1, 2, 3, 4, 5, 6]
    assert "fake trainer: finished" in (req.run_dir / "console.log").read_text()


def test_process_terminate_checkpoints_and_kill_ends_a_stubborn_one(tmp_path: Path) -> None:
    req = _request(tmp_path, iterations=100000, overrides={"fake_delay": "0.01"})
    proc = TrainingProcess.start(req.argv(FAKE_COMMAND), req.run_dir)
    tail = MetricsTail(req.run_dir / "metrics.jsonl")
    summary = RunSummary()
    while not summary.train_iterations:
        summary.update(tail.read())
        assert proc.poll(), (req.run_dir / "console.log").read_text()
    attached = TrainingProcess.attach(req.run_dir)
    assert attached is not None and attached.pid == proc.pid and attached.poll()
    proc.terminate()
    assert proc.wait(30) and proc.returncode == 0
    summary.update(tail.read())
    assert summary.state == RunState.STOPPED and (req.run_dir / "state.pt").exists()
    assert TrainingProcess.attach(req.run_dir) is None

    stubborn = _request(tmp_path, run_dir=tmp_path / "run2", iterations=100000,
                        overrides={"fake_delay": "0.01", "fake_ignore_term": "1"})
    proc = TrainingProcess.start(stubborn.argv(FAKE_COMMAND), stubborn.run_dir)
    console = stubborn.run_dir / "console.log"
    while "from iteration" not in console.read_text():
        assert proc.poll()
    proc.terminate()
    while "ignoring signal" not in console.read_text():
        assert proc.poll()
    assert proc.poll(), "SIGTERM was ignored"
    proc.kill()
    assert proc.wait(30) and proc.returncode == -9


def test_process_that_cannot_start_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(DeconvGuiError, match="cannot start"):
        TrainingProcess.start([str(tmp_path / "no-such-program")], tmp_path / "run")


def test_training_survives_the_app_dying(tmp_path: Path) -> None:
    """An "app" process starts the trainer and is SIGKILLed: training goes on, a new app attaches and stops it."""
    import subprocess

    req = _request(tmp_path, iterations=100000, overrides={"fake_delay": "0.01"})
    app = ("import os, signal, sys, time\n"
           "from pathlib import Path\n"
           "from deconv_gui.document.training_process import TrainingProcess\n"
           "TrainingProcess.start(sys.argv[2:], Path(sys.argv[1]))\n"
           "while not (Path(sys.argv[1]) / 'metrics.jsonl').exists(): time.sleep(0.01)\n"
           "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", app, str(req.run_dir), *req.argv(FAKE_COMMAND)], timeout=60)
    assert done.returncode == -9
    proc = TrainingProcess.attach(req.run_dir)
    assert proc is not None and proc.attached
    tail = MetricsTail(req.run_dir / "metrics.jsonl")
    seen = len(tail.read())
    while not tail.read():  # still writing metrics after the app died
        assert proc.poll()
    proc.terminate()
    assert proc.wait(30) and proc.returncode is None, "exit status unknown for an attached process"
    summary = load_summary(req.run_dir)
    assert seen > 0 and summary.state == RunState.STOPPED


def test_guess_format_and_default_run_dir(tmp_path: Path, monkeypatch) -> None:
    from deconv_gui.document.training_run import default_run_dir, guess_format

    (tmp_path / "cam" / "trainannot").mkdir(parents=True)
    (tmp_path / "voc" / "JPEGImages").mkdir(parents=True)
    (tmp_path / "fold" / "images").mkdir(parents=True)
    (tmp_path / "fold" / "masks").mkdir()
    assert [guess_format(tmp_path / n) for n in ("cam", "voc", "fold")] == ["camvid", "voc", "folder"]
    assert guess_format(tmp_path) is None
    monkeypatch.setenv("DECONV_GUI_RUNS_DIR", str(tmp_path / "runs"))
    run = default_run_dir("fcn8s", CHAINED_STAGES, now=0)
    assert run.parent == tmp_path / "runs" and run.name.startswith("fcn8s-stage1-stage2-19")


def test_latest_run_dir_and_a_run_whose_process_vanished(tmp_path: Path) -> None:
    from deconv_gui.document.training_run import latest_run_dir

    assert latest_run_dir(tmp_path) == tmp_path
    (tmp_path / "stage1").mkdir()
    (tmp_path / "stage1" / "metrics.jsonl").write_text(
        json.dumps(_event("started", 0)) + "\n" + json.dumps(_train(1)) + "\n")
    assert latest_run_dir(tmp_path) == tmp_path / "stage1"
    summary = load_summary(tmp_path / "stage1")
    assert summary.state == RunState.RUNNING
    summary.process_exited(None, last_output="Killed")
    assert summary.state == RunState.FAILED and "unknown status" in summary.message
    early = RunSummary(state=RunState.STOPPING)
    early.process_exited(-15, killed=True, has_checkpoint=False)
    assert early.state == RunState.STOPPED and "before its first checkpoint" in early.message
