"""The ``deconv-gui`` command: ``segment`` images, ``evaluate`` a model on a dataset, ``import-caffe`` weights,
``export-onnx``.

Every error a user can cause is printed as one line ``error: <file>: <reason>`` — never a traceback. A folder
run reports a bad file and goes on with the next one; the exit status is 1 if any file failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from deconv_gui.cli_tune import add_tune_parsers, cmd_tune_crf, cmd_tune_ensemble
from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.core.vocabulary import (
    AGGREGATIONS,
    DATASET_FORMATS,
    DEVICES,
    ENSEMBLE_MODES,
    INFERENCE_MODES,
    PRECISIONS,
)
from deconv_gui.training.cli_train import add_train_parser, cmd_train

log = logging.getLogger("deconv_gui")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="model checkpoint (.pt) to run")
    p.add_argument("--proposals", type=int, default=None, metavar="N",
                   help="Edge Box proposals kept (top N; default: the model's setting, else 50)")
    p.add_argument("--max-boxes", type=int, default=None, metavar="N", help="Edge Box candidates before top-N")
    p.add_argument("--min-side", type=float, default=None,
                   help="skip proposals whose shorter side is smaller (px; default: the model's, else 112)")
    p.add_argument("--edge-model", default=None, help="structured-edge model file (model.yml.gz) for Edge Boxes")
    p.add_argument("--edges", choices=("auto", "hed", "gradient"), default=None,
                   help="edge source for Edge Boxes (auto: HED when installed, else built-in gradients)")
    p.add_argument("--mode", choices=INFERENCE_MODES, default="auto",
                   help="instance-wise (DeconvNet) or whole-image inference; auto picks by architecture")
    p.add_argument("--aggregation", choices=AGGREGATIONS, default="max", help="paper Eq. 1 (max) or Eq. 2 (sum)")
    p.add_argument("--base", choices=("auto", "zeros", "whole"), default="auto",
                   help="instance-wise aggregation starts from 0 (paper) or from a whole-image pass; auto: the "
                        "whole-image pass when class 0 is not 'background' (e.g. CamVid's Sky)")
    p.add_argument("--ensemble", choices=("auto", *ENSEMBLE_MODES), default="auto",
                   help="combine with --partner: mean (paper), weighted (the weight tune-ensemble stored), product "
                        "(original code) or off; auto: weighted when the checkpoint has a weight, else mean")
    p.add_argument("--crf-preset", choices=("auto", "deconvnet"), default="auto",
                   help="CRF parameters: auto = the ones tune-crf stored in the checkpoint (else DeconvNet's), "
                        "deconvnet = DeconvNet's VOC values")
    p.add_argument("--partner", default=None, help="whole-image partner checkpoint (FCN-8s) for the ensemble")
    p.add_argument("--crf", action="store_true", help="refine with the fully connected CRF")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--batch", type=int, default=0, help="crops per forward pass (0 = auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deconv-gui", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug information")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment an image or every image of a folder")
    seg.add_argument("input", help="an image file or a folder of images")
    seg.add_argument("--out", required=True, help="output folder (created if missing)")
    _add_model_args(seg)
    seg.add_argument("--instances", action="store_true",
                     help="also write per-instance masks and a JSON of boxes, scores and classes")
    seg.add_argument("--overlay", action="store_true", help="also write a colour overlay PNG")
    seg.add_argument("--coco", action="store_true",
                     help="also write a COCO JSON with RLE instance masks (one coco.json for a folder)")

    demo = sub.add_parser("demo", help="segment the bundled demo scene (or IMAGE) with the bundled demo model")
    demo.add_argument("input", nargs="?", default=None, help="an image or folder instead of the demo scene")
    demo.add_argument("--weights", default=None, help="checkpoint instead of the bundled demo model")
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")

    ev = sub.add_parser("evaluate", help="per-class IoU of a model on a dataset split")
    ev.add_argument("--data", required=True, help="dataset root folder")
    ev.add_argument("--format", choices=DATASET_FORMATS, required=True)
    ev.add_argument("--split", default="val")
    ev.add_argument("--limit", type=int, default=0, help="evaluate only the first N images (0 = all)")
    _add_model_args(ev)

    imp = sub.add_parser("import-caffe", help="convert an original Caffe .caffemodel (DeconvNet, FCN-8s) to a checkpoint")
    imp.add_argument("caffemodel", help="the .caffemodel weights file (e.g. DeconvNet_trainval_inference.caffemodel)")
    imp.add_argument("--arch", choices=("auto", "deconvnet", "fcn8s"), default="auto",
                     help="the network in the file (auto: recognised from its layer names)")
    imp.add_argument("--out", required=True, help="checkpoint (.pt) to write")

    tv = sub.add_parser("import-torchvision",
                        help="convert a torchvision segmentation state dict (e.g. fcn_resnet50_coco-*.pth) to a checkpoint")
    tv.add_argument("weights_file", help="the .pth state dict (torchvision's hub cache file, or your own)")
    tv.add_argument("--arch", default="auto",
                    help="fcn_resnet50, fcn_resnet101, deeplabv3_resnet50, deeplabv3_resnet101, "
                         "deeplabv3_mobilenet_v3_large, lraspp_mobilenet_v3_large (auto: recognised from its keys)")
    tv.add_argument("--out", required=True, help="checkpoint (.pt) to write")

    onx = sub.add_parser("export-onnx", help="export a checkpoint to ONNX (preprocessing included)")
    onx.add_argument("weights", help="checkpoint (.pt) to export")
    onx.add_argument("--out", required=True, help="ONNX file to write")
    onx.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                     help="input height and width (default: the checkpoint's input size, 224 for DeconvNet)")
    pack = sub.add_parser("pack", help="rewrite a checkpoint in float16 and/or split into files of at most N MB")
    pack.add_argument("weights", help="checkpoint (.pt) to rewrite")
    pack.add_argument("--out", required=True, help="checkpoint to write (name.pt, plus name.part2.pt … if split)")
    pack.add_argument("--fp16", action="store_true", help="store float tensors as float16 (half the size)")
    pack.add_argument("--max-file-mb", type=float, default=0.0, help="split into files of at most this size")
    add_train_parser(sub)
    add_tune_parsers(sub, _add_model_args)
    return parser


def _make_segmenter(args: argparse.Namespace, progress_bar: bool = True):  # noqa: ANN202 - local import types
    from deconv_gui.inference.pipeline import Segmenter, edge_box_config, options_for_model
    from deconv_gui.inference.runner import ModelRunner, RunnerOptions
    from deconv_gui.postprocess.crf import CRFParams
    from deconv_gui.proposals.edge_boxes import EdgeBoxProposer

    ropts = RunnerOptions(device=args.device, precision=args.precision, chunk_size=args.batch)
    runner = ModelRunner.from_checkpoint(args.weights, ropts)
    partner = None
    if args.partner and args.ensemble != "off":
        partner = ModelRunner.from_checkpoint(args.partner, ropts)
        if partner.meta.class_names != runner.meta.class_names:
            raise DeconvGuiError(
                f"its classes {partner.meta.class_names} differ from {args.weights}'s {runner.meta.class_names}",
                args.partner,
            )
    proposer = EdgeBoxProposer(edge_box_config(
        runner.meta, max_boxes=args.max_boxes, top_n=args.proposals, min_side=args.min_side,
        edge_model_path=args.edge_model, edge_source=getattr(args, "edges", None),
    ))
    log.info("proposals: %s", proposer.edge_source)
    changes: dict = {}
    if getattr(args, "crf_preset", "auto") == "deconvnet":
        changes["crf_params"] = CRFParams()
    options = options_for_model(
        runner.meta, ensemble=args.ensemble, mode=args.mode, aggregation=args.aggregation, base=args.base,
        crf=args.crf, keep_instance_scores=bool(getattr(args, "instances", False) or getattr(args, "coco", False)),
        **changes,
    )
    log.info("model %s on %s", runner.architecture, runner.describe_device())
    return Segmenter(runner, partner=partner, proposer=proposer, options=options)


def _segment_inputs(path: Path):  # noqa: ANN202 - ImageListing, imported late
    """The images to segment and the folder entries that were skipped (with the reason)."""
    from deconv_gui.io.files import not_a_file_reason
    from deconv_gui.io.images import ImageListing, scan_images

    if path.is_dir():
        listing = scan_images(path)
        if not listing.images:
            detail = f" ({len(listing.skipped)} entries skipped: {'; '.join(listing.skipped_lines(3))})" \
                if listing.skipped else ""
            raise DeconvGuiError(f"no images in this folder{detail}", path)
        return listing
    reason = not_a_file_reason(path)
    if reason == "file not found":
        raise DeconvGuiError("no such file or folder", path)
    if reason is not None:
        raise DeconvGuiError(reason, path)
    return ImageListing(images=[path])


def _export_formats(args: argparse.Namespace) -> list[str]:
    """Palette PNGs always; the other formats as the flags ask."""
    flags = {"overlay": args.overlay, "instances": args.instances, "coco": args.coco}
    return ["palette", *(fmt for fmt, wanted in flags.items() if wanted)]


def _segmented(files: list[Path], segmenter, bar, failed: list[Path]) -> Iterator[tuple]:  # noqa: ANN001
    """``(path, image, result)`` for each file that reads and segments; a bad file is reported and skipped."""
    from tqdm import tqdm

    from deconv_gui.io.images import read_image

    for path in files:
        bar.set_postfix_str(path.name)
        try:
            image = read_image(path)

            def progress(done: int, total: int, stage: str, name: str = path.name) -> None:
                bar.set_postfix_str(f"{name} {stage} {done}/{total}")

            result = segmenter.run(image, progress=progress)
        except DeconvGuiError as exc:
            failed.append(path)
            tqdm.write(f"error: {exc}", file=sys.stderr)
        else:
            yield path, image, result
        bar.update(1)


def shard_files(files: list[Path], rank: int, world: int) -> list[Path]:
    """This process's disjoint share of ``files`` (every ``world``-th stem, in order): files that share a stem
    (``a.png``, ``a.jpg``) go to the same process, so their output names are those of a single-process run."""
    stems: dict[str, int] = {}
    for f in files:
        stems.setdefault(f.stem, len(stems))
    return [f for f in files if stems[f.stem] % world == rank]


def _join_ranks(args: argparse.Namespace):  # noqa: ANN202 - DistInfo, imported lazily
    """Under torchrun: join the process group (NCCL with one GPU per rank, else gloo on the CPU) and point
    ``args.device`` at this rank's GPU. A single process otherwise (no-op)."""
    import torch

    from deconv_gui.training.distributed import setup

    use_cuda = args.device != "cpu" and torch.cuda.is_available()
    info = setup("cuda" if use_cuda else "cpu")
    if info.enabled and use_cuda:
        args.device = f"cuda:{info.local_rank}"
    return info


