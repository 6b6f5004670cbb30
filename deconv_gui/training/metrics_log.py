"""What a run reports: ``run_dir/metrics.jsonl`` (the app's training panel tails it), TensorBoard scalars when
``torch.utils.tensorboard`` imports, and ``run_dir/train.log``.

``metrics.jsonl`` holds one JSON object a line, flushed at every write, with exactly these keys::

    {"kind": "train", "iteration", "max_iterations", "epoch", "loss", "lr", "pixel_acc", "images_per_s",
     "eta_s", "time"}
    {"kind": "val", "iteration", "miou", "pixel_acc", "class_iou": {name: float | null}, "time"}
    {"kind": "event", "event": started|resumed|checkpoint|best|stopped|finished|error, "iteration",
     "path": str | null, "message", "time"}

``time`` is Unix seconds. Non-finite floats are written as ``null`` (strict JSON).

A resumed run first cuts the file back to its checkpoint's iteration (:func:`truncate_metrics`), so the
iterations a kill lost and the run repeats appear once; TensorBoard's events past it are purged likewise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from deconv_gui.core.errors import DeconvGuiError, OutputError
from deconv_gui.io.atomic import atomic_write_bytes

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
EVENTS = ("started", "resumed", "checkpoint", "best", "stopped", "finished", "error")

log = logging.getLogger(__name__)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def truncate_metrics(path: Path, iteration: int) -> int:
    """Cut ``metrics.jsonl`` back to ``iteration`` (atomically): drop the records of later iterations and
    lines a kill tore; returns how many lines went. A missing file is left missing."""
    try:
        lines = Path(path).read_bytes().split(b"\n")
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise OutputError(f"cannot read: {exc.strerror or exc}", path) from None
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # empty, or half a line
        at = record.get("iteration") if isinstance(record, dict) else None
        if isinstance(at, int) and at <= iteration:
            kept.append(line)
    dropped = sum(1 for line in lines if line.strip()) - len(kept)
    if dropped:
        atomic_write_bytes(path, b"".join(line + b"\n" for line in kept))
        log.info("%s: dropped %d record(s) after iteration %d (the resumed run repeats them)", path, dropped,
                 iteration)
    return dropped


class MetricsLog:
    """Appends records to ``metrics.jsonl`` (and TensorBoard); a disabled log (non-zero ranks) does nothing.

    ``resume_at``: the iteration a resumed run continues from; later records (and TensorBoard events) are
    removed first. A write that fails (disk full) raises OutputError naming the file.
    """

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = True,
                 resume_at: int | None = None) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / METRICS_FILE
        if enabled and resume_at is not None:
            truncate_metrics(self.path, resume_at)
        try:
            self._file = self.path.open("a", encoding="utf-8") if enabled else None
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror or exc}", self.path) from None
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"), purge_step=resume_at)
            except Exception:  # tensorboard not installed (ImportError) or broken: optional
                self._tb = None

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        record = {**_finite(record), "time": time.time()}
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror or exc}", self.path) from None

    def train(self, *, iteration: int, max_iterations: int, epoch: int, loss: float, lr: float,
              pixel_acc: float, images_per_s: float, eta_s: float) -> None:
        self._write({"kind": "train", "iteration": iteration, "max_iterations": max_iterations, "epoch": epoch,
                     "loss": float(loss), "lr": float(lr), "pixel_acc": float(pixel_acc),
                     "images_per_s": float(images_per_s), "eta_s": float(eta_s)})
        if self._tb is not None:
            for name, value in (("loss", loss), ("lr", lr), ("pixel_acc", pixel_acc), ("images_per_s", images_per_s)):
                self._tb.add_scalar(f"train/{name}", value, iteration)

    def val(self, *, iteration: int, miou: float | None, pixel_acc: float | None,
            class_iou: dict[str, float | None]) -> None:
        self._write({"kind": "val", "iteration": iteration, "miou": miou, "pixel_acc": pixel_acc,
                     "class_iou": class_iou})
        if self._tb is not None:
            if miou is not None:
                self._tb.add_scalar("val/miou", miou, iteration)
            for name, value in class_iou.items():
                if value is not None:
                    self._tb.add_scalar(f"val_iou/{name}", value, iteration)

    def event(self, event: str, *, iteration: int, path: str | Path | None = None, message: str = "") -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}")
        self._write({"kind": "event", "event": event, "iteration": iteration,
                     "path": None if path is None else str(path), "message": message})

    def try_event(self, event: str, **kwargs: Any) -> None:
        """:meth:`event`, logging instead of raising when the file cannot take it (while reporting an error)."""
        try:
            self.event(event, **kwargs)
        except DeconvGuiError as exc:
            log.warning("could not record the %s event: %s", event, exc)

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # a full disk: what could not be flushed is lost, not raised
                self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def attach_log_file(run_dir: Path) -> logging.Handler:
    """Send the ``deconv_gui`` loggers' INFO+ records to ``run_dir/train.log`` too; returns the handler."""
    handler = _QuietFileHandler(Path(run_dir) / LOG_FILE, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("deconv_gui")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


class _QuietFileHandler(logging.FileHandler):
    """A FileHandler that, when its file cannot be written (disk full), says so once in one line and then
    drops records, instead of printing a traceback for every record."""

    _reported = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if not self._reported:
            self._reported = True
            reason = sys.exc_info()[1]
            print(f"warning: {self.baseFilename}: cannot write the log ({reason}); continuing without it",
                  file=sys.stderr)
