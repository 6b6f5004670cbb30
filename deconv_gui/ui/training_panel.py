"""The training panel: start ``deconv-gui train`` in a separate process, watch it, stop, resume, use its weights.

The process outlives the app (see :mod:`deconv_gui.document.training_process`): an exception in the GUI or a
crash does not touch it. When the window closes during a run, :meth:`TrainingPanel.confirm_close` asks whether
to stop it (SIGTERM: the trainer saves ``state.pt`` and exits by itself, the app does not wait), leave it running
in the background (reopen its folder with "Open run…" later to watch, stop or use it), or not close.

Every 500 ms a timer reads what the run appended to ``metrics.jsonl`` (curves, progress, ETA, best mIoU) and to
``console.log`` (log view), and whether the process is still alive.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QGridLayout,
    QGroupBox,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.document.output_folders import output_root
from deconv_gui.document.training_process import TrainingProcess
from deconv_gui.document.training_run import (
    CONSOLE_FILE,
    METRICS_FILE,
    MetricsTail,
    RunState,
    RunSummary,
    TextTail,
    TrainRequest,
    default_train_command,
    format_eta,
    latest_run_dir,
    result_checkpoint,
    resume_argv,
)
from deconv_gui.training.synthetic_tree import write_synthetic_tree
from deconv_gui.ui.curves import TrainingCurves
from deconv_gui.ui.training_form import TrainingForm

log = logging.getLogger(__name__)

_STATE_TEXT = {
    RunState.IDLE: "No run.",
    RunState.RUNNING: "Running",
    RunState.STOPPING: "Stopping: saving a checkpoint… (Stop again kills it)",
    RunState.STOPPED: "Stopped",
    RunState.FINISHED: "Finished",
    RunState.FAILED: "Failed",
}
SYNTHETIC_TRAIN, SYNTHETIC_VAL = 16, 4
SYNTHETIC_HW = (180, 240)
SYNTHETIC_ITERATIONS = 300
"""Scenes of the dataset "Make a synthetic dataset…" writes (~1 s on the GUI thread of the loaded 2-core CPU)."""
SETUP_TEXT_CHARS = 90
_LOG_LINES = 5000
_LOG_TAIL_BYTES = 512 * 1024  # an opened run shows the end of its console log, not gigabytes of it


class TrainingPanel(QWidget):
    """Dockable panel. ``use_checkpoint(path)`` carries the run's best.pt (or final.pt) to the inspector;
    ``state_changed(state)`` carries a :class:`RunState` value whenever the run's state changes.

    ``train_command`` replaces ``[python, -m, deconv_gui.cli, train]`` (tests use a fake trainer).
    """

    use_checkpoint = Signal(str)
    state_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, train_command: list[str] | None = None,
                 poll_interval_ms: int = 500) -> None:
        super().__init__(parent)
        self.train_command = list(train_command or default_train_command())
        self.summary = RunSummary()
        self.run_dir: Path | None = None
        self.process: TrainingProcess | None = None
        self._pending: list[TrainRequest] = []
        self._metrics: MetricsTail | None = None
        self._console: TextTail | None = None
        self._last_output = ""
        self._step_text = ""
        self._error = ""

        self.form = TrainingForm()
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.resume_button = QPushButton("Resume")
        self.open_button = QPushButton("Open run…")
        self.use_button = QPushButton("Use this checkpoint")
        self.synthetic_button = QPushButton("Make a synthetic dataset…")
        self.synthetic_button.setToolTip("write a small dataset of synthetic scenes (shapes) into a folder you "
                                         "choose, to try training in a few minutes on the CPU")
        self.start_button.setToolTip("start a new run with these settings")
        self.stop_button.setToolTip("stop after saving a checkpoint; press again to kill the process")
        self.resume_button.setToolTip("continue the run from its last checkpoint (state.pt)")
        self.open_button.setToolTip("show an existing run folder (and attach to it if it still runs)")
        self.use_button.setToolTip("load the run's best (else final) weights into the inspector")
        self.status = QLabel(_STATE_TEXT[RunState.IDLE])
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.details = QLabel("")
        self.curves = TrainingCurves()
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(_LOG_LINES)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log_view.setPlaceholderText("the training process's output appears here")

        # Settings and controls on the left (the form scrolls), curves and log on the right: docked under the
        # canvas the panel is wide and low, and the curves and log must show there, not only when floated.
        # The left column scrolls (both ways) so a small screen can still dock the panel.
        settings = QGroupBox("New run")
        QVBoxLayout(settings).addWidget(self.form)
        buttons = QGridLayout()
        for k, button in enumerate((self.start_button, self.stop_button, self.resume_button, self.open_button,
                                    self.synthetic_button, self.use_button)):
            buttons.addWidget(button, k // 3, k % 3)
        controls = QWidget()
        controls_layout = QVBoxLayout(controls)
        controls_layout.setContentsMargins(0, 0, 0, 0)
        controls_layout.addLayout(buttons)
        controls_layout.addWidget(self.status)
        controls_layout.addWidget(self.progress)
        controls_layout.addWidget(self.details)
        controls_layout.addWidget(settings)
        controls_layout.addStretch(1)
        left = QScrollArea()
        left.setWidgetResizable(True)
        left.setFrameShape(QFrame.Shape.NoFrame)
        left.setWidget(controls)
        left.setMinimumSize(180, 120)
        graphs = QSplitter(Qt.Orientation.Vertical)
        graphs.addWidget(self.curves)
        graphs.addWidget(self.log_view)
        graphs.setStretchFactor(0, 2)
        graphs.setStretchFactor(1, 1)
        graphs.setChildrenCollapsible(False)
        self.log_view.setMinimumHeight(60)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(graphs)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        # the form at its natural width when there is room (no sideways scrolling), the curves the rest
        self.splitter.setSizes([max(controls.sizeHint().width() + 20, 420), 520])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter, 1)

        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.resume_button.clicked.connect(self.resume)
        self.open_button.clicked.connect(self._choose_run)
        self.use_button.clicked.connect(self._emit_checkpoint)
        self.synthetic_button.clicked.connect(lambda: self.make_synthetic_dataset())
        self._timer = QTimer(self)
        self._timer.setInterval(poll_interval_ms)
        self._timer.timeout.connect(self.poll)
        self._refresh()

    # ----------------------------------------------------------------- actions
    def start(self) -> bool:
        """Start the run(s) the form describes; False (message shown) if the form or the start fails."""
        if self.is_running():
            return False
        try:
            runs = self.form.plan()
        except DeconvGuiError as exc:
            self._show_error(str(exc))
            return False
        self._pending = runs[1:]
        self._step_text = "stage 1 of 2: " if self._pending else ""
        return self._launch(runs[0].run_dir, runs[0].argv(self.train_command), fresh=True)

    def stop(self) -> None:
        """First press: ask the trainer to save a checkpoint and stop. Second press: kill the process tree."""
        if self.process is None:
            return
        if self.process.terminate_requested:
            self._append_log("[app] killing the training process")
            self.process.kill()
        else:
            self._append_log("[app] asking the training process to save a checkpoint and stop")
            self.process.terminate()
            self._set_state(RunState.STOPPING)
        self._refresh()

    def resume(self) -> bool:
        """Continue the current run folder from its ``state.pt`` (then any chained stage still to come)."""
        if self.is_running() or self.run_dir is None:
            return False
        if not (self.run_dir / "state.pt").is_file():
            self._show_error(f"{self.run_dir}: no checkpoint (state.pt) to resume from")
            return False
        return self._launch(self.run_dir, resume_argv(self.run_dir, self.train_command), fresh=False)

    def open_run(self, run_dir: Path) -> None:
        """Show an existing run folder: its curves and log; attach to its process if it still runs."""
        if self.is_running():
            self._show_error("stop the current run before opening another")
            return
        self._pending, self._step_text = [], ""
        self._watch(latest_run_dir(Path(run_dir)), fresh=True)
        self.process = TrainingProcess.attach(self.run_dir)
        self.poll()
        if self.process is not None:
            self._append_log(f"[app] attached to the running training process {self.process.pid}")
            self._set_state(RunState.RUNNING)
            self._timer.start()
        elif self.summary.state in (RunState.RUNNING, RunState.STOPPING):
            self.summary.process_exited(None, last_output=self._last_output)
        self._refresh()

    def is_running(self) -> bool:
        """Whether the run's process is alive; a process that just ended is settled (state, log) first."""
        if self.process is not None and not self.process.poll():
            self.poll()
        return self.process is not None

    def confirm_close(self) -> bool:
        """Call from the main window's closeEvent. True = the window may close (run stopped or left running)."""
        if not self.is_running():
            self._timer.stop()
            return True
        choice = self.ask_close_choice()
        if choice == "cancel":
            return False
        if choice == "stop" and self.process is not None and not self.process.terminate_requested:
            self.process.terminate()  # the trainer saves state.pt and exits on its own; no need to wait
        self._timer.stop()
        return True

    def ask_close_choice(self) -> str:
        """"stop", "leave" or "cancel", asked in a dialog (tests replace this method)."""
        box = QMessageBox(QMessageBox.Icon.Question, "Training in progress",
                          f"A training run is in progress in\n{self.run_dir}\n\nStop it (a checkpoint is saved), "
                          "or leave it running in the background? (Open run… shows it again later.)",
                          parent=self)
        stop = box.addButton("Stop training", QMessageBox.ButtonRole.DestructiveRole)
        leave = box.addButton("Leave running", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return "stop" if box.clickedButton() is stop else "leave" if box.clickedButton() is leave else "cancel"

    def closeEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt override
        """As a top-level window (``python -m deconv_gui.ui.training_panel``), ask like the main window does."""
        if self.isWindow() and not self.confirm_close():
            event.ignore()
            return
        super().closeEvent(event)

    def make_synthetic_dataset(self, folder: Path | None = None) -> Path | None:
        """Write a small synthetic dataset (``folder`` layout, :data:`SYNTHETIC_TRAIN` + :data:`SYNTHETIC_VAL`
        scenes) into ``folder`` (asked when None; a non-empty folder gets a ``synthetic_shapes`` subfolder) and
        fill the form to train on it."""
        if folder is None:
            start = str(output_root())
            chosen = QFileDialog.getExistingDirectory(self, "Make a synthetic dataset in…", start)
            if not chosen:
                return None
            folder = Path(chosen)
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            folder = folder / "synthetic_shapes"
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            write_synthetic_tree(folder, "folder", n_train=SYNTHETIC_TRAIN, n_val=SYNTHETIC_VAL,
                                 height=SYNTHETIC_HW[0], width=SYNTHETIC_HW[1], variant="demo")
        except (OSError, DeconvGuiError) as exc:
            QApplication.restoreOverrideCursor()
            self._show_error(f"{folder}: cannot write the synthetic dataset ({getattr(exc, 'strerror', '') or exc})")
            return None
        QApplication.restoreOverrideCursor()
        self.form.dataset.edit.setText(str(folder))
        self.form.format.setCurrentText("folder")
        self.form.iterations.setValue(min(self.form.iterations.value(), SYNTHETIC_ITERATIONS))
        self._error = ""
        self._append_log(f"[app] wrote {SYNTHETIC_TRAIN} + {SYNTHETIC_VAL} synthetic scenes to {folder}; "
                         "press Start to train on them")
        self._refresh()
        return folder

    def checkpoint_path(self) -> Path | None:
        """The current run's best.pt if present, else final.pt, else None."""
        return result_checkpoint(self.run_dir) if self.run_dir is not None else None

    # ---------------------------------------------------------------- plumbing
    def _launch(self, run_dir: Path, argv: list[str], *, fresh: bool) -> bool:
        self._watch(run_dir, fresh=fresh)
        try:
            self.process = TrainingProcess.start(argv, run_dir)
        except DeconvGuiError as exc:
            self._pending = []
            self._set_state(RunState.FAILED)
            self._show_error(str(exc))
            return False
        self._set_state(RunState.RUNNING)
        self._timer.start()
        self._refresh()
        return True

    def _watch(self, run_dir: Path, *, fresh: bool) -> None:
        """Follow ``run_dir``'s files; ``fresh`` resets the curves and log (else they continue)."""
        if fresh or run_dir != self.run_dir or self._metrics is None:
            self.summary = RunSummary()
            self._metrics = MetricsTail(run_dir / METRICS_FILE)
            self._console = TextTail(run_dir / CONSOLE_FILE, initial_bytes=_LOG_TAIL_BYTES)
            self.log_view.clear()
            self.curves.clear()
        self.run_dir = run_dir
        self._last_output = ""
        self._error = ""

    def poll(self) -> None:
        """Read new metrics and output; settle the state when the process has ended."""
        if self._metrics is None or self._console is None:
            return
        before = self.summary.state
        alive = self.process.poll() if self.process is not None else False
        records = self._metrics.read()  # read after poll(): everything the ended process wrote is there
        self._read_console()
        if self._metrics.restarted:  # a resume cut the file back: these records are all of it
            self.summary = RunSummary()
        if records:
            self.summary.update(records)
            self.curves.show_summary(self.summary)
        if self.process is not None and not alive:
            self._process_ended(self.process)
        if self.summary.state != before:
            self.state_changed.emit(self.summary.state.value)
        self._refresh()

    def _process_ended(self, proc: TrainingProcess) -> None:
        self.process = None
        stopped_by_user = proc.kill_requested or (proc.terminate_requested and (proc.returncode or 0) < 0)
        self.summary.process_exited(proc.returncode, killed=stopped_by_user, last_output=self._last_output,
                                    has_checkpoint=(proc.run_dir / "state.pt").is_file())
        code = "unknown" if proc.returncode is None else proc.returncode
        self._append_log(f"[app] training process ended (exit status {code})")
        if self.summary.state == RunState.FINISHED and self._pending:
            nxt = self._pending.pop(0)
            self._step_text = "stage 2 of 2: "
            if nxt.init is not None and not nxt.init.is_file():
                self._pending = []
                self._show_error(f"{nxt.init}: stage 1 ended without final weights; stage 2 not started")
                return
            self._launch(nxt.run_dir, nxt.argv(self.train_command), fresh=True)
            return
        self._timer.stop()

    def _setup_text(self) -> str:
        """What a run does before its first iteration: its last output line ("loading the dataset…")."""
        line = self._last_output
        if not line or line.startswith("$ "):
            return "starting the training process (importing torch)…"
        for prefix in ("INFO ", "WARNING "):
            line = line.removeprefix(prefix)
        return line if len(line) <= SETUP_TEXT_CHARS else line[: SETUP_TEXT_CHARS - 1] + "…"

    def _read_console(self) -> None:
        assert self._console is not None
        lines = self._console.read_lines()
        if lines:
            self.log_view.appendPlainText("\n".join(lines))
            nonblank = [line.split("\r")[-1] for line in lines if line.strip()]  # tqdm redraws with \r
            if nonblank:
                self._last_output = nonblank[-1].strip()

    def _append_log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def _set_state(self, state: RunState) -> None:
        if self.summary.state != state:
            self.summary.state = state
            self.state_changed.emit(state.value)

    def _show_error(self, message: str) -> None:
        log.info("training panel: %s", message)
        self._error = message
        self._append_log(f"[app] error: {message}")
        self._refresh()

    def _choose_run(self) -> None:
        start = str(self.run_dir or Path.home())
        chosen = QFileDialog.getExistingDirectory(self, "Open a run folder", start)
        if chosen:
            self.open_run(Path(chosen))

    def _emit_checkpoint(self) -> None:
        path = self.checkpoint_path()
        if path is None:
            self._show_error("this run has no best.pt or final.pt yet")
            return
        self.use_checkpoint.emit(str(path))

    def _refresh(self) -> None:
        s = self.summary
        running = self.process is not None
        self.start_button.setEnabled(not running)
        self.form.setEnabled(not running)
        self.open_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.stop_button.setText("Kill" if running and self.process.terminate_requested else "Stop")
        self.resume_button.setEnabled(not running and self.run_dir is not None
                                      and (self.run_dir / "state.pt").is_file()
                                      and s.state != RunState.FINISHED)
        self.use_button.setEnabled(self.checkpoint_path() is not None)

        if self._error and not running:
            text, colour = f"Error: {self._error}", "#d32f2f"
        else:
            text = self._step_text + _STATE_TEXT[s.state]
            if s.message and s.state in (RunState.STOPPED, RunState.FAILED, RunState.FINISHED):
                text += f": {s.message}"
            if self.run_dir is not None and s.state != RunState.IDLE:
                text += f"  ({self.run_dir})"
            colour = "#d32f2f" if s.state == RunState.FAILED else ""
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {colour}" if colour else "")

        if s.max_iterations:
            self.progress.setRange(0, s.max_iterations)
            self.progress.setValue(min(s.iteration, s.max_iterations))
            eta = f" · ETA {format_eta(s.eta_s)}" if running else ""
            self.progress.setFormat(f"%v / %m iterations{eta}")
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat(_escape(self._setup_text()) if running else "")
        parts = []
        if s.best_miou is not None:
            parts.append(f"best val mIoU {s.best_miou:.3f} (iteration {s.best_iteration})")
        if s.loss:
            parts.append(f"loss {s.loss[-1]:.4f}")
        if s.images_per_s and running:
            parts.append(f"{s.images_per_s:.1f} images/s")
        if s.lr is not None:
            parts.append(f"lr {s.lr:.3g}")
        self.details.setText(" · ".join(parts))


def _escape(text: str) -> str:
    """``text`` for ``QProgressBar.setFormat`` (``%`` is its placeholder mark)."""
    return text.replace("%", "%%")


def main(argv: list[str] | None = None) -> int:
    """``python -m deconv_gui.ui.training_panel [RUN_DIR]``: the panel alone (opens RUN_DIR if given)."""

    args = sys.argv[1:] if argv is None else argv
    app = QApplication.instance() or QApplication([sys.argv[0]])
    panel = TrainingPanel()
    panel.setWindowTitle("deconv_gui training")
    panel.resize(900, 900)
    if args:
        panel.open_run(Path(args[0]))
    panel.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
