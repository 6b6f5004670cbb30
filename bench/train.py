"""Benchmark DeconvNet training throughput: images/s for forward + backward + optimizer step at 224×224.

Run:  .venv/bin/python bench/train.py                          # CPU: compact (0.25) and full (1.0), fp32 vs bf16
      .venv/bin/python bench/train.py --device cuda            # the CUDA path (adds fp16 autocast + GradScaler)
      .venv/bin/python bench/train.py --widths 0.25 --steps 10 --warmup 3

The step is the engine's own (``deconv_gui.training``): SGD with momentum and weight decay over the engine's
parameter groups, cross-entropy with void 255, autocast as ``--precision`` selects, batch 8 of 224² crops.
The full model costs ~3× its 32.7 GMAC forward per crop, so it runs only ``--full-steps`` timed steps (default 2)
after one warm-up step. Columns:
  width      channel multiplier (1.0 = the paper's 251.8M-parameter DeconvNet)
  precision  fp32, or bf16/fp16 autocast
  s/step     median wall seconds of one step (batch --batch)
  images/s   --batch / s/step
  GFLOP/s    achieved, counting 3 × 2 × conv MACs per image (forward + two backward passes)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deconv_gui.models.layers import count_macs  # noqa: E402
from deconv_gui.training.config import TrainConfig  # noqa: E402
from deconv_gui.training.evaluation import Normalizer  # noqa: E402
from deconv_gui.training.optim import SegmentationLoss, build_optimizer  # noqa: E402
from deconv_gui.training.run_setup import autocast_factory, make_model, resolve_device, use_channels_last  # noqa: E402

NUM_CLASSES = 21
SIZE = 224


def bench_one(width: float, precision: str, device: torch.device, batch: int, warmup: int, steps: int) -> dict:
    """Time ``steps`` training steps after ``warmup`` ones; returns one table row."""
    cfg = TrainConfig(data="bench", arch="deconvnet", width=width, stage="stage1", precision=precision)
    model = make_model(cfg, NUM_CLASSES).to(device)
    channels_last = use_channels_last("auto", device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = build_optimizer(model, cfg)
    criterion = SegmentationLoss().to(device)
    autocast = autocast_factory(precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    normalize = Normalizer([0.485, 0.456, 0.406], [0.229, 0.224, 0.225], device, channels_last)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, SIZE, SIZE), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (batch, SIZE, SIZE), generator=gen).to(device)
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            out = model(normalize(images))
        loss = criterion(out, labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    macs = count_macs(model.float().eval(), SIZE, SIZE)
    return {"width": width, "precision": precision, "s/step": step, "images/s": batch / step,
            "GFLOP/s": 6 * macs * batch / step / 1e9, "loss": float(loss.detach())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 1.0])
    parser.add_argument("--precisions", nargs="+", default=None, help="default: fp32 bf16 (+ fp16 on CUDA)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps of compact models")
    parser.add_argument("--full-steps", type=int, default=2, help="timed steps of width ≥ 0.5 (after 1 warm-up)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precisions = args.precisions or (["fp32", "bf16", "fp16"] if device.type == "cuda" else ["fp32", "bf16"])
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"DeconvNet training step, batch {args.batch} × {SIZE}², {NUM_CLASSES} classes, {where}")
    print(f"{'width':>6} {'precision':>9} {'s/step':>9} {'images/s':>9} {'GFLOP/s':>9}")
    for width in args.widths:
        big = width >= 0.5
        for precision in precisions:
            row = bench_one(width, precision, device, args.batch, 1 if big else args.warmup,
                            args.full_steps if big else args.steps)
            print(f"{row['width']:>6.3g} {row['precision']:>9} {row['s/step']:>9.3f} {row['images/s']:>9.1f} "
                  f"{row['GFLOP/s']:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
