"""A training run as the app sees it, Qt-free: the request (→ a ``deconv-gui train`` command line), the tail of
the run's ``metrics.jsonl`` and console log, and a summary of where the run stands.

The run directory is written by ``deconv-gui train`` (see ``deconv_gui/training/cli_train.py``):
``metrics.jsonl`` holds one JSON object per line with ``"kind"`` one of

- ``"train"``: ``iteration, max_iterations, epoch, loss, lr, pixel_acc, images_per_s, eta_s, time``
- ``"val"``: ``iteration, miou, pixel_acc, class_iou {name: float | null}, time``
- ``"event"``: ``event`` (started, resumed, checkpoint, best, stopped, finished, error), ``iteration, path,
  message, time``

and ``state.pt`` / ``best.pt`` / ``final.pt`` / ``config.yaml`` / ``train.log``. The app adds ``console.log``
(the process's stdout + stderr) and ``trainer.pid`` (see :mod:`deconv_gui.document.training_process`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.core.vocabulary import DATASET_FORMATS, DEVICES, STAGES

log = logging.getLogger(__name__)

FORMATS = DATASET_FORMATS
#: The stage choice that runs stage 1, then stage 2 initialised from stage 1's final weights.
CHAINED_STAGES = "stage1+stage2"
METRICS_FILE = "metrics.jsonl"
CONSOLE_FILE = "console.log"


def default_train_command() -> list[str]:
    """``[python, -m, deconv_gui.cli, train]`` with the interpreter running the app."""
    return [sys.executable, "-m", "deconv_gui.cli", "train"]


@dataclass
class TrainRequest:
    """One ``deconv-gui train`` run. Paths are folders/files on disk; numbers are passed through unchanged.

    ``lr`` None means "the architecture/stage default of the training config". ``overrides`` become
    ``--set key=value`` flags (e.g. ``{"device": "cuda"}``); ``init`` is ``--init CKPT`` (stage 2 starts from
    stage 1's checkpoint).
    """

    data: Path
    format: str
    arch: str
    width: float
    stage: str
    iterations: int
    batch_size: int
    run_dir: Path
    lr: float | None = None
    device: str = "auto"
    init: Path | None = None
    config_file: Path | None = None
    overrides: dict[str, str] = field(default_factory=dict)

    def validate(self, *, check_init_exists: bool = True) -> None:
        """Raise :class:`DeconvGuiError` naming the field/file when the request cannot run."""
        if _unset(self.data):
            raise DeconvGuiError("choose a dataset folder")
        if not Path(self.data).is_dir():
            raise DeconvGuiError("dataset folder does not exist", self.data)
        if self.format not in FORMATS:
            raise DeconvGuiError(f"unknown dataset format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.stage not in STAGES:
            raise DeconvGuiError(f"unknown stage {self.stage!r}; choose one of {', '.join(STAGES)}")
        if self.device not in DEVICES:
            raise DeconvGuiError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if not (self.width > 0):
            raise DeconvGuiError(f"width must be > 0, got {self.width}")
        if self.iterations < 1 or self.batch_size < 1:
            raise DeconvGuiError("iterations and batch size must be at least 1")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise DeconvGuiError(f"learning rate must be a positive number, got {self.lr}")
        if _unset(self.run_dir):
            raise DeconvGuiError("choose a run folder")
        run_dir = Path(self.run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise DeconvGuiError("run folder is a file", run_dir)
        if (run_dir / "state.pt").exists() or (run_dir / METRICS_FILE).exists():
            raise DeconvGuiError("a run already exists in this folder: use Resume, or choose another folder",
                                 run_dir)
        if check_init_exists and self.init is not None and not Path(self.init).is_file():
            raise DeconvGuiError("initial checkpoint does not exist", self.init)
        if self.config_file is not None and not Path(self.config_file).is_file():
            raise DeconvGuiError("config file does not exist", self.config_file)
        for key in self.overrides:
            if not key or "=" in key or any(c.isspace() for c in key):
                raise DeconvGuiError(f"bad setting name {key!r} (expected key=value)")

    def argv(self, command: list[str] | None = None) -> list[str]:
        """The full command line: ``command`` (default :func:`default_train_command`) + flags."""
        args = list(command or default_train_command())
        args += ["--data", str(self.data), "--format", self.format, "--arch", self.arch,
                 "--width", repr(float(self.width)), "--stage", self.stage,
                 "--iterations", str(self.iterations), "--batch-size", str(self.batch_size),
                 "--run-dir", str(self.run_dir)]
        if self.lr is not None:
            args += ["--lr", repr(float(self.lr))]
        if self.init is not None:
            args += ["--init", str(self.init)]
        if self.config_file is not None:
            args += ["--config", str(self.config_file)]
        settings = dict(self.overrides)
        if self.device != "auto":
            settings.setdefault("device", self.device)
        for key, value in settings.items():
            args += ["--set", f"{key}={value}"]
        return args


def default_run_dir(arch: str, stage: str, now: float | None = None) -> Path:
    """``~/deconv_gui_runs/<arch>-<stage>-<YYYYmmdd-HHMMSS>`` (the root from env ``DECONV_GUI_RUNS_DIR`` if set)."""
    root = Path(os.environ.get("DECONV_GUI_RUNS_DIR") or Path.home() / "deconv_gui_runs")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return root / f"{arch}-{stage.replace('+', '-')}-{stamp}"


def guess_format(folder: Path) -> str | None:
    """The layout of a dataset root (see ``io/dataset_files.py``): ``camvid`` (``trainannot/``), ``voc``
    (``JPEGImages/``), ``folder`` (``images/`` + ``masks/``), or None."""
    folder = Path(folder)
    if (folder / "trainannot").is_dir():
        return "camvid"
    if (folder / "JPEGImages").is_dir():
        return "voc"
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        return "folder"
    return None


def resume_argv(run_dir: Path, command: list[str] | None = None) -> list[str]:
    """``deconv-gui train --resume RUN_DIR``: the run's saved config and state decide everything else."""
    return [*(command or default_train_command()), "--resume", str(run_dir)]


def parse_overrides(text: str) -> dict[str, str]:
    """``"a=1 b=x"`` (spaces or commas between pairs) → ``{"a": "1", "b": "x"}``; DeconvGuiError on a bad pair."""
    out: dict[str, str] = {}
    for pair in text.replace(",", " ").split():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DeconvGuiError(f"bad setting {pair!r}: expected key=value")
        out[key] = value
    return out


def plan_runs(request: TrainRequest, stage_choice: str) -> list[TrainRequest]:
    """The runs for a stage choice: one run, or for :data:`CHAINED_STAGES` two runs in ``run_dir/stage1`` and
    ``run_dir/stage2``, the second initialised from ``run_dir/stage1/final.pt`` (it exists once stage 1 ends).
    """
    if stage_choice != CHAINED_STAGES:
        return [_replace(request, stage=stage_choice)]
    first = _replace(request, stage="stage1", run_dir=Path(request.run_dir) / "stage1")
    second = _replace(request, stage="stage2", run_dir=Path(request.run_dir) / "stage2",
                      init=first.run_dir / "final.pt")
    return [first, second]


def _replace(request: TrainRequest, **changes: Any) -> TrainRequest:
    from dataclasses import replace

    return replace(request, overrides=dict(request.overrides), **changes)


def result_checkpoint(run_dir: Path) -> Path | None:
    """The run's best checkpoint (``best.pt``, by val mIoU) if present, else ``final.pt``, else None."""
    for name in ("best.pt", "final.pt"):
        path = Path(run_dir) / name
        if path.is_file():
            return path
    return None


class TextTail:
    """Reads the complete lines appended to a text file since the last call.

    A partial last line stays pending until its newline arrives. A carriage-return progress line (tqdm) keeps
    only its last segment. A missing file reads as nothing; a file that was replaced (another inode, as a
    resumed run's atomic cut of ``metrics.jsonl`` makes it) or shrank is read from the start, and
    :attr:`restarts` counts those times.
    """

    #: Pending partial text beyond this many bytes is cut to its last ``\\r`` segment (a long tqdm bar).
    MAX_PENDING = 1 << 16

    def __init__(self, path: Path, *, initial_bytes: int | None = None) -> None:
        """``initial_bytes``: on the first read, skip all but the last that many bytes (a long old log)."""
        self.path = Path(path)
        self._offset = 0
        self._pending = b""
        self._initial_bytes = initial_bytes
        self._inode: int | None = None
        self.restarts = 0

    def read_lines(self) -> list[str]:
        """New complete lines (without newline), decoded as UTF-8 with replacement."""
        try:
            st = os.stat(self.path)
            size = st.st_size
            if (self._inode is not None and st.st_ino != self._inode) or size < self._offset:
                log.info("%s was replaced; reading it again from the start", self.path)
                self._offset, self._pending = 0, b""
                self.restarts += 1
            self._inode = st.st_ino
            if size == self._offset:
                return []
            skip_partial = False
            if self._initial_bytes is not None and self._offset == 0 and size > self._initial_bytes:
                self._offset, skip_partial = size - self._initial_bytes, True
            self._initial_bytes = None
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read(size - self._offset)
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("cannot read %s: %s", self.path, exc)
            return []
        self._offset += len(data)
        chunks = (self._pending + data).split(b"\n")
        self._pending = chunks.pop()
        if skip_partial:
            chunks = chunks[1:]  # the first line was cut by the skip
        if len(self._pending) > self.MAX_PENDING:
            self._pending = self._pending.rsplit(b"\r", 1)[-1][-self.MAX_PENDING:]
        lines = []
        for chunk in chunks:
            segments = [s for s in chunk.split(b"\r") if s.strip()]
            lines.append(segments[-1].decode("utf-8", "replace") if segments else "")
        return lines


class MetricsTail:
    """Incremental reader of a run's ``metrics.jsonl``: each call returns the records appended since the last.

    Lines that are not a JSON object with a ``"kind"`` are skipped with a warning (the run goes on). When the
    file was replaced (a resume cut it back to its checkpoint), the next :meth:`read` returns it all again and
    sets :attr:`restarted`: the reader then starts its summary afresh.
    """

    def __init__(self, path: Path) -> None:
        self._text = TextTail(path)
        self.path = self._text.path
        self.bad_lines = 0
        self.restarted = False

    def read(self) -> list[dict[str, Any]]:
        restarts = self._text.restarts
        records = []
        for line in self._text.read_lines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict) or "kind" not in record:
                self.bad_lines += 1
                log.warning("%s: skipping a line that is not a metrics record: %.80s", self.path, line)
                continue
            records.append(record)
        self.restarted = self._text.restarts != restarts
        return records


