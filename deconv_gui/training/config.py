"""One dataclass holds every number of a training run (nanoGPT style).

A config is built in layers, later ones winning::

    TrainConfig()  →  defaults_for(arch, stage)  →  --config FILE (YAML or TOML)  →  explicit flags  →  --set k=v

:func:`build_config` does exactly that. The resolved config is written to ``run_dir/config.yaml`` and stored
(as plain data) inside every checkpoint, so a run can be resumed and a shipped weights file says how it was made.

Units: ``iterations`` counts optimizer steps; one step sees ``batch_size × grad_accum × world_size`` samples
(the paper: 8 × 8 = 64 on one GPU). ``crop`` is ``(height, width)`` of whole-image training crops; ``crop_size``
and ``resize`` are the instance stages' 224-from-250 windows.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.core.vocabulary import (
    CROP_FILLS,
    DATASET_FORMATS,
    DEVICES,
    FC_PADDINGS,
    STAGES,
    TRAINING_PRECISIONS,
)
from deconv_gui.models.registry import MODEL_BUILDERS

try:  # Python ≥ 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10: YAML only
    tomllib = None  # type: ignore[assignment]

ARCHITECTURES = tuple(MODEL_BUILDERS)
FORMATS = DATASET_FORMATS
_CHOICES: dict[str, tuple[str, ...]] = {
    "format": FORMATS,
    "arch": ARCHITECTURES,
    "stage": STAGES,
    "optimizer": ("sgd", "rmsprop", "adam"),
    "schedule": ("step", "poly", "constant"),
    "class_weighting": ("none", "linknet", "sqrt"),
    "val_mode": ("whole", "instances"),
    "crop_fill": CROP_FILLS,
    "fc_padding": FC_PADDINGS,
    "device": DEVICES,
    "precision": TRAINING_PRECISIONS,
    "channels_last": ("auto", "on", "off"),
}
#: Fields a resumed run may change (they do not alter the maths of the steps already taken).
RESUMABLE_CHANGES = frozenset({
    "iterations", "checkpoint_every", "val_every", "val_limit", "workers", "threads", "device", "log_every",
    "fp16_export", "run_dir",
})


@dataclass
class TrainConfig:
    """Every setting of a training run; see the module docstring for units and how it is assembled."""

    # data
    data: str = ""
    format: str = "camvid"
    train_split: str = "train"
    val_split: str = "val"
    cache_images: bool = True
    # model
    arch: str = "deconvnet"
    width: float = 0.25
    stage: str = "whole"
    init: str = ""  # checkpoint to start from (stage 2 starts from stage 1's final.pt)
    pretrained_backbone: bool = False
    encoder_width: float = 0.0  # VGG16 models: the 13 encoder convs' width (0 = width)
    fc_width: float = 0.0  # VGG16 models: fc6/fc7's width (0 = width)
    fc_padding: str = "valid"  # DeconvNet's fc6: valid (the paper: a 224² crop → one code) or same (pool5's size)
    init_encoder: str = ""  # "hed", a torchvision vgg16/vgg16_bn file or a VGG16 checkpoint ("" = random)
    freeze_encoder_stages: int = 0  # the first N encoder stages (conv + BN) are not trained
    encoder_lr_scale: float = 1.0  # lr multiplier of the (unfrozen) encoder, e.g. 0.1 for a pretrained one
    # optimisation
    iterations: int = 20000
    batch_size: int = 8
    grad_accum: int = 1
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4  # never on biases nor BN parameters
    schedule: str = "step"
    step_size: int = 9000
    gamma: float = 0.1
    poly_power: float = 0.9
    warmup_iterations: int = 0
    class_weighting: str = "none"
    aux_weight: float = 0.4  # PSPNet's auxiliary head
    grad_clip: float = 0.0  # 0 = off
    # samples
    crop: tuple[int, int] = (352, 480)  # whole-image crop (H, W)
    scale: tuple[float, float] = (0.5, 2.0)
    crop_fill: str = "zeros"  # DeconvNet crops past the image: zeros (original) or edge (border pixels repeated)
    whole_scale: float = 1.0  # validation and the exported model's whole-image passes resize images by this
    rotate: float = 0.0  # ± degrees
    flip: bool = True
    photometric: float = 0.0  # whole-image samples: strength (0..1) of brightness/contrast/gamma/hue/blur jitter
    resize: int = 250  # instance stages: window resized to resize² then a random crop_size² crop
    crop_size: int = 224
    context: float = 1.2
    min_window: float = 0.0  # instance stages: windows grown to at least this many pixels a side (0 = paper)
    iou_threshold: float = 0.5  # stage 2: proposals with best IoU ≥ this against a GT box
    balance: bool = True  # stage 2: class-balanced oversampling
    stage2_samples_per_epoch: int = 0  # 0 = as many as there are windows
    proposal_top_n: int = 200
    proposal_min_side: float = 0.0
    proposal_cache: str = ""  # "" = ~/.cache/deconv_gui/proposals
    # evaluation and checkpoints
    val_every: int = 1000  # 0 = only at the end
    val_limit: int = 0  # 0 = the whole split
    val_mode: str = "whole"
    checkpoint_every: int = 500
    log_every: int = 10
    precise_bn_batches: int = 0  # 0 = off; the paper averaged ~500
    fp16_export: bool = False
    # runtime
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: str = "auto"  # auto = on CUDA only
    threads: int = 0  # 0 = torch's default
    sync_bn: bool = False
    run_dir: str = "runs/train"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (tuples as lists) for YAML and checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @property
    def samples_per_step(self) -> int:
        """Samples one optimizer step sees on one process."""
        return self.batch_size * self.grad_accum

    def check(self) -> None:
        """Raise DeconvGuiError for values that cannot work (names the field and the reason)."""
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise DeconvGuiError(f"{name} must be one of {', '.join(choices)}, not {getattr(self, name)!r}")
        positive = ("iterations", "batch_size", "grad_accum", "resize", "crop_size", "step_size", "log_every",
                    "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise DeconvGuiError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not 0 <= self.min_window < 10_000:
            raise DeconvGuiError(f"min_window must be ≥ 0 pixels, got {self.min_window}")
        if self.width <= 0 or self.lr <= 0 or not math.isfinite(self.lr):
            raise DeconvGuiError(f"width and lr must be > 0 (width {self.width}, lr {self.lr})")
        if min(self.crop) < 1 or self.crop_size > self.resize:
            raise DeconvGuiError(f"bad crop sizes: crop {self.crop}, crop_size {self.crop_size} > resize {self.resize}?")
        if self.arch == "deconvnet" and min(self.crop if self.stage == "whole" else (self.crop_size,)) < 224:
            raise DeconvGuiError("DeconvNet needs training crops of at least 224×224")
        if self.arch == "deconvnet" and self.batch_size < 2:
            raise DeconvGuiError("DeconvNet trains with batch_size ≥ 2 (its fc6/fc7 BatchNorm sees one value per "
                                 "channel per image at 224×224); use --grad-accum for a larger effective batch")
        if not 0 < self.whole_scale <= 4:
            raise DeconvGuiError(f"whole_scale must be in (0, 4], got {self.whole_scale}")
        if self.encoder_width < 0 or self.fc_width < 0 or not 0 < self.encoder_lr_scale <= 100:
            raise DeconvGuiError("encoder_width and fc_width must be ≥ 0 (0 = width) and encoder_lr_scale in (0, 100]")
        if (self.encoder_width or self.fc_width or self.init_encoder or self.freeze_encoder_stages) and \
                self.arch not in ("deconvnet", "fcn8s"):
            raise DeconvGuiError(f"encoder_width, fc_width, init_encoder and freeze_encoder_stages are for the VGG16 "
                                 f"models (deconvnet, fcn8s), not {self.arch}")
        if self.fc_padding != "valid" and self.arch != "deconvnet":
            raise DeconvGuiError(f"fc_padding is DeconvNet's fc6 (FCN-8s pads it already), not {self.arch}'s")
        if not 0 <= self.freeze_encoder_stages <= 5:
            raise DeconvGuiError(f"freeze_encoder_stages must be 0..5, got {self.freeze_encoder_stages}")
        if not 0 <= self.photometric <= 1:
            raise DeconvGuiError(f"photometric must be in [0, 1], got {self.photometric}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise DeconvGuiError(f"scale must be (low, high) with 0 < low ≤ high, got {self.scale}")
        if self.stage != "whole" and self.arch != "deconvnet":
            raise DeconvGuiError(f"stage {self.stage} (instance crops) is DeconvNet's; use --stage whole for {self.arch}")
        if not self.data:
            raise DeconvGuiError("no dataset: pass --data DIR")


def defaults_for(arch: str, stage: str) -> dict[str, Any]:
    """SPEC.md's settings for ``arch`` trained as ``stage`` (applied on top of :class:`TrainConfig`'s defaults)."""
    if arch not in ARCHITECTURES:
        raise DeconvGuiError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    if stage not in STAGES:
        raise DeconvGuiError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
    paper_sgd = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}
    if stage == "stage1":  # 20k iterations, ×0.1 every 9k, batch 64 = 8 × 8
        return {**paper_sgd, "arch": arch, "stage": stage, "iterations": 20000, "batch_size": 8, "grad_accum": 8,
                "schedule": "step", "step_size": 9000, "gamma": 0.1}
    if stage == "stage2":  # 40k iterations, ×0.1 every 10k
        return {**paper_sgd, "arch": arch, "stage": stage, "iterations": 40000, "batch_size": 8, "grad_accum": 8,
                "schedule": "step", "step_size": 10000, "gamma": 0.1}
    whole: dict[str, Any] = {"arch": arch, "stage": stage, "batch_size": 8, "grad_accum": 1, "schedule": "poly",
                             "poly_power": 0.9, "scale": (0.5, 2.0), "flip": True}
    if arch == "pspnet":
        return {**whole, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4, "rotate": 10.0,
                "aux_weight": 0.4}
    if arch == "linknet":
        return {**whole, "optimizer": "rmsprop", "lr": 5e-4, "momentum": 0.0, "weight_decay": 2e-4,
                "class_weighting": "linknet"}
    return {**whole, **paper_sgd}


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` (from YAML/TOML/flags) converted to field ``name``'s type; DeconvGuiError if impossible."""
    try:
        if str(hint).startswith("tuple"):
            if isinstance(value, str):
                value = yaml.safe_load(value if value.strip().startswith("[") else f"[{value}]")
            kind = float if "float" in str(hint) else int
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ValueError("expected two values")
            return tuple(kind(v) for v in value)
        if hint in ("bool", bool):
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if hint in ("int", int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected an integer")
            return int(value)
        if hint in ("float", float):
            return float(value)
        return "" if value is None else str(value)
    except (TypeError, ValueError, yaml.YAMLError) as err:
        raise DeconvGuiError(f"config value {name}={value!r} is invalid ({err})") from None


def _fields() -> dict[str, Any]:
    hints = get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def apply_values(cfg: TrainConfig, values: dict[str, Any], source: str) -> TrainConfig:
    """A copy of ``cfg`` with ``values`` (field → raw value) applied; unknown keys raise DeconvGuiError."""
    fields = _fields()
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise DeconvGuiError(f"unknown config key(s) {', '.join(unknown)} in {source}; valid: {', '.join(fields)}")
    return dataclasses.replace(cfg, **{k: _coerce(k, v, fields[k]) for k, v in values.items()})


def parse_set_items(items: list[str]) -> dict[str, Any]:
    """``["lr=0.001", "crop=[224, 224]"]`` → ``{"lr": 0.001, "crop": [224, 224]}`` (values parsed as YAML)."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise DeconvGuiError(f"--set expects key=value, got {item!r}")
        try:
            values[key.strip().replace("-", "_")] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            values[key.strip().replace("-", "_")] = raw
    return values


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.yaml``/``.yml`` or ``.toml`` file (a ``[train]`` table/key is unwrapped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DeconvGuiError(f"cannot read the config file ({err.strerror or err})", path) from None
    is_toml = path.suffix.lower() == ".toml"
    if is_toml and tomllib is None:
        raise DeconvGuiError("TOML config files need Python ≥ 3.11; use YAML", path)
    try:
        data = tomllib.loads(text) if is_toml else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:  # tomllib.TOMLDecodeError is a ValueError
        raise DeconvGuiError(f"not valid {'TOML' if is_toml else 'YAML'} ({err})", path) from None
    if data is None:
        return {}
    if isinstance(data, dict) and isinstance(data.get("train"), dict) and len(data) == 1:
        data = data["train"]
    if not isinstance(data, dict):
        raise DeconvGuiError("a config file must hold a mapping of key: value", path)
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(file_values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
                 *, source: str = "config file") -> TrainConfig:
    """Defaults → :func:`defaults_for` (arch and stage as finally chosen) → ``file_values`` → ``overrides``."""
    file_values = file_values or {}
    overrides = overrides or {}
    base = TrainConfig()
    arch = str(overrides.get("arch", file_values.get("arch", base.arch)))
    stage = str(overrides.get("stage", file_values.get("stage", base.stage)))
    cfg = apply_values(base, defaults_for(arch, stage), "defaults")
    cfg = apply_values(cfg, file_values, source)
    return apply_values(cfg, overrides, "the command line")


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """A config stored by :meth:`TrainConfig.to_dict` (unknown keys from newer versions are ignored)."""
    fields = _fields()
    return apply_values(TrainConfig(), {k: v for k, v in data.items() if k in fields}, "stored config")


def config_yaml(cfg: TrainConfig) -> str:
    """The config as YAML text (what ``run_dir/config.yaml`` holds)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
