"""Pieces a run is assembled from: device, datasets, the stage's sample generator, the model and its metadata.

Kept apart from the loop (``engine.py``) so each piece can be tested and reused (e.g. by ``bench/train.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.io.checkpoints import IMAGENET_MEAN, IMAGENET_STD, ModelMeta
from deconv_gui.models.registry import build_model
from deconv_gui.training.config import TrainConfig
from deconv_gui.training.datasets import (
    SegmentationDataset,
    class_frequencies,
    linknet_class_weights,
    sqrt_class_weights,
)

log = logging.getLogger(__name__)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeconvGuiError("CUDA was requested but no CUDA device is available; use --device cpu")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def autocast_factory(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A no-argument function returning the autocast context for ``precision`` (fp32: a null context)."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def use_channels_last(setting: str, device: torch.device) -> bool:
    """channels_last pays off with cuDNN tensor cores; on the CPU, training gains nothing measurable."""
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def proposal_cache_dir(cfg: TrainConfig, ds: SegmentationDataset) -> Path:
    """Where stage 2's Edge Box proposals of ``ds`` are cached (shared by later runs on the same data)."""
    base = Path(cfg.proposal_cache) if cfg.proposal_cache else Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "deconv_gui" / "proposals"
    key = hashlib.sha1(f"{Path(ds.root).resolve()}|{ds.format}|{ds.split}".encode()).hexdigest()[:12]
    return base / f"{Path(ds.root).name}_{ds.split}_{key}"


def train_samples(cfg: TrainConfig, ds: SegmentationDataset) -> Dataset:
    """The stage's torch Dataset of ``(uint8 (3,S,S), int64 (S,S))`` items, deterministic per (seed, epoch, index)."""
    from deconv_gui.training import samples

    if cfg.stage == "whole":
        return samples.WholeImageSamples(ds, crop=tuple(cfg.crop), scale=tuple(cfg.scale), rotate=cfg.rotate,
                                         flip=cfg.flip, photometric=cfg.photometric, seed=cfg.seed)
    if cfg.stage == "stage1":
        return samples.Stage1Crops(ds, resize=cfg.resize, crop=cfg.crop_size, context=cfg.context,
                                   min_window=cfg.min_window, flip=cfg.flip, seed=cfg.seed, fill=cfg.crop_fill)
    from deconv_gui.proposals.edge_boxes import EdgeBoxConfig
    from deconv_gui.training.proposal_cache import ProposalCache

    cache = ProposalCache(proposal_cache_dir(cfg, ds),
                          EdgeBoxConfig(top_n=cfg.proposal_top_n, min_side=cfg.proposal_min_side))
    return samples.Stage2Crops(ds, cache, iou_threshold=cfg.iou_threshold, context=cfg.context,
                               min_window=cfg.min_window, resize=cfg.resize,
                               crop=cfg.crop_size, flip=cfg.flip, balance=cfg.balance, seed=cfg.seed,
                               samples_per_epoch=cfg.stage2_samples_per_epoch or None, fill=cfg.crop_fill)


def class_weights(cfg: TrainConfig, ds: SegmentationDataset) -> torch.Tensor | None:
    """Class weights from the train split's pixel frequencies (LinkNet's ``1 / ln(1.02 + p_c)`` or
    ``sqrt(median / p_c)``), or None for ``class_weighting: none``."""
    if cfg.class_weighting == "none":
        return None
    rule = linknet_class_weights if cfg.class_weighting == "linknet" else sqrt_class_weights
    weights = rule(class_frequencies(ds, progress=True))
    log.info("class weights: %s", ", ".join(f"{n} {w:.2f}" for n, w in zip(ds.class_names, weights, strict=True)))
    return torch.as_tensor(weights, dtype=torch.float32)


def architecture_options(cfg: TrainConfig) -> dict[str, float | str | None]:
    """``encoder_width`` / ``fc_width`` (None where they equal ``width``) and, when not the paper's ``valid``,
    DeconvNet's ``fc_padding``: the shape options the builder and the metadata both take."""
    options: dict[str, float | str | None] = {"encoder_width": cfg.encoder_width or None,
                                              "fc_width": cfg.fc_width or None}
    if cfg.fc_padding != "valid":
        options["fc_padding"] = cfg.fc_padding
    return options


def make_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The architecture, initialised deterministically from ``cfg.seed`` (identical on every rank), its encoder
    from ``cfg.init_encoder`` when set, and the first ``cfg.freeze_encoder_stages`` stages frozen."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, num_classes=num_classes, width=cfg.width,
                        pretrained_backbone=cfg.pretrained_backbone, **architecture_options(cfg))
    if cfg.init_encoder:
        from deconv_gui.models.encoder_init import load_vgg16_encoder

        load_vgg16_encoder(model, cfg.init_encoder, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    if cfg.freeze_encoder_stages:
        from deconv_gui.models.encoder_init import freeze_encoder_stages

        freeze_encoder_stages(model, cfg.freeze_encoder_stages)
    return model


def model_meta(cfg: TrainConfig, ds: SegmentationDataset, metrics: dict, proposals: dict | None = None) -> ModelMeta:
    """Inference metadata for the run's exported weights (class names, palette, normalisation, config, and the
    Edge Box ``proposals`` settings it inherits from its ``--init`` checkpoint)."""
    input_size = 224 if cfg.arch == "deconvnet" else (cfg.crop_size if cfg.stage != "whole" else min(cfg.crop))
    return ModelMeta(
        architecture=cfg.arch, width=float(cfg.width), num_classes=len(ds.class_names),
        class_names=list(ds.class_names), palette=ds.palette.tolist(), mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD), input_size=int(input_size), whole_scale=float(cfg.whole_scale),
        crop_fill=cfg.crop_fill, proposals=dict(proposals or {}),
        train_config=cfg.to_dict(), metrics=metrics,
        **architecture_options(cfg),
    )