class RunState(str, Enum):
    """Where a run stands, as the panel shows it."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"


@dataclass
class RunSummary:
    """What the metrics of one run directory say so far, plus the series the panel plots.

    ``train_iterations``/``loss``/``pixel_acc`` are parallel lists (one entry per train record);
    ``val_iterations``/``val_miou``/``val_pixel_acc`` likewise per val record. After a ``resumed`` event at
    iteration k, points beyond k (logged after the last checkpoint of the interrupted run) are dropped.
    """

    state: RunState = RunState.IDLE
    iteration: int = 0
    max_iterations: int = 0
    epoch: int = 0
    eta_s: float | None = None
    images_per_s: float | None = None
    lr: float | None = None
    best_miou: float | None = None
    best_iteration: int | None = None
    last_event: str | None = None
    message: str = ""
    checkpoint: str | None = None
    train_iterations: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    pixel_acc: list[float] = field(default_factory=list)
    val_iterations: list[int] = field(default_factory=list)
    val_miou: list[float] = field(default_factory=list)
    val_pixel_acc: list[float] = field(default_factory=list)
    class_iou: dict[str, float | None] = field(default_factory=dict)

    @property
    def progress(self) -> float:
        """Fraction of iterations done, in [0, 1]."""
        return min(1.0, self.iteration / self.max_iterations) if self.max_iterations else 0.0

    def update(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            try:
                kind = record.get("kind")
                if kind == "train":
                    self._train(record)
                elif kind == "val":
                    self._val(record)
                elif kind == "event":
                    self._event(record)
            except (TypeError, ValueError, KeyError) as exc:
                log.warning("skipping malformed %s record %r: %s", record.get("kind"), record, exc)

    def _train(self, r: dict[str, Any]) -> None:
        it = int(r["iteration"])
        self.iteration = max(self.iteration, it)
        self.max_iterations = int(r.get("max_iterations") or self.max_iterations)
        self.epoch = int(r.get("epoch") or self.epoch)
        self.eta_s = _num(r.get("eta_s"))
        self.images_per_s = _num(r.get("images_per_s"))
        self.lr = _num(r.get("lr"))
        self.train_iterations.append(it)
        self.loss.append(_num(r.get("loss"), math.nan))
        self.pixel_acc.append(_num(r.get("pixel_acc"), math.nan))
        if self.state in (RunState.IDLE, RunState.STOPPED, RunState.FAILED):
            self.state = RunState.RUNNING

    def _val(self, r: dict[str, Any]) -> None:
        it, miou = int(r["iteration"]), _num(r.get("miou"), math.nan)
        self.val_iterations.append(it)
        self.val_miou.append(miou)
        self.val_pixel_acc.append(_num(r.get("pixel_acc"), math.nan))
        self.class_iou = dict(r.get("class_iou") or {})
        if math.isfinite(miou) and (self.best_miou is None or miou > self.best_miou):
            self.best_miou, self.best_iteration = miou, it

    def _event(self, r: dict[str, Any]) -> None:
        event = str(r["event"])
        it = r.get("iteration")
        self.last_event = event
        self.message = str(r.get("message") or "")
        if r.get("path") and event in ("checkpoint", "best", "finished", "stopped"):
            self.checkpoint = str(r["path"])
        if event in ("started", "resumed"):
            self.state = RunState.RUNNING
            if event == "resumed" and it is not None:
                self._truncate_after(int(it))
        elif event == "stopped":
            self.state = RunState.STOPPED
        elif event == "finished":
            self.state = RunState.FINISHED
        elif event == "error":
            self.state = RunState.FAILED
        if it is not None and event != "resumed":
            self.iteration = max(self.iteration, int(it))

    def _truncate_after(self, iteration: int) -> None:
        keep = [i for i, it in enumerate(self.train_iterations) if it <= iteration]
        self.train_iterations = [self.train_iterations[i] for i in keep]
        self.loss = [self.loss[i] for i in keep]
        self.pixel_acc = [self.pixel_acc[i] for i in keep]
        keep = [i for i, it in enumerate(self.val_iterations) if it <= iteration]
        self.val_iterations = [self.val_iterations[i] for i in keep]
        self.val_miou = [self.val_miou[i] for i in keep]
        self.val_pixel_acc = [self.val_pixel_acc[i] for i in keep]
        self.iteration = iteration
        finite = [(m, it) for m, it in zip(self.val_miou, self.val_iterations, strict=True) if math.isfinite(m)]
        self.best_miou, self.best_iteration = max(finite) if finite else (None, None)

    def process_exited(self, returncode: int | None, *, killed: bool = False, last_output: str = "",
                       has_checkpoint: bool = True) -> None:
        """Settle the state once the process is gone. ``returncode`` None = unknown (a run started elsewhere).

        A run that logged ``stopped``/``finished`` keeps that state; one killed on request is ``stopped``; any
        other end (non-zero exit, or exit without a final event) is ``failed`` with the reason in ``message``.
        """
        if self.state in (RunState.FINISHED, RunState.STOPPED) and not killed:
            return
        if killed:
            self.state = RunState.STOPPED
            self.message = ("killed; Resume continues from the last checkpoint (state.pt)" if has_checkpoint
                            else "killed before its first checkpoint; start it again")
            return
        if self.state == RunState.FAILED:
            if not self.message:
                self.message = last_output
            return
        self.state = RunState.FAILED
        code = "unknown status" if returncode is None else f"exit status {returncode}"
        tail = f": {last_output}" if last_output else ""
        self.message = f"training process ended ({code}) without finishing{tail}"


def latest_run_dir(folder: Path) -> Path:
    """``folder`` itself if it holds a run, else its last chained stage (``stage2``, ``stage1``) that has one."""
    folder = Path(folder)
    if (folder / METRICS_FILE).exists():
        return folder
    for stage in ("stage2", "stage1"):
        if (folder / stage / METRICS_FILE).exists():
            return folder / stage
    return folder


def load_summary(run_dir: Path) -> RunSummary:
    """The summary of an existing run directory, read from its metrics file (state IDLE if there is none)."""
    summary = RunSummary()
    summary.update(MetricsTail(Path(run_dir) / METRICS_FILE).read())
    return summary


def format_eta(seconds: float | None) -> str:
    """``3725`` → ``"1h 02m"``, ``75`` → ``"1m 15s"``, None/NaN → ``"–"``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def _unset(path: Path | str) -> bool:
    """An empty path field (``Path("")`` is ``"."``)."""
    return str(path).strip() in ("", ".")


def _num(value: Any, default: float | None = None) -> Any:
    if value is None:
        return default
    return float(value)
