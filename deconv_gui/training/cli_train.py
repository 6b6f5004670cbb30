"""``deconv-gui train``: the command-line face of :func:`deconv_gui.training.engine.run_training`.

Examples::

    deconv-gui train --data ../shared/data/camvid --format camvid --arch fcn8s --width 0.25 --stage whole \\
        --iterations 20000 --batch-size 8 --run-dir runs/fcn_camvid
    deconv-gui train --resume runs/fcn_camvid                 # continue exactly where it stopped
    deconv-gui train --config stage2.yaml --init runs/s1/final.pt --set lr=0.001 --set iou_threshold=0.6
    torchrun --nproc_per_node 2 -m deconv_gui.cli train ...   # DDP (gloo on CPU, NCCL on CUDA)

Settings are layered: architecture/stage defaults → ``--config`` file → explicit flags → ``--set key=value``.
"""

from __future__ import annotations

import argparse
from typing import Any

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.core.vocabulary import DATASET_FORMATS, DEVICES, STAGES, TRAINING_PRECISIONS

#: flag dest → config field (flags default to None so that only the ones given override the file).
_FLAG_FIELDS = {
    "data": "data", "format": "format", "arch": "arch", "width": "width", "stage": "stage",
    "iterations": "iterations", "batch_size": "batch_size", "grad_accum": "grad_accum", "lr": "lr",
    "optimizer": "optimizer", "init": "init", "run_dir": "run_dir", "device": "device", "precision": "precision",
    "workers": "workers", "threads": "threads", "val_every": "val_every", "val_limit": "val_limit",
    "checkpoint_every": "checkpoint_every", "seed": "seed", "precise_bn": "precise_bn_batches",
    "log_every": "log_every", "init_encoder": "init_encoder", "encoder_width": "encoder_width",
    "fc_width": "fc_width", "freeze_encoder_stages": "freeze_encoder_stages", "train_split": "train_split",
    "val_split": "val_split",
}


def add_train_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``train`` on the ``deconv-gui`` sub-command parser."""
    p = sub.add_parser("train", help="train a segmentation model (resumable; torchrun for several processes)",
                       description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="dataset root folder")
    p.add_argument("--format", choices=DATASET_FORMATS)
    p.add_argument("--arch", choices=("deconvnet", "fcn8s", "pspnet", "linknet"))
    p.add_argument("--width", type=float, help="channel width multiplier (1.0 = the paper's network)")
    p.add_argument("--stage", choices=STAGES,
                   help="DeconvNet's instance stages, or whole-image training (any architecture)")
    p.add_argument("--iterations", type=int, help="optimizer steps")
    p.add_argument("--batch-size", type=int, help="samples per forward pass (per process)")
    p.add_argument("--grad-accum", type=int, help="forward passes per optimizer step")
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=("sgd", "rmsprop", "adam"))
    p.add_argument("--init", help="checkpoint to start from (stage 2: stage 1's final.pt)")
    p.add_argument("--init-encoder", metavar="SOURCE",
                   help="VGG16 encoder from 'hed' (the installed HED file), a torchvision vgg16/vgg16_bn file or a "
                        "DeconvNet/FCN-8s checkpoint (deconvnet, fcn8s)")
    p.add_argument("--encoder-width", type=float, help="width of the 13 VGG16 convs (default: --width)")
    p.add_argument("--fc-width", type=float, help="width of fc6/fc7 (default: --width)")
    p.add_argument("--freeze-encoder-stages", type=int, metavar="N", help="do not train encoder stages 1..N")
    p.add_argument("--train-split", help="split expression, e.g. train, train+val, 'train+val!0006R0' "
                                          "(! drops files whose name starts so, @ keeps only those)")
    p.add_argument("--val-split", help="split expression for validation, e.g. val or 'train@0006R0'")
    p.add_argument("--run-dir", help="output folder: state.pt, best.pt, final.pt, metrics.jsonl, train.log")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    p.add_argument("--config", metavar="FILE", help="YAML or TOML file of settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config field, e.g. --set crop=[352,480] (repeatable; wins over everything)")
    p.add_argument("--device", choices=DEVICES)
    p.add_argument("--precision", choices=TRAINING_PRECISIONS)
    p.add_argument("--workers", type=int, help="data-loading processes (0 = in the main process)")
    p.add_argument("--threads", type=int, help="torch CPU threads (0 = default)")
    p.add_argument("--val-every", type=int, help="validate every N iterations (0 = only at the end)")
    p.add_argument("--val-limit", type=int, help="validate on the first N images only (0 = all)")
    p.add_argument("--checkpoint-every", type=int, help="write state.pt every N iterations")
    p.add_argument("--log-every", type=int, help="metrics.jsonl train record every N iterations")
    p.add_argument("--precise-bn", type=int, metavar="BATCHES", help="recompute BN statistics at the end (0 = off)")
    p.add_argument("--seed", type=int)
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def _flag_values(args: argparse.Namespace) -> dict[str, Any]:
    return {field: getattr(args, dest) for dest, field in _FLAG_FIELDS.items() if getattr(args, dest, None) is not None}


def resolve_train_config(args: argparse.Namespace):  # noqa: ANN201 - TrainConfig, imported lazily
    """The run's :class:`TrainConfig` from the parsed arguments, and whether it resumes."""
    from deconv_gui.training.config import build_config, parse_set_items, read_config_file
    from deconv_gui.training.engine import resume_config

    overrides = {**_flag_values(args), **parse_set_items(args.set)}
    if args.resume:
        if args.config:
            raise DeconvGuiError("--config cannot be combined with --resume (the run keeps its own config)")
        if "run_dir" in overrides and overrides["run_dir"] != args.resume:
            raise DeconvGuiError("--run-dir differs from --resume; resume continues in its own folder")
        overrides.pop("run_dir", None)
        return resume_config(args.resume, overrides), True
    file_values = read_config_file(args.config) if args.config else {}
    return build_config(file_values, overrides, source=args.config or "config file"), False


def cmd_train(args: argparse.Namespace, instance_labeler: Any = None) -> int:
    """Run ``deconv-gui train``; exit status 0 when finished or stopped cleanly by a signal.

    ``instance_labeler`` (an ``evaluation.InstanceLabelerFactory``) enables ``val_mode = instances``; the
    ``deconv-gui`` CLI passes one built on ``inference.pipeline.Segmenter``.
    """
    import logging

    from deconv_gui.training.config import config_yaml
    from deconv_gui.training.engine import run_training

    # The run's progress lines ("loading the dataset…", "iteration 1000: val mIoU …") go to the console (the
    # app's training panel shows them); the CLI's other loggers stay at warnings.
    logging.getLogger("deconv_gui.training").setLevel(logging.INFO)
    cfg, resume = resolve_train_config(args)
    if args.print_config:
        cfg.check()
        print(config_yaml(cfg), end="")
        return 0
    result = run_training(cfg, resume=resume, instance_labeler=instance_labeler)
    if not result.is_main:
        return 0
    if result.status == "finished":
        best = "" if result.best_miou != result.best_miou else f", best val mIoU {result.best_miou:.4f}"
        print(f"finished {result.iteration} iterations{best}; weights in {result.final_path}")
    else:
        print(f"stopped at iteration {result.iteration}; continue with: deconv-gui train --resume {result.run_dir}")
    return 0