def cmd_segment(args: argparse.Namespace) -> int:
    """Segment the input; existing outputs are overwritten (a folder's COCO file is one ``coco.json``).

    Under ``torchrun --nproc_per_node N`` each process segments a disjoint share of the files
    (:func:`shard_files`) and writes their per-image outputs; rank 0 merges the COCO file and writes
    ``segment_summary.json`` (who did which file, failures, seconds) once every rank is done."""
    from deconv_gui.io.files import require_writable_folder
    from deconv_gui.training.distributed import teardown

    listing = _segment_inputs(Path(args.input))
    files = listing.images
    for line in listing.skipped_lines():
        print(f"skipped: {line}", file=sys.stderr)
    out_dir = require_writable_folder(args.out)
    info = _join_ranks(args)
    try:
        return _segment_share(args, files, out_dir, info, len(listing.skipped))
    finally:
        teardown(info)


def _segment_share(args: argparse.Namespace, files: list[Path], out_dir: Path, info,  # noqa: ANN001 - DistInfo
                   skipped: int = 0) -> int:
    import json

    from tqdm import tqdm

    from deconv_gui.inference.result_files import FOLDER_COCO_NAME, export_folder, export_result

    t0 = time.perf_counter()
    share = shard_files(files, info.rank, info.world_size)
    segmenter = _make_segmenter(args)
    formats = _export_formats(args)
    failed: list[Path] = []
    bar = tqdm(total=len(share), unit="img", disable=None if info.is_main else True)
    items = _segmented(share, segmenter, bar, failed)
    part_name = f".coco.rank{info.rank}.json" if info.enabled else FOLDER_COCO_NAME
    if Path(args.input).is_dir():
        export_folder(items, out_dir, formats, overwrite=True, coco_name=part_name)
    else:
        for path, image, result in items:
            export_result(out_dir, path.stem, image, result, formats, overwrite=True, image_name=path.name)
    bar.close()
    note = f" ({skipped} folder entries skipped, listed above)" if skipped else ""
    if not info.enabled:
        print(f"{len(files) - len(failed)} of {len(files)} images segmented into {out_dir}{note}")
        return 1 if failed else 0
    # Each rank's COCO part travels to rank 0 as data (no shared folder needed across machines).
    part_path = out_dir / part_name
    part = json.loads(part_path.read_text()) if part_path.exists() else None
    part_path.unlink(missing_ok=True)
    mine = {"rank": info.rank, "device": segmenter.runner.describe_device(), "files": [str(p) for p in share],
            "failed": [str(p) for p in failed], "seconds": round(time.perf_counter() - t0, 2), "coco": part}
    import torch.distributed as dist

    reports: list[dict] = [{}] * info.world_size
    dist.all_gather_object(reports, mine)
    n_failed = sum(len(r["failed"]) for r in reports)
    if info.is_main:
        _merge_rank_reports(reports, files, out_dir, args)
        print(f"{len(files) - n_failed} of {len(files)} images segmented into {out_dir} by {info.world_size} "
              f"processes{note}")
    return 1 if n_failed else 0


def _merge_rank_reports(reports: list[dict], files: list[Path], out_dir: Path, args: argparse.Namespace) -> None:
    """Rank 0: one ``coco.json`` from the ranks' parts and ``segment_summary.json``."""
    from deconv_gui.inference.result_files import FOLDER_COCO_NAME
    from deconv_gui.io.instance_files import merge_coco_parts
    from deconv_gui.io.label_maps import write_json

    parts = [r["coco"] for r in reports if r["coco"] is not None]
    if parts:
        try:
            merge_coco_parts(parts, out_dir / FOLDER_COCO_NAME, [p.name for p in files])
        except ValueError as exc:
            raise DeconvGuiError(f"cannot merge the processes' COCO files: {exc}", out_dir) from None
    write_json(out_dir / "segment_summary.json", {
        "input": str(args.input), "weights": str(args.weights), "processes": len(reports), "images": len(files),
        "segmented": len(files) - sum(len(r["failed"]) for r in reports),
        "failed": [f for r in reports for f in r["failed"]],
        "ranks": [{k: v for k, v in r.items() if k != "coco"} for r in reports],
    })


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deconv_gui.core.metrics import ConfusionMatrix
    from deconv_gui.io.dataset_files import labelled_images

    segmenter = _make_segmenter(args)
    files, names = dataset_for_model(args, segmenter.runner.meta.class_names)
    cm = ConfusionMatrix(len(names))
    count = min(len(files), args.limit or len(files))
    t0 = time.perf_counter()
    for image, target in tqdm(labelled_images(files, len(names), args.limit), total=count, unit="img", disable=None):
        cm.update(target, segmenter.run(image).label)
    print(cm.table(names))
    print(f"{count} images, {time.perf_counter() - t0:.1f} s, device {segmenter.runner.describe_device()}")
    return 0


