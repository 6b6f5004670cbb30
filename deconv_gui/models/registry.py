"""The model zoo by name: builders, which models serve which inference mode, and loading from checkpoints.

Every builder has the signature ``builder(*, num_classes: int, width: float = 1.0, pretrained_backbone: bool =
False) -> nn.Module`` and every model's ``forward((B, 3, H, W) float)`` returns ``{"out": (B, C, H, W)}`` raw
class scores (plus ``"aux"`` for PSPNet in training mode).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

import torch
from torch import Tensor, nn

from deconv_gui.core.errors import CheckpointError
from deconv_gui.io.checkpoints import ModelMeta, load_checkpoint
from deconv_gui.models.deconvnet import MIN_INPUT_SIZE as DECONVNET_MIN_INPUT
from deconv_gui.models.deconvnet import deconvnet
from deconv_gui.models.fcn import fcn8s
from deconv_gui.models.torchvision_seg import TORCHVISION_BUILDERS


def _imported_when_built(name: str) -> Callable[..., nn.Module]:
    """The builder ``deconv_gui.models.<name>.<name>``, its module imported on the first call (PSPNet and
    LinkNet: their torchvision ResNet takes ~1.2 s to import, which DeconvNet and FCN-8s never pay)."""

    def build(**kwargs: object) -> nn.Module:
        builder: Callable[..., nn.Module] = getattr(importlib.import_module(f"deconv_gui.models.{name}"), name)
        return builder(**kwargs)

    build.__name__ = build.__qualname__ = name
    return build


MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "deconvnet": deconvnet,
    "fcn8s": fcn8s,
    "pspnet": _imported_when_built("pspnet"),
    "linknet": _imported_when_built("linknet"),
}
#: Models that can segment a whole image in one pass (DeconvNet can too, besides per-instance crops).
WHOLE_IMAGE_MODELS: tuple[str, ...] = ("deconvnet", "fcn8s", "pspnet", "linknet")
#: Models meant for the instance-wise (proposal crop) procedure.
INSTANCE_MODELS: tuple[str, ...] = ("deconvnet",)
_INPUT_MULTIPLE = 32
_MAX_MISMATCHES_SHOWN = 3


def _builder(name: str) -> Callable[..., nn.Module]:
    """The builder of ``name``: the zoo's, or a load-only torchvision segmentation model's."""
    try:
        return MODEL_BUILDERS[name] if name in MODEL_BUILDERS else TORCHVISION_BUILDERS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; valid names: {', '.join(MODEL_BUILDERS)}") from None


#: Architectures whose VGG16 encoder and fc6/fc7 can be scaled apart from ``width``.
SPLIT_WIDTH_MODELS: tuple[str, ...] = ("deconvnet", "fcn8s")


def build_model(
    name: str, *, num_classes: int, width: float = 1.0, pretrained_backbone: bool = False,
    encoder_width: float | None = None, fc_width: float | None = None, **options: object,
) -> nn.Module:
    """Build architecture ``name`` (a key of :data:`MODEL_BUILDERS`); KeyError listing the valid names otherwise.

    ``encoder_width`` / ``fc_width`` apply to :data:`SPLIT_WIDTH_MODELS` only (ValueError for the others);
    ``options`` go to the builder as they are (e.g. ``geometry="caffe"`` for fcn8s).
    """
    builder = _builder(name)
    extra: dict[str, object] = dict(options)
    if encoder_width is not None or fc_width is not None:
        if name not in SPLIT_WIDTH_MODELS:
            raise ValueError(f"{name} has one width; encoder_width/fc_width are for {', '.join(SPLIT_WIDTH_MODELS)}")
        extra.update(encoder_width=encoder_width, fc_width=fc_width)
    return builder(num_classes=num_classes, width=width, pretrained_backbone=pretrained_backbone, **extra)


def input_multiple(name: str) -> int:
    """Whole images fed to model ``name`` should have sides that are multiples of this (pad, then crop back)."""
    _builder(name)
    return _INPUT_MULTIPLE


def whole_image_size(name: str, height: int, width: int, geometry: str = "aligned") -> tuple[int, int]:
    """The ``(H, W)`` to zero-pad a ``height × width`` whole image to (bottom/right) before model ``name``: the
    next multiple of :func:`input_multiple`, and at least 224 for DeconvNet, whose fc6 needs a 7×7 map.
    ``geometry="caffe"`` (imported FCN-8s) and torchvision's models take any size as the originals did: no
    padding."""
    if geometry == "caffe" or name in TORCHVISION_BUILDERS:
        return height, width
    multiple = input_multiple(name)
    min_side = DECONVNET_MIN_INPUT if name == "deconvnet" else multiple
    return max(-(-height // multiple) * multiple, min_side), max(-(-width // multiple) * multiple, min_side)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(H, W)`` of a ``height × width`` image resized by ``scale`` for a whole-image pass (≥ 1 px a side)."""
    if scale == 1.0:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def whole_image_forward(forward: Callable[[Tensor], Tensor], images: Tensor, name: str, *,
                        geometry: str = "aligned", scale: float = 1.0) -> Tensor:
    """Raw scores ``(B, C, H, W)`` for uint8 ``images`` ``(B, 3, H, W)`` through ``forward`` (uint8
    ``(B, 3, h, w)`` → scores ``(B, C, h, w)``): resized by ``scale`` (bilinear, antialiased) when ≠ 1,
    zero-padded at the bottom/right to :func:`whole_image_size`, cropped back, and the scores resized back to
    ``(H, W)`` (bilinear). The one whole-image pass of training's validation and the runner."""
    functional = torch.nn.functional
    h, w = images.shape[-2:]
    sh, sw = scaled_size(h, w, scale)
    if (sh, sw) != (h, w):
        resized = functional.interpolate(images.float(), size=(sh, sw), mode="bilinear", antialias=True,
                                align_corners=False)
        images = resized.round_().clamp_(0, 255).to(torch.uint8)
    ph, pw = whole_image_size(name, sh, sw, geometry)
    if (ph, pw) != (sh, sw):
        images = functional.pad(images, (0, pw - sw, 0, ph - sh))
    scores = forward(images)[..., :sh, :sw]
    if (sh, sw) != (h, w):
        scores = functional.interpolate(scores.float(), size=(h, w), mode="bilinear", align_corners=False)
    return scores


