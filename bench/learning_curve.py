"""Draw validation mIoU against training hours from one or more runs' ``metrics.jsonl`` (a model card's picture).

Run from the repository root::

    .venv/bin/python bench/learning_curve.py RUN_DIR[=LABEL] [RUN_DIR ...] --out resources/curves/NAME.png \\
        [--title TEXT] [--split-label "val mIoU (held-out sequence 0006R0)"] [--x iterations] \\
        [--points "LABEL=100:20.5,200:23.9"]

``--x iterations`` puts optimizer steps on the x axis instead of hours; ``--points`` adds a curve from recorded
``iteration:mIoU`` pairs (a run whose folder is gone: its val records as printed or noted), drawn only against
iterations because its clock is not known.

Hours are wall-clock from each run's first record (a resumed run continues its own clock: gaps while it was
stopped are left out). Needs matplotlib (``pip install matplotlib``; not a dependency of the app). Prints the
points it drew as a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_curve(run_dir: Path) -> tuple[list[float], list[float], list[int]]:
    """``(hours, val mIoU %, iterations)`` of a run; time stopped between a kill and its resume is skipped."""
    hours, mious, iterations = [], [], []
    elapsed, last = 0.0, None
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        t = record.get("time")
        if record.get("kind") == "event" and record.get("event") in ("started", "resumed"):
            last = t
            continue
        if t is None or last is None:
            continue
        elapsed += max(0.0, t - last)
        last = t
        if record.get("kind") == "val" and record.get("miou") is not None:
            hours.append(elapsed / 3600.0)
            mious.append(100.0 * float(record["miou"]))
            iterations.append(int(record["iteration"]))
    return hours, mious, iterations


def parse_points(text: str) -> tuple[list[int], list[float]]:
    """``"100:20.5,200:23.9"`` → ``([100, 200], [20.5, 23.9])``."""
    iterations, mious = [], []
    for pair in text.split(","):
        it, _, miou = pair.partition(":")
        iterations.append(int(it))
        mious.append(float(miou))
    return iterations, mious


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="run folders (RUN_DIR or RUN_DIR=label)")
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("--title", default="Learning curve")
    parser.add_argument("--split-label", default="val mIoU (%)")
    parser.add_argument("--x", choices=("hours", "iterations"), default="hours", help="what the x axis counts")
    parser.add_argument("--points", action="append", default=[], metavar="LABEL=IT:MIOU,…",
                        help="a curve from recorded (iteration, mIoU %%) pairs; needs --x iterations")
    args = parser.parse_args(argv)
    if args.points and args.x != "iterations":
        parser.error("--points has no clock: use it with --x iterations")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench/learning_curve.py needs matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    print(f"{'run':<28}{'iteration':>10}{'hours':>8}{'mIoU':>7}")
    for spec in args.runs:
        folder, _, label = spec.partition("=")
        hours, mious, iterations = read_curve(Path(folder))
        ax.plot(hours if args.x == "hours" else iterations, mious, marker="o", label=label or Path(folder).name)
        for h, m, it in zip(hours, mious, iterations, strict=True):
            print(f"{(label or Path(folder).name)[:27]:<28}{it:>10}{h:>8.2f}{m:>7.2f}")
    for spec in args.points:
        label, _, pairs = spec.partition("=")
        iterations, mious = parse_points(pairs)
        ax.plot(iterations, mious, marker="o", linestyle="--", label=label)
        for it, m in zip(iterations, mious, strict=True):
            print(f"{label[:27]:<28}{it:>10}{'':>8}{m:>7.2f}")
    ax.set_xlabel("training hours (2-core CPU)" if args.x == "hours" else "iterations (batch 8)")
    ax.set_ylabel(args.split_label)
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
