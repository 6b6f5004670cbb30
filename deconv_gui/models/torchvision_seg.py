"""torchvision's segmentation models from a local state-dict file, as whole-image models and ensemble partners.

``import_torchvision(path, out)`` reads a state dict as torchvision saves it (e.g. the torch hub cache's
``fcn_resnet50_coco-1167a1af.pth``: the ``COCO_WITH_VOC_LABELS_V1`` weights, 21 VOC classes), recognises which
of :data:`TORCHVISION_BUILDERS` it is by building each on the meta device and comparing every key and shape,
and writes an ordinary checkpoint (VOC class names and bitget palette for 21 classes, ImageNet RGB mean/std).
Nothing is downloaded; the ``aux_classifier`` (a training-time head) is dropped.

The models are torchvision's own classes (their ``forward`` returns ``{"out": (B, C, H, W)}`` at the input
size, any size), so their outputs equal torchvision's on the same normalised input; ``width`` must be 1.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from deconv_gui.core.errors import CheckpointError
from deconv_gui.core.palette import VOC_CLASSES, voc_palette
from deconv_gui.io.checkpoints import IMPORTED_ARCHITECTURES, ModelMeta, save_checkpoint
from deconv_gui.io.files import require_readable_file

#: torchvision.models.segmentation's builders by name (looked up when called: importing torchvision takes ~1.2 s).
_TV_FUNCS: tuple[str, ...] = (
    "fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
)
assert _TV_FUNCS == IMPORTED_ARCHITECTURES  # io's copy of the list must not drift
_SCORE_KEYS = ("classifier.4.weight", "classifier.low_classifier.weight")


def _tv_builder(name: str) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, width: float = 1.0, pretrained_backbone: bool = False) -> nn.Module:
        """torchvision's ``name`` with ``num_classes`` outputs, random init, no aux head (``width`` must be 1)."""
        if width != 1.0:
            raise ValueError(f"{name} exists at width 1 only, got {width}")
        from torchvision.models import segmentation

        return getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)

    build.__name__ = name
    return build


#: Builders with the zoo's signature for the torchvision segmentation models (load-only: not in training).
TORCHVISION_BUILDERS: dict[str, Callable[..., nn.Module]] = {name: _tv_builder(name) for name in _TV_FUNCS}


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    require_readable_file(path, "a torchvision weights file", CheckpointError)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError, ...
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise CheckpointError(f"not a readable torch weights file ({reason})", path) from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]  # torchvision's reference training scripts save {"model": ..., "optimizer": ...}
    if not isinstance(data, dict) or not data or not all(isinstance(v, Tensor) for v in data.values()):
        raise CheckpointError("not a torchvision state dict (expected a dict of tensors)", path)
    return {str(k): v for k, v in data.items() if not str(k).startswith("aux_classifier.")}


def _fits(model: nn.Module, state: dict[str, Tensor]) -> bool:
    expected = model.state_dict()
    return expected.keys() == state.keys() and all(expected[k].shape == v.shape for k, v in state.items())


def recognise(state: dict[str, Tensor], path: str | os.PathLike[str], arch: str = "auto") -> tuple[str, int]:
    """``(architecture, num_classes)`` of a torchvision segmentation state dict; CheckpointError otherwise."""
    score = next((state[k] for k in _SCORE_KEYS if k in state), None)
    if score is None:
        raise CheckpointError("not a torchvision segmentation state dict: no classifier.4 / "
                              "classifier.low_classifier layer (an ImageNet classification file?)", path)
    classes = int(score.shape[0])
    candidates = list(_TV_FUNCS) if arch == "auto" else [arch]
    if arch != "auto" and arch not in _TV_FUNCS:
        raise CheckpointError(f"unknown torchvision model {arch!r} (known: {', '.join(_TV_FUNCS)})", path)
    for name in candidates:
        with torch.device("meta"):
            model = TORCHVISION_BUILDERS[name](num_classes=classes)
        if _fits(model, state):
            return name, classes
    what = f"torchvision's {arch}" if arch != "auto" else f"any of {', '.join(_TV_FUNCS)}"
    raise CheckpointError(f"the weights do not fit {what} ({len(state)} tensors, {classes} classes)", path)


def import_torchvision(path: str | os.PathLike[str], out: str | os.PathLike[str], arch: str = "auto") -> str:
    """Convert the torchvision state dict at ``path`` to the checkpoint ``out`` (atomically; nothing written on
    failure); returns a one-line description of what was recognised."""
    path = Path(path)
    state = _read_state_dict(path)
    name, classes = recognise(state, path, arch)
    voc = classes == len(VOC_CLASSES)
    meta = ModelMeta(
        architecture=name, width=1.0, num_classes=classes,
        class_names=list(VOC_CLASSES) if voc else [f"class {i}" for i in range(classes)],
        palette=voc_palette()[:classes].tolist(), input_size=520,
        train_config={"imported_from": path.name, "source": "torchvision"},
    )
    params = sum(v.numel() for k, v in state.items() if v.is_floating_point() and "running_" not in k)
    meta.train_config["recognised"] = (f"torchvision {name}, {classes} classes{' (VOC)' if voc else ''}, "
                                       f"{params / 1e6:.1f}M parameters")
    save_checkpoint(out, state, meta)
    return meta.train_config["recognised"]
