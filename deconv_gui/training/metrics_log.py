"""What a run reports: ``run_dir/metrics.jsonl`` (the app's training panel tails it), TensorBoard scalars when
``torch.utils.tensorboard`` imports, and ``run_dir/train.log``.

``metrics.jsonl`` holds one JSON object a line, flushed at every write, with exactly these keys::

    {"kind": "train", "iteration", "max_iterations", "epoch", "loss", "lr", "pixel_acc", "images_per_s",
     "eta_s", "time"}
    {"kind": "val", "iteration", "miou", "pixel_acc", "class_iou": {name: float | null}, "time"}
    {"kind": "event", "event": started|resumed|checkpoint|best|stopped|finished|error, "iteration",
     "path": str | null, "message", "time"}

``time`` is Unix seconds. Non-finite floats are written as ``null`` (strict JSON).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

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


class MetricsLog:
    """Appends records to ``metrics.jsonl`` (and TensorBoard); a disabled log (non-zero ranks) does nothing."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / METRICS_FILE
        self._file = self.path.open("a", encoding="utf-8") if enabled else None
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
            except Exception:  # tensorboard not installed (ImportError) or broken: optional
                self._tb = None

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        record = {**_finite(record), "time": time.time()}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

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

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def attach_log_file(run_dir: Path) -> logging.Handler:
    """Send the ``deconv_gui`` loggers' INFO+ records to ``run_dir/train.log`` too; returns the handler."""
    handler = logging.FileHandler(Path(run_dir) / LOG_FILE, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("deconv_gui")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler
