"""A stand-in for ``deconv-gui train`` that the training-panel tests launch: same flags, same run-folder files,
no torch (starts in a fraction of a second).

Behaviour knobs via ``--set``: ``fake_setup=S`` (print a setup line, wait S seconds before any metrics),
``fake_delay=S`` seconds per iteration (default 0.02), ``fake_val_every=N``
(default 5), ``fake_ignore_term=1`` (SIGTERM is logged and ignored, so only a kill ends it), ``fake_fail_at=N``
(print an error to stderr, log an ``error`` event and exit 3 at iteration N; 0 = before any metrics).
SIGTERM/SIGINT otherwise: write state.pt, log ``stopped``, exit 0. ``--resume DIR`` continues from state.pt.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path

_stop = False


def _on_term(signum: int, frame: object) -> None:
    global _stop
    _stop = True


def _ignore_term(signum: int, frame: object) -> None:
    print(f"fake trainer: ignoring signal {signum}", flush=True)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="fake_trainer")
    for flag in ("--data", "--format", "--arch", "--stage", "--run-dir", "--resume", "--init", "--config"):
        p.add_argument(flag)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args(argv)

    if args.resume:
        run_dir = Path(args.resume)
        saved = json.loads((run_dir / "args.json").read_text())
        args = argparse.Namespace(**{**saved, "resume": args.resume})
        start = json.loads((run_dir / "state.pt").read_text())["iteration"]
    else:
        run_dir = Path(args.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "args.json").write_text(json.dumps(vars(args)))
        start = 0
    knobs = dict(s.split("=", 1) for s in args.set)
    delay = float(knobs.get("fake_delay", 0.02))
    val_every = int(knobs.get("fake_val_every", 5))
    fail_at = int(knobs["fake_fail_at"]) if "fake_fail_at" in knobs else None
    signal.signal(signal.SIGTERM, _ignore_term if knobs.get("fake_ignore_term") == "1" else _on_term)
    signal.signal(signal.SIGINT, _on_term)

    metrics = open(run_dir / "metrics.jsonl", "a")  # noqa: SIM115

    def emit(**record: object) -> None:
        metrics.write(json.dumps({**record, "time": time.time()}) + "\n")
        metrics.flush()

    def event(name: str, it: int, path: Path | None = None, message: str = "") -> None:
        emit(kind="event", event=name, iteration=it, path=None if path is None else str(path), message=message)

    def save_state(it: int) -> Path:
        (run_dir / "state.pt").write_text(json.dumps({"iteration": it}))
        return run_dir / "state.pt"

    if "fake_setup" in knobs:  # like the real trainer: a line saying what it does, then a slow setup
        print("INFO loading the dataset (train split, reading every image into memory)…", flush=True)
        time.sleep(float(knobs["fake_setup"]))
    event("resumed" if args.resume else "started", start, message=f"fake {args.arch} {args.stage}")
    print(f"fake trainer: {args.arch} {args.stage} from iteration {start} to {args.iterations}", flush=True)
    n = args.iterations
    for it in range(start + 1, n + 1):
        if fail_at is not None and it > fail_at:
            print("error: fake failure: the dataset went away", file=sys.stderr, flush=True)
            event("error", it - 1, message="fake failure: the dataset went away")
            return 3
        if _stop:
            event("stopped", it - 1, save_state(it - 1), "stopped by signal")
            print("fake trainer: stopped", flush=True)
            return 0
        time.sleep(delay)
        loss = 2.0 * math.exp(-it / 10) + 0.1
        emit(kind="train", iteration=it, max_iterations=n, epoch=it // 10, loss=loss, lr=args.lr,
             pixel_acc=1 - loss / 2.2, images_per_s=100.0, eta_s=(n - it) * delay)
        if it % val_every == 0 or it == n:
            miou = 0.8 * (1 - math.exp(-it / 20))
            emit(kind="val", iteration=it, miou=miou, pixel_acc=miou + 0.1,
                 class_iou={"background": miou, "thing": None})
            (run_dir / "best.pt").write_bytes(b"best")
            event("best", it, run_dir / "best.pt", f"mIoU {miou:.3f}")
    (run_dir / "final.pt").write_bytes(b"final")
    save_state(n)
    event("finished", n, run_dir / "final.pt", "done")
    print("fake trainer: finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