def dataset_for_model(args: argparse.Namespace, class_names: list[str]):  # noqa: ANN201 - (DatasetFiles, names)
    """``args.split`` of ``args.data`` and the model's class names; DeconvGuiError when the classes differ."""
    from deconv_gui.io.dataset_files import find_dataset_files

    files = find_dataset_files(args.data, args.format, args.split)
    names = list(class_names)
    if files.class_names and files.class_names != names:
        raise DeconvGuiError(f"the model's classes {names} differ from the dataset's {files.class_names}",
                             args.weights)
    return files, names


def cmd_import_caffe(args: argparse.Namespace) -> int:
    """Convert a ``.caffemodel``; nothing is written when the file is not usable."""
    from deconv_gui.models.caffe_import import import_caffe

    summary = import_caffe(args.caffemodel, args.out, args.arch)
    print(f"{summary.describe()}\nwritten to {args.out}")
    return 0


def cmd_import_torchvision(args: argparse.Namespace) -> int:
    from deconv_gui.models.torchvision_seg import import_torchvision

    print(f"{import_torchvision(args.weights_file, args.out, args.arch)}\nwritten to {args.out}")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from deconv_gui.io.checkpoints import load_checkpoint, save_checkpoint

    state_dict, meta = load_checkpoint(args.weights)
    limit = int(args.max_file_mb * 1e6) if args.max_file_mb > 0 else None
    files = save_checkpoint(args.out, state_dict, meta, half=args.fp16, max_file_bytes=limit)
    sizes = ", ".join(f"{f.name} {f.stat().st_size / 1e6:.1f} MB" for f in files)
    print(f"{meta.architecture}: {sum(v.numel() for v in state_dict.values()) / 1e6:.1f}M values written to {sizes}")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from deconv_gui.inference.onnx_export import export_onnx

    height, width = args.size if args.size else (None, None)
    meta, (h, w) = export_onnx(args.weights, args.out, height=height, width=width)
    print(f"{meta.architecture} ({meta.num_classes} classes) written to {args.out}: input 'image' float32 "
          f"(N, 3, {h}, {w}) RGB 0-255, output 'scores' (N, {meta.num_classes}, {h}, {w})")
    return 0


