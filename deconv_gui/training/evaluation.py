"""Validation during training: whole-image forward passes scored with a :class:`ConfusionMatrix`.

``val_mode = whole`` (default): every architecture is evaluated on whole images (DeconvNet too: it is fully
convolutional for sides that are multiples of 32 and ≥ 224). Images are padded with black at the bottom/right
like training crops and ``inference/runner.py`` and the scores cropped back. ``val_mode = instances`` scores DeconvNet's real
proposal-wise pipeline through an :data:`InstanceLabelerFactory` handed in from above (:func:`evaluate_labeler`). Under DDP each rank scores every ``world_size``-th image and the matrices are summed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from deconv_gui.core.metrics import ConfusionMatrix
from deconv_gui.io.checkpoints import ModelMeta
from deconv_gui.models.registry import whole_image_forward
from deconv_gui.training.datasets import SegmentationDataset
from deconv_gui.training.distributed import DistInfo, sum_tensor


class Normalizer:
    """uint8 RGB ``(B, 3, H, W)`` → normalised float32 on ``device`` (mean/std of the checkpoint meta, applied
    in its ``channel_order``: ``"bgr"`` flips the channels first, as Caffe weights expect)."""

    def __init__(self, mean: list[float], std: list[float], device: torch.device, channels_last: bool,
                 channel_order: str = "rgb") -> None:
        self.bgr = channel_order == "bgr"
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.device = device
        self.channels_last = channels_last

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True).float().div_(255.0)
        if self.bgr:
            x = x.flip(1)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def padded_forward(model: nn.Module, images: torch.Tensor, arch: str, normalize: Normalizer,
                   scale: float = 1.0) -> torch.Tensor:
    """Raw scores ``(B, C, H, W)`` for uint8 ``images`` ``(B, 3, H, W)``, padded at the bottom/right to the
    network's needs with black pixels *before* normalisation — as training crops and ``inference/runner.py``
    pad — and cropped back. ``scale`` ≠ 1 resizes the images first and the scores back (``meta.whole_scale``);
    see :func:`~deconv_gui.models.registry.whole_image_forward`."""
    return whole_image_forward(lambda x: model(normalize(x))["out"], images, arch, scale=scale)


@torch.no_grad()
def evaluate_whole(model: nn.Module, images: torch.utils.data.Dataset, *, arch: str, num_classes: int,
                   normalize: Normalizer, autocast, limit: int = 0,  # noqa: ANN001 - a context factory
                   dist_info: DistInfo | None = None, scale: float = 1.0) -> ConfusionMatrix:
    """Score ``model`` on ``images`` (items ``(uint8 (3,H,W), int64 (H,W))``, void 255) → confusion matrix.

    ``limit`` > 0 uses only the first ``limit`` images; ``scale`` is the whole-image resize factor. The model
    is left in eval mode; the caller restores training mode.
    """
    dist_info = dist_info or DistInfo()
    model.eval()
    n = len(images) if limit <= 0 else min(limit, len(images))
    cm = ConfusionMatrix(num_classes)
    for i in range(dist_info.rank, n, dist_info.world_size):
        image, label = images[i]
        with autocast():
            scores = padded_forward(model, image[None], arch, normalize, scale)
        pred = scores[0].float().argmax(0).cpu().numpy().astype(np.int64)
        cm.update(label.numpy(), pred)
    if dist_info.enabled:
        total = sum_tensor(torch.from_numpy(cm.mat.copy()).to(normalize.device), dist_info)
        cm.mat[...] = total.cpu().numpy()
    return cm


#: Builds, for the current weights, a function labelling one ``(H, W, 3) uint8`` image → ``(H, W)`` class ids.
#: Supplied by a layer above training (the CLI wires ``inference.pipeline.Segmenter`` in), since training may
#: not import inference.
InstanceLabelerFactory = Callable[[nn.Module, ModelMeta, torch.device], Callable[[np.ndarray], np.ndarray]]


def evaluate_labeler(label_image: Callable[[np.ndarray], np.ndarray], ds: SegmentationDataset, *,
                     num_classes: int, limit: int = 0, dist_info: DistInfo | None = None,
                     device: torch.device | None = None) -> ConfusionMatrix:
    """Score ``label_image`` (e.g. the instance-wise pipeline) on the images of ``ds`` → confusion matrix."""
    dist_info = dist_info or DistInfo()
    n = len(ds) if limit <= 0 else min(limit, len(ds))
    cm = ConfusionMatrix(num_classes)
    for i in range(dist_info.rank, n, dist_info.world_size):
        item = ds[i]
        cm.update(item.label, label_image(item.image))
    if dist_info.enabled:
        # NCCL reduces CUDA tensors only: sum on the training device.
        cm.mat[...] = sum_tensor(torch.from_numpy(cm.mat.copy()).to(device or "cpu"), dist_info).cpu().numpy()
    return cm


def val_record(cm: ConfusionMatrix, class_names: list[str]) -> dict:
    """``{"miou", "pixel_acc", "class_iou": {name: float | None}}`` (None where a class is absent)."""
    iou = cm.iou()
    miou = cm.mean_iou()
    return {
        "miou": None if math.isnan(miou) else float(miou),
        "pixel_acc": None if math.isnan(cm.pixel_accuracy()) else float(cm.pixel_accuracy()),
        "class_iou": {name: (None if math.isnan(v) else float(v)) for name, v in zip(class_names, iou, strict=True)},
    }