def _state_mismatches(model: nn.Module, state_dict: dict[str, Tensor]) -> list[str]:
    """Human-readable differences between the model's expected state and ``state_dict`` (missing, extra, shape)."""
    expected = model.state_dict()
    found = [f"missing {k}" for k in expected if k not in state_dict]
    found += [f"unexpected {k}" for k in state_dict if k not in expected]
    found += [
        f"{k} has shape {tuple(v.shape)}, model wants {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    return found


def model_from_checkpoint(
    path: str | os.PathLike[str],
    *,
    expect_architecture: str | None = None,
    expect_classes: list[str] | None = None,
) -> tuple[nn.Module, ModelMeta]:
    """The model stored in ``path``, weights loaded strictly, in eval mode on the CPU, and its metadata.

    Raises :class:`~deconv_gui.core.errors.CheckpointError` (naming the file) when the file is unusable, when
    its weights do not fit the architecture it names (the first few mismatching keys/shapes are listed), or
    when it does not hold ``expect_architecture`` / exactly ``expect_classes`` in that order.
    """
    state_dict, meta = load_checkpoint(path)
    if expect_architecture is not None and meta.architecture != expect_architecture:
        raise CheckpointError(f"architecture is {meta.architecture}, expected {expect_architecture}", path)
    if expect_classes is not None and list(expect_classes) != meta.class_names:
        raise CheckpointError(
            f"classes differ: the file has {len(meta.class_names)} ({', '.join(meta.class_names)}), "
            f"expected {len(expect_classes)} ({', '.join(expect_classes)})",
            path,
        )
    # Build on the meta device (no memory, no init work: full DeconvNet would spend seconds on random init
    # only to overwrite it), then adopt the loaded tensors.
    extra = {"geometry": meta.geometry} if meta.geometry != "aligned" else {}
    if meta.fc_padding != "valid":
        extra["fc_padding"] = meta.fc_padding
    try:
        with torch.device("meta"):
            model = build_model(meta.architecture, num_classes=meta.num_classes, width=meta.width,
                                encoder_width=meta.encoder_width, fc_width=meta.fc_width, **extra)
    except KeyError:
        raise CheckpointError(f"unknown architecture {meta.architecture!r}", path) from None
    except ValueError as err:
        raise CheckpointError(str(err), path) from None
    mismatches = _state_mismatches(model, state_dict)
    if mismatches:
        shown = "; ".join(mismatches[:_MAX_MISMATCHES_SHOWN])
        more = (
            f" (and {len(mismatches) - _MAX_MISMATCHES_SHOWN} more)"
            if len(mismatches) > _MAX_MISMATCHES_SHOWN
            else ""
        )
        raise CheckpointError(
            f"weights do not fit {meta.architecture} (width {meta.width}, {meta.num_classes} classes): {shown}{more}",
            path,
        )
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.eval(), meta
