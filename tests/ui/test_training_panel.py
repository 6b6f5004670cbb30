"""The training panel driven offscreen with a fake trainer (tests/ui/fake_trainer.py): start, live curves, stop,
kill, resume, chained stages, use the checkpoint, failures, closing; one end-to-end run of the real trainer."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from deconv_gui.document.training_process import TrainingProcess  # noqa: E402
from deconv_gui.document.training_run import CHAINED_STAGES, RunState  # noqa: E402
from deconv_gui.ui.training_panel import TrainingPanel  # noqa: E402

FAKE_COMMAND = [sys.executable, str(Path(__file__).with_name("fake_trainer.py"))]
WAIT_MS = 20_000


@pytest.fixture()
def make_panel(qtbot, tmp_path: Path) -> Iterator:
    panels: list[TrainingPanel] = []

    def make(command: list[str] | None = FAKE_COMMAND, *, settings: str = "fake_delay=0.01",
             iterations: int = 20, run: str = "run", stage: str = "whole") -> TrainingPanel:
        """A panel whose form is filled in; ``command`` None = the real ``deconv-gui train``."""
        panel = TrainingPanel(train_command=command, poll_interval_ms=50)
        qtbot.addWidget(panel)
        data = tmp_path / "data"
        data.mkdir(exist_ok=True)
        panel.form.dataset.edit.setText(str(data))
        panel.form.format.setCurrentText("folder")
        panel.form.width_box.setValue(0.0625)
        panel.form.iterations.setValue(iterations)
        panel.form.batch_size.setValue(2)
        panel.form.settings.setText(settings)
        panel.form.run_dir.edit.setText(str(tmp_path / run))
        panel.form.stage.setCurrentIndex(panel.form.stage.findData(stage))
        panels.append(panel)
        return panel

    yield make
    for panel in panels:  # never leave a trainer behind
        if panel.process is not None:
            panel.process.kill()
            panel.process.wait(10)


def _x(item) -> list[float]:
    x, _ = item.getData()
    return [] if x is None else list(np.asarray(x))


def _wait_state(qtbot, panel: TrainingPanel, state: RunState) -> None:
    qtbot.waitUntil(lambda: panel.summary.state == state and panel.process is None, timeout=WAIT_MS)


def test_run_draws_curves_finishes_and_offers_its_checkpoint(qtbot, make_panel) -> None:
    panel = make_panel(iterations=20)
    assert not panel.use_button.isEnabled()
    with qtbot.waitSignal(panel.state_changed, timeout=WAIT_MS) as started:
        panel.start_button.click()
    assert started.args == ["running"] and not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    qtbot.waitUntil(lambda: len(_x(panel.curves.loss_item)) > 0, timeout=WAIT_MS)
    _wait_state(qtbot, panel, RunState.FINISHED)
    assert _x(panel.curves.loss_item) == list(range(1, 21))
    assert _x(panel.curves.pixel_acc_item) == list(range(1, 21))
    assert _x(panel.curves.miou_item) == [5, 10, 15, 20]
    _, loss = panel.curves.loss_item.getData()
    assert loss[0] > loss[-1]
    assert panel.progress.value() == 20 and panel.progress.maximum() == 20
    assert "Finished" in panel.status.text() and "best val mIoU" in panel.details.text()
    assert "fake trainer: finished" in panel.log_view.toPlainText()
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()
    assert not panel.resume_button.isEnabled(), "a finished run has nothing to resume"
    with qtbot.waitSignal(panel.use_checkpoint, timeout=1000) as used:
        panel.use_button.click()
    assert used.args == [str(panel.run_dir / "best.pt")]


def test_stop_saves_a_checkpoint_and_resume_continues(qtbot, make_panel) -> None:
    panel = make_panel(iterations=100000)
    panel.start_button.click()
    qtbot.waitUntil(lambda: len(_x(panel.curves.loss_item)) >= 3, timeout=WAIT_MS)
    panel.stop_button.click()
    assert panel.summary.state == RunState.STOPPING and panel.stop_button.text() == "Kill"
    _wait_state(qtbot, panel, RunState.STOPPED)
    assert "Stopped" in panel.status.text()
    stopped_at = json.loads((panel.run_dir / "state.pt").read_text())["iteration"]
    assert stopped_at >= 3 and panel.resume_button.isEnabled()

    with qtbot.waitSignal(panel.state_changed, timeout=WAIT_MS):
        panel.resume_button.click()
    assert panel.process is not None and panel.process.argv[-2:] == ["--resume", str(panel.run_dir)]
    qtbot.waitUntil(lambda: max(_x(panel.curves.loss_item)) > stopped_at, timeout=WAIT_MS)
    xs = _x(panel.curves.loss_item)
    assert xs == sorted(xs) and len(xs) == len(set(xs)), "curves continue without duplicate iterations"
    panel.stop_button.click()
    _wait_state(qtbot, panel, RunState.STOPPED)


def test_second_stop_kills_a_trainer_that_does_not_stop(qtbot, make_panel) -> None:
    panel = make_panel(settings="fake_delay=0.01 fake_ignore_term=1", iterations=100000)
    panel.start_button.click()
    qtbot.waitUntil(lambda: len(_x(panel.curves.loss_item)) > 0, timeout=WAIT_MS)
    panel.stop_button.click()
    qtbot.waitUntil(lambda: "ignoring signal" in panel.log_view.toPlainText(), timeout=WAIT_MS)
    assert panel.process is not None and panel.summary.state == RunState.STOPPING
    pid = panel.process.pid
    panel.stop_button.click()
    _wait_state(qtbot, panel, RunState.STOPPED)
    assert "killed" in panel.status.text()
    assert TrainingProcess.attach(panel.run_dir) is None
    assert not Path(f"/proc/{pid}/cmdline").exists() or not Path(f"/proc/{pid}/cmdline").read_bytes()


def test_chained_stages_run_stage2_from_stage1_weights(qtbot, make_panel, tmp_path: Path) -> None:
    panel = make_panel(iterations=6, stage=CHAINED_STAGES, settings="fake_delay=0")
    panel.start_button.click()
    qtbot.waitUntil(lambda: panel.run_dir == tmp_path / "run" / "stage2" and panel.process is None
                    and panel.summary.state == RunState.FINISHED, timeout=WAIT_MS)
    stage2 = json.loads((tmp_path / "run" / "stage2" / "args.json").read_text())
    assert stage2["stage"] == "stage2" and stage2["init"] == str(tmp_path / "run" / "stage1" / "final.pt")
    assert json.loads((tmp_path / "run" / "stage1" / "args.json").read_text())["stage"] == "stage1"
    assert "stage 2 of 2" in panel.status.text() and _x(panel.curves.loss_item) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(("command", "settings", "words"), [
    (None, "fake_delay=0 fake_fail_at=3", "fake failure: the dataset went away"),
    ([sys.executable, "-c", "import sys; print('error: --arch: bad choice', file=sys.stderr); sys.exit(2)"],
     "", "exit status 2"),
])
def test_a_failing_process_shows_its_error(qtbot, make_panel, command, settings: str, words: str) -> None:
    panel = make_panel(command or FAKE_COMMAND, settings=settings)
    panel.start_button.click()
    _wait_state(qtbot, panel, RunState.FAILED)
    assert words in panel.status.text() and "d32f2f" in panel.status.styleSheet()
    assert panel.start_button.isEnabled()
    if command is not None:  # exited before any metrics: its last output line is the reason
        assert "bad choice" in panel.status.text() and "bad choice" in panel.log_view.toPlainText()


def test_form_and_start_errors_are_shown(qtbot, make_panel, tmp_path: Path) -> None:
    panel = make_panel()
    panel.form.dataset.edit.setText(str(tmp_path / "missing"))
    assert not panel.start()
    assert "dataset folder does not exist" in panel.status.text() and panel.process is None
    panel.form.dataset.edit.setText(str(tmp_path / "data"))
    panel.form.lr.setText("fast")
    assert not panel.start() and "is not a number" in panel.status.text()
    panel.form.lr.setText("")
    panel.train_command = [str(tmp_path / "no-such-trainer")]
    assert not panel.start() and "cannot start" in panel.status.text() and not panel.is_running()


def test_closing_asks_and_leaving_keeps_training_which_open_run_reattaches(qtbot, make_panel) -> None:
    panel = make_panel(iterations=100000)
    panel.start_button.click()
    qtbot.waitUntil(lambda: len(_x(panel.curves.loss_item)) > 0, timeout=WAIT_MS)
    run_dir, proc = panel.run_dir, panel.process
    panel.ask_close_choice = lambda: "cancel"
    assert not panel.confirm_close() and proc.poll()
    panel.ask_close_choice = lambda: "leave"
    assert panel.confirm_close() and proc.poll(), "left running"

    other = make_panel()
    other.open_run(run_dir)
    assert other.is_running() and other.process.pid == proc.pid
    assert other.summary.state == RunState.RUNNING and len(_x(other.curves.loss_item)) > 0
    other.ask_close_choice = lambda: "stop"
    assert other.confirm_close()
    assert proc.wait(WAIT_MS / 1000) and proc.returncode == 0, "stopped by itself after the close"
    assert (run_dir / "state.pt").exists()
    panel.process = None
    other.process = None

    viewer = make_panel()
    viewer.open_run(run_dir)
    assert viewer.process is None and viewer.summary.state == RunState.STOPPED
    assert viewer.resume_button.isEnabled() and viewer.use_button.isEnabled()


@pytest.mark.slow
def test_real_trainer_end_to_end(qtbot, make_panel, tmp_path: Path) -> None:
    """The real ``deconv-gui train`` on a tiny synthetic folder tree: curves get points, it finishes."""
    synthetic_tree = pytest.importorskip("deconv_gui.training.synthetic_tree",
                                         reason="T1's synthetic_tree module is not there yet")
    pytest.importorskip("deconv_gui.training.cli_train", reason="T2's `deconv-gui train` is not there yet")
    from deconv_gui.cli import build_parser

    if "train" not in build_parser()._subparsers._group_actions[0].choices:  # noqa: SLF001
        pytest.skip("`deconv-gui train` is not registered in deconv_gui/cli.py yet")
    data = tmp_path / "tree"
    synthetic_tree.write_synthetic_tree(data, "folder", n_train=4, n_val=2)
    panel = make_panel(None, iterations=4, settings="val_every=2 checkpoint_every=2 workers=0")
    panel.form.dataset.edit.setText(str(data))
    panel.form.arch.setCurrentText("fcn8s")
    panel.start_button.click()
    assert panel.process is not None and panel.process.argv[1:4] == ["-m", "deconv_gui.cli", "train"]
    qtbot.waitUntil(lambda: panel.process is None, timeout=240_000)
    assert panel.summary.state == RunState.FINISHED, panel.log_view.toPlainText()[-2000:]
    assert len(_x(panel.curves.loss_item)) > 0 and len(_x(panel.curves.miou_item)) > 0
    with qtbot.waitSignal(panel.use_checkpoint, timeout=1000) as used:
        panel.use_button.click()
    from deconv_gui.models.registry import model_from_checkpoint

    _, meta = model_from_checkpoint(used.args[0])
    assert meta.architecture == "fcn8s"


def test_open_run_of_a_chained_folder_shows_its_last_stage(qtbot, make_panel, tmp_path: Path) -> None:
    from deconv_gui.ui.curves import moving_average

    root = tmp_path / "chained"
    for stage, n in (("stage1", 3), ("stage2", 5)):
        (root / stage).mkdir(parents=True)
        lines = [{"kind": "train", "iteration": i, "max_iterations": n, "loss": 1.0 / i, "pixel_acc": 0.5}
                 for i in range(1, n + 1)]
        (root / stage / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    panel = make_panel()
    panel.open_run(root)
    assert panel.run_dir == root / "stage2" and _x(panel.curves.loss_item) == [1, 2, 3, 4, 5]
    assert panel.summary.state == RunState.FAILED, "it logged progress, has no process and never finished"
    assert "without finishing" in panel.status.text()
    _, smooth = panel.curves.loss_smooth_item.getData()
    assert len(smooth) == 5
    assert list(moving_average(np.array([1.0, 3.0, np.nan, 5.0]), 2)) == [1.0, 2.0, 3.0, 5.0]


def test_an_empty_run_folder_field_makes_a_new_folder_per_start(qtbot, make_panel, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DECONV_GUI_RUNS_DIR", str(tmp_path / "runs"))
    panel = make_panel(iterations=2, settings="fake_delay=0")
    panel.form.run_dir.edit.setText("")
    panel.start_button.click()
    _wait_state(qtbot, panel, RunState.FINISHED)
    assert panel.run_dir.parent == tmp_path / "runs" and panel.run_dir.name.startswith("deconvnet-whole-")
    assert str(panel.run_dir) in panel.status.text() and panel.form.run_dir.edit.text() == ""


def test_the_setup_before_the_first_iteration_says_what_it_does(qtbot, make_panel) -> None:
    """Not "starting…" for a minute: the trainer's last line (loading the dataset…) shows at once."""
    panel = make_panel(settings="fake_delay=0.01 fake_setup=30", iterations=5)
    panel.start_button.click()
    assert "starting the training process" in panel.progress.format()
    qtbot.waitUntil(lambda: "loading the dataset" in panel.progress.format(), timeout=WAIT_MS)
    panel.stop_button.click()
    panel.stop_button.click()  # kill: the fake setup does not look at signals
    _wait_state(qtbot, panel, RunState.STOPPED)
