"""The README's CamVid val table: runs ``deconv-gui evaluate`` once per row (exactly the command a user runs) and
prints a Markdown table of per-class IoU, mIoU, pixel accuracy and wall time.

    .venv/bin/python bench/camvid_table.py --data ../shared/data/camvid
    .venv/bin/python bench/camvid_table.py --data ../shared/data/camvid --rows deconvnet \\
        --compare "whole-image only=runs/w/best.pt" --compare "+ stage 1=runs/s1/final.pt"

Rows (``--rows``, default all): ``deconvnet`` (instance-wise, ``--ensemble off``), ``deconvnet_crf``, ``fcn``,
``fcn_crf``, ``ensemble`` (EDeconvNet, mean), ``ensemble_crf``, ``whole`` (DeconvNet's whole-image pass).
``--compare LABEL=CKPT`` adds an instance-wise DeconvNet row per checkpoint (the stage comparison).
``--one-pass`` computes the four DeconvNet rows (instance-wise, + CRF, EDeconvNet, + CRF) from one network pass per
image: the same ``Segmenter.segment`` → ``recombine`` that ``deconv-gui evaluate`` runs, with each row's options
(a quarter of the time when the instance-wise pass dominates); their time column is that shared pass.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "resources" / "weights"
SHORT = {"Building": "Bldg", "Pavement": "Pave", "SignSymbol": "Sign", "Pedestrian": "Ped", "Bicyclist": "Bike"}


def evaluate(data: str, weights: Path, extra: list[str], limit: int) -> tuple[dict[str, float], float, float, float]:
    """Run ``deconv-gui evaluate``; returns ``({class: IoU %}, mIoU %, pixel acc %, seconds)``."""
    cmd = [sys.executable, "-m", "deconv_gui.cli", "evaluate", "--data", data, "--format", "camvid",
           "--weights", str(weights), *extra]
    if limit:
        cmd += ["--limit", str(limit)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    seconds = time.perf_counter() - t0
    ious: dict[str, float] = {}
    miou = pixel = float("nan")
    for line in out.splitlines():
        m = re.match(r"^(\S.*?)\s+(-?[\d.]+|n/a)(?:\s+(-?[\d.]+|n/a))?$", line.strip())
        if not m or m.group(1) == "class":
            continue
        name, value = m.group(1), float(m.group(2)) if m.group(2) != "n/a" else float("nan")
        if name == "mIoU":
            miou = value
        elif name == "pixel acc":
            pixel = value
        elif name != "mean class acc" and m.group(3) is not None:
            ious[name] = value
    return ious, miou, pixel, seconds


def one_pass(data: str, deconvnet: Path, fcn: Path, names: list[str], limit: int
             ) -> dict[str, tuple[dict[str, float], float, float, float]]:
    """The rows ``names`` (of deconvnet, deconvnet_crf, ensemble, ensemble_crf) from one pass of the networks per
    val image; ``{row: ({class: IoU %}, mIoU %, pixel acc %, seconds of the shared pass)}``."""
    from dataclasses import replace

    from tqdm import tqdm

    from deconv_gui.cli import _make_segmenter, build_parser, dataset_for_model
    from deconv_gui.core.metrics import ConfusionMatrix
    from deconv_gui.inference.pipeline import recombine
    from deconv_gui.io.dataset_files import labelled_images

    args = build_parser().parse_args(["evaluate", "--data", data, "--format", "camvid", "--split", "val",
                                      "--weights", str(deconvnet), "--partner", str(fcn), "--ensemble", "mean"])
    segmenter = _make_segmenter(args, progress_bar=False)
    base = segmenter.options
    options = {"deconvnet": replace(base, ensemble="off"), "deconvnet_crf": replace(base, ensemble="off", crf=True),
               "ensemble": base, "ensemble_crf": replace(base, crf=True)}
    files, classes = dataset_for_model(args, segmenter.runner.meta.class_names)
    matrices = {name: ConfusionMatrix(len(classes)) for name in names}
    t0 = time.perf_counter()
    count = min(len(files), limit or len(files))
    for image, target in tqdm(labelled_images(files, len(classes), limit), total=count, unit="img", disable=None):
        raw = segmenter.segment(image)
        for name in names:
            matrices[name].update(target, recombine(raw, image, options[name]).label)
    seconds = time.perf_counter() - t0
    return {name: ({c: 100 * float(v) for c, v in zip(classes, cm.iou(), strict=True)}, 100 * cm.mean_iou(),
                   100 * cm.pixel_accuracy(), seconds) for name, cm in matrices.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="CamVid root (SegNet layout)")
    parser.add_argument("--deconvnet", type=Path, default=WEIGHTS / "camvid_deconvnet.pt")
    parser.add_argument("--fcn", type=Path, default=WEIGHTS / "camvid_fcn8s.pt")
    parser.add_argument("--rows", default="deconvnet,deconvnet_crf,fcn,fcn_crf,ensemble,ensemble_crf,whole")
    parser.add_argument("--compare", action="append", default=[], metavar="LABEL=CKPT")
    parser.add_argument("--limit", type=int, default=0, help="first N val images only (0 = all 101)")
    parser.add_argument("--one-pass", action="store_true",
                        help="the DeconvNet/EDeconvNet rows from one network pass per image (see above)")
    args = parser.parse_args()

    dn, fcn, partner = args.deconvnet, args.fcn, ["--partner", str(args.fcn), "--ensemble", "mean"]
    catalogue = {
        "deconvnet": ("DeconvNet (instance-wise)", dn, ["--ensemble", "off"]),
        "deconvnet_crf": ("DeconvNet + CRF", dn, ["--ensemble", "off", "--crf"]),
        "fcn": ("FCN-8s", fcn, []),
        "fcn_crf": ("FCN-8s + CRF", fcn, ["--crf"]),
        "ensemble": ("EDeconvNet (mean ensemble)", dn, partner),
        "ensemble_crf": ("EDeconvNet + CRF", dn, [*partner, "--crf"]),
        "whole": ("DeconvNet, whole-image pass", dn, ["--mode", "whole"]),
    }
    wanted = [name for name in args.rows.split(",") if name]
    shared = [n for n in wanted if n in ("deconvnet", "deconvnet_crf", "ensemble", "ensemble_crf")] \
        if args.one_pass else []
    shared_rows = one_pass(args.data, dn, fcn, shared, args.limit) if shared else {}
    rows = [catalogue[name] for name in wanted]
    for spec in args.compare:
        label, _, ckpt = spec.partition("=")
        rows.append((label, Path(ckpt), ["--ensemble", "off"]))

    header_done = False
    for name, (label, weights, extra) in zip(wanted + [""] * len(args.compare), rows, strict=True):
        ious, miou, pixel, seconds = shared_rows[name] if name in shared_rows else \
            evaluate(args.data, weights, extra, args.limit)
        if not header_done:
            names = [SHORT.get(n, n) for n in ious]
            print("| model | " + " | ".join(names) + " | **mIoU** | pixel acc | s / run |")
            print("|---" * (len(names) + 4) + "|")
            header_done = True
        cells = " | ".join(f"{v:.2f}" for v in ious.values())
        print(f"| {label} | {cells} | **{miou:.2f}** | {pixel:.2f} | {seconds:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