RESOURCES = Path(__file__).resolve().parents[1] / "resources"
#: A typical demo scene (make_demo_scene), not the best: of seeds 2026–2045 one at the median of the demo
#: model's instance-wise scores whose objects all have a top-10 proposal at IoU ≥ 0.5 (bench/demo_model.py).
DEMO_SCENE_SEED = 2038
DEMO_SCENE = RESOURCES / "demo" / "scene.png"
DEMO_WEIGHTS = RESOURCES / "weights" / "demo_synthetic.pt"


def ensure_demo_scene() -> Path:
    """The bundled demo scene: a synthetic 480×360 scene the project generates (:data:`DEMO_SCENE_SEED`), written
    once."""
    if not DEMO_SCENE.exists():
        from deconv_gui.core.synthetic import make_demo_scene
        from deconv_gui.io.atomic import atomic_path

        DEMO_SCENE.parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        with atomic_path(DEMO_SCENE) as tmp:
            Image.fromarray(make_demo_scene(DEMO_SCENE_SEED).image).save(tmp)
    return DEMO_SCENE


def cmd_demo(args: argparse.Namespace) -> int:
    weights = Path(args.weights) if args.weights else DEMO_WEIGHTS
    if not weights.exists():
        raise DeconvGuiError("no demo model yet (it is trained in the training issue); pass --weights CKPT", weights)
    target = args.input or str(ensure_demo_scene())
    seg_args = build_parser().parse_args(
        ["segment", target, "--weights", str(weights), "--out", args.out, "--instances", "--overlay"])
    code = cmd_segment(seg_args)
    print(f"results in {Path(args.out).resolve()}")
    return code


def _instance_labeler(model, meta, device):  # noqa: ANN001, ANN202 - training's InstanceLabelerFactory
    """``deconv-gui train --set val_mode=instances``: validate with the real proposal-wise pipeline.

    The runner gets a copy of the training model: it rewrites its model in place (BatchNorm folded, fc7 and
    fc6-deconv as GEMM buffers), which on the training model itself would freeze those layers and change the
    checkpoints' keys."""
    import copy

    from deconv_gui.inference.pipeline import PipelineOptions, Segmenter, edge_box_config
    from deconv_gui.inference.runner import ModelRunner, RunnerOptions
    from deconv_gui.proposals.edge_boxes import EdgeBoxProposer

    runner = ModelRunner(copy.deepcopy(model), meta, RunnerOptions(device=str(device), precision="fp32",
                                                                   channels_last=False))
    segmenter = Segmenter(runner, proposer=EdgeBoxProposer(edge_box_config(meta)),
                          options=PipelineOptions(mode="instances", keep_instance_scores=False))
    return lambda image: segmenter.run(image).label


def _printable_names() -> None:
    """File names that are not UTF-8 print as ``\\udce9`` escapes instead of raising UnicodeEncodeError (stdout is
    strict under a UTF-8 locale; stderr already escapes)."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    _printable_names()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    commands = {"segment": cmd_segment, "evaluate": cmd_evaluate, "demo": cmd_demo, "import-caffe": cmd_import_caffe,
                "export-onnx": cmd_export_onnx, "import-torchvision": cmd_import_torchvision,
                "tune-ensemble": cmd_tune_ensemble, "tune-crf": cmd_tune_crf, "pack": cmd_pack,
                "train": lambda a: cmd_train(a, instance_labeler=_instance_labeler)}
    try:
        return commands[args.command](args)
    except DeconvGuiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
