"""Benchmark DeconvNet's instance-wise inference: 50 proposals on a 480×360 image.

Run:  .venv/bin/python bench/inference.py                 # CPU, full + compact, all variants
      .venv/bin/python bench/inference.py --device cuda   # the CUDA path (fp32 vs fp16 autocast)
      .venv/bin/python bench/inference.py --widths 0.25 --proposals 50

Each variant runs in a fresh child process so that its peak RSS is its own. Columns:
  model      width multiplier (1.0 = the paper's 251.8M-parameter DeconvNet)
  batching   "batched" = chunks of --batch crops per forward; "single" = one proposal at a time
  precision  fp32, or bf16/fp16 autocast
  s/image    wall seconds for crops → forward → paste-back → max aggregation of all proposals (median of --repeat)
  crops/s    proposals per second
  GFLOP/s    achieved, counting 2 × conv MACs of the network per crop
  % peak     against a large 3×3 convolution measured in the same run, same precision (the attainable rate)
  RSS GB     peak resident memory of the child process (model + activations + cache)
  agree %    label agreement with the fp32 batched run of the same width (same random weights)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deconv_gui.core.palette import voc_palette  # noqa: E402
from deconv_gui.core.synthetic import make_scene  # noqa: E402
from deconv_gui.inference.pipeline import PipelineOptions, Segmenter  # noqa: E402
from deconv_gui.inference.runner import ModelRunner, RunnerOptions  # noqa: E402
from deconv_gui.io.checkpoints import ModelMeta  # noqa: E402
from deconv_gui.models.layers import count_macs  # noqa: E402
from deconv_gui.models.registry import build_model  # noqa: E402
from deconv_gui.proposals.crops import integer_boxes  # noqa: E402
from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer  # noqa: E402

NUM_CLASSES = 21


def conv_peak_gflops(device: torch.device, precision: str) -> float:
    """Attainable rate: a 256→256 3×3 conv on 8×56×56, channels_last, median of 5."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1).to(device).eval().to(memory_format=torch.channels_last)
    x = torch.randn(8, 256, 56, 56, device=device).contiguous(memory_format=torch.channels_last)
    macs = 8 * 256 * 256 * 9 * 56 * 56
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    times = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        for i in range(8):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            conv(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - t0)
    return 2 * macs / statistics.median(times) / 1e9


def boxes_for_scene(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A 480×360 synthetic scene and its top-``n`` Edge Box proposals (padded with random boxes if fewer)."""
    scene = make_scene(0, height=360, width=480)
    try:
        props = EdgeBoxProposer(EdgeBoxConfig(top_n=n)).propose(scene.image)
        boxes = integer_boxes(props.boxes)
    except AttributeError:  # an OpenCV without the contrib modules (cv2.ximgproc): random boxes only
        print("  (no cv2.ximgproc here: using random boxes)", file=sys.stderr)
        boxes = np.zeros((0, 4), np.int64)
    rng = np.random.default_rng(0)
    while len(boxes) < n:
        x0, y0 = rng.integers(0, 300), rng.integers(0, 200)
        boxes = np.concatenate([boxes, [[x0, y0, x0 + rng.integers(112, 180), y0 + rng.integers(112, 160)]]])
    return scene.image, boxes[:n]


def run_variant(width: float, batch: int, precision: str, device: str, n: int, repeat: int) -> dict:
    torch.manual_seed(0)
    model = build_model("deconvnet", num_classes=NUM_CLASSES, width=width)
    meta = ModelMeta(architecture="deconvnet", width=width, num_classes=NUM_CLASSES,
                     class_names=[f"c{i}" for i in range(NUM_CLASSES)], palette=voc_palette()[:NUM_CLASSES].tolist(),
                     mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    runner = ModelRunner(model, meta, RunnerOptions(device=device, precision=precision, chunk_size=batch))
    del model
    image, boxes = boxes_for_scene(n)
    seg = Segmenter(runner, options=PipelineOptions(keep_instance_scores=False))
    seg.instance_scores(image, boxes[: min(batch, n)], keep=False)  # warm-up
    times = []
    acc = None
    for _ in range(repeat):
        if runner.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        acc, _ = seg.instance_scores(image, boxes, keep=False)
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    macs = count_macs(runner.model, 224, 224) * n
    peak = conv_peak_gflops(runner.device, runner.precision)
    labels = acc.argmax(0).astype(np.uint8)
    return {
        "s_per_image": sec, "crops_per_s": n / sec, "gflops": 2 * macs / sec / 1e9, "peak": peak,
        "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "labels": labels.tobytes().hex() if labels.size < 10 else None, "labels_shape": labels.shape,
        "device": runner.describe_device(),
        "_labels_file": _save_labels(labels, width, batch, precision),
    }


def _save_labels(labels: np.ndarray, width: float, batch: int, precision: str) -> str:
    out = Path(os.environ.get("BENCH_TMP", "/tmp")) / f"bench_labels_{width}_{batch}_{precision}.npy"
    np.save(out, labels)
    return str(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--widths", default="1.0,0.25")
    p.add_argument("--proposals", type=int, default=50)
    p.add_argument("--batch", type=int, default=0, help="crops per forward (0 = the runner's default)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--precisions", default="")
    p.add_argument("--no-single", action="store_true", help="skip the one-proposal-at-a-time rows")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        width, batch, precision = args.child.split(":")
        print(json.dumps(run_variant(float(width), int(batch), precision, args.device, args.proposals, args.repeat)))
        return
    precisions = args.precisions.split(",") if args.precisions else (
        ["fp32", "fp16"] if args.device.startswith("cuda") else ["fp32", "bf16"])
    batch = args.batch or (32 if args.device.startswith("cuda") else 8)
    rows = []
    for width in [float(w) for w in args.widths.split(",")]:
        variants = [(batch, prec) for prec in precisions]
        if not args.no_single:
            variants.append((1, "fp32"))
        reference = None
        for b, prec in variants:
            cmd = [sys.executable, __file__, "--device", args.device, "--proposals", str(args.proposals),
                   "--repeat", str(args.repeat), "--child", f"{width}:{b}:{prec}"]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            labels = np.load(r["_labels_file"])
            if reference is None:
                reference = labels
            r["agree"] = float((labels == reference).mean() * 100)
            rows.append((width, "batched" if b > 1 else "single", b, prec, r))
            print(f"  done width {width} batch {b} {prec}: {r['s_per_image']:.2f} s", file=sys.stderr)
    print(f"\nDeconvNet instance-wise inference, {args.proposals} proposals, 480×360, device: "
          f"{rows[0][4]['device'] if rows else args.device}, torch {torch.__version__}")
    print(f"{'model':>9} {'batching':>9} {'batch':>5} {'precision':>9} {'s/image':>8} {'crops/s':>8} "
          f"{'GFLOP/s':>8} {'peak':>8} {'% peak':>7} {'RSS GB':>7} {'agree %':>8}")
    for width, kind, b, prec, r in rows:
        print(f"{'w=' + str(width):>9} {kind:>9} {b:>5} {prec:>9} {r['s_per_image']:>8.2f} {r['crops_per_s']:>8.1f} "
              f"{r['gflops']:>8.0f} {r['peak']:>8.0f} {100 * r['gflops'] / r['peak']:>6.0f}% {r['rss_gb']:>7.2f} "
              f"{r['agree']:>8.2f}")


if __name__ == "__main__":
    main()
