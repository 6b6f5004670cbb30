"""Training samples as torch Datasets: DeconvNet's stage-1 and stage-2 windows, whole-image crops, val images.

Every item is ``(image, label)``: ``image`` ``(3, h, w) torch.uint8`` RGB (not normalised), ``label``
``(h, w) torch.int64`` class ids with 255 = ignore. Items are deterministic in ``(seed, epoch, index)``: each
draws its randomness from ``np.random.default_rng([seed, epoch, index])``, so a resumed or distributed run sees
exactly the same samples whatever the worker or rank that builds them. Call ``set_epoch(e)`` before iterating
an epoch (before creating the DataLoader iterator: forked workers copy the dataset, epoch included).

Windows (stage 1 and 2) follow the inference crops: the box is rounded to integer pixels
(:func:`deconv_gui.core.boxes.integer_box`) and resampled to ``resize × resize`` without keeping its aspect
ratio (image bilinear, label nearest); outside the image the image is 0 and the label 255. Then a random
``crop × crop`` window and a random horizontal flip.

``min_window`` (0 = off, the paper's rule) grows any window side shorter than that many pixels about its centre.
On VOC the instances are large; on CamVid most are thin poles and distant signs a few pixels wide, whose ×1.2
boxes stretched to 250² become streaked textures unlike anything inference sees (inference skips proposals
shorter than 112 px). Measured on CamVid: stage 1 without a minimum took the whole-image model's instance-wise
val mIoU from 33.5 to 4.3 in 500 iterations; the CamVid configs set ``min_window: 112``, inference's minimum.

Stage-1 labels: only the chosen instance keeps its class. The other pixels are "background":

- datasets with a class named ``background`` (VOC, folder datasets, synthetic scenes): every other pixel that is
  not void becomes that class, other objects of any class included — the paper's rule;
- datasets without one (CamVid): there is no class that means "not this object", and calling other pixels
  class 0 (CamVid's Sky) would teach wrong labels. There, pixels of *non-thing* (stuff) classes keep their own
  label (they are the scene's background: road, sky, building), and pixels of other thing instances — other
  cars, the same class's small fragments, other object classes — become 255 (ignored). The window still
  teaches "this object vs its surroundings" and never names another object.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import torch
from tqdm import tqdm

from deconv_gui.core.boxes import box_iou, enlarge_boxes, integer_box
from deconv_gui.core.errors import DatasetError
from deconv_gui.core.palette import VOID
from deconv_gui.core.vocabulary import is_background
from deconv_gui.proposals.crops import crop_and_resize, crop_matrix
from deconv_gui.training.datasets import SegmentationDataset
from deconv_gui.training.proposal_cache import ProposalCache

log = logging.getLogger(__name__)

__all__ = ["EvalImages", "Stage1Crops", "Stage2Crops", "WholeImageSamples", "warp_window"]


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one item: ``default_rng([seed, epoch, index])``."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def warp_window(image: np.ndarray, label: np.ndarray, box: np.ndarray, size: int, fill: str = "zeros"
                ) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``box`` (rounded to integer pixels) of ``image``/``label`` to ``size × size``.

    ``image``: ``(H, W, 3) uint8``; ``label``: ``(H, W) uint8``. Returns ``(size, size, 3) uint8`` (bilinear;
    outside the image 0, or the border pixels repeated with ``fill="edge"``: exactly the inference crop of
    :func:`deconv_gui.proposals.crops.crop_and_resize`) and ``(size, size) uint8`` (nearest, 255 outside).
    """
    box = np.array(integer_box(np.asarray(box, np.float64)))
    img = crop_and_resize(image, box, size, fill)
    lab = cv2.warpAffine(label, crop_matrix(box, size), (size, size), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=VOID)
    return img, lab


def _random_crop_flip(
    rng: np.random.Generator, image: np.ndarray, label: np.ndarray, crop: tuple[int, int], flip: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Random ``crop`` (h, w) window (image at least that large) then a horizontal flip with probability 1/2.

    Always draws three numbers (y, x, flip) so the stream does not depend on the sizes.
    """
    h, w = label.shape
    ch, cw = crop
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    do_flip = bool(rng.random() < 0.5) and flip
    image = image[y:y + ch, x:x + cw]
    label = label[y:y + ch, x:x + cw]
    if do_flip:
        image = image[:, ::-1]
        label = label[:, ::-1]
    return image, label


def _to_tensors(image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h, w, 3) uint8`` + ``(h, w) uint8`` → ``(3, h, w) torch.uint8`` + ``(h, w) torch.int64``."""
    img = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    lab = torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))
    return img, lab


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    h, w = value
    return int(h), int(w)


class _EpochSamples(torch.utils.data.Dataset):
    """Base: holds the dataset, the seed and the current epoch."""

    def __init__(self, ds: SegmentationDataset, seed: int) -> None:
        self.ds = ds
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose samples ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def _check(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        return int(index)

    def __len__(self) -> int:  # pragma: no cover - every subclass defines it
        raise NotImplementedError


def photometric_jitter(rng: np.random.Generator, image: np.ndarray, strength: float) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB with random brightness, contrast, gamma, saturation, hue and blur, each up to
    ``strength`` (0..1) of its full range: brightness ±25 %, contrast ×(1 ± 0.3), gamma e^(±0.4), saturation
    ×(1 ± 0.4), hue ±12°, and with probability ``0.4·strength`` a Gaussian blur of σ up to 1.5 px. Road scenes
    at dusk, in other cameras and weather look like that; labels are unchanged."""
    if strength <= 0:
        return image
    s = float(strength)
    x = image.astype(np.float32) / 255.0
    x = x * float(rng.uniform(1 - 0.3 * s, 1 + 0.3 * s))  # contrast about black, then brightness
    x = x + float(rng.uniform(-0.25 * s, 0.25 * s)) * float(x.mean())
    x = np.clip(x, 0.0, 1.0) ** float(np.exp(rng.uniform(-0.4 * s, 0.4 * s)))
    hsv = cv2.cvtColor(x.astype(np.float32), cv2.COLOR_RGB2HSV)  # H in degrees 0..360, S and V in 0..1
    hsv[..., 0] = (hsv[..., 0] + float(rng.uniform(-12 * s, 12 * s))) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * float(rng.uniform(1 - 0.4 * s, 1 + 0.4 * s)), 0.0, 1.0)
    x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if rng.random() < 0.4 * s:
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.3, 1.5)))
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


class WholeImageSamples(_EpochSamples):
    """Whole-image training samples: random scale → optional rotation → pad → random crop → flip, then
    :func:`photometric_jitter` of the crop when ``photometric`` > 0.

    ``crop``: ``(h, w)`` (or one int) output size; images smaller than that after scaling are padded at the
    bottom/right with image 0 and label 255. ``scale``: uniform range of the resize factor. ``rotate``: maximum
    rotation in degrees (uniform in ``±rotate`` about the centre, image bilinear with 0 outside, label nearest
    with 255 outside); 0 = no rotation.
    """

    def __init__(self, ds: SegmentationDataset, *, crop: int | tuple[int, int] = (352, 480),
                 scale: tuple[float, float] = (0.5, 2.0), rotate: float = 0.0, flip: bool = True,
                 photometric: float = 0.0, seed: int = 0) -> None:
        super().__init__(ds, seed)
        self.crop = _pair(crop)
        self.scale = (float(scale[0]), float(scale[1]))
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale range must satisfy 0 < low <= high, got {scale}")
        self.rotate = float(rotate)
        self.flip = bool(flip)
        self.photometric = float(photometric)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self._check(index)
        item = self.ds[index]
        rng = item_rng(self.seed, self.epoch, index)
        image, label = item.image, item.label
        h, w = label.shape
        s = float(rng.uniform(*self.scale))
        size = (max(1, round(w * s)), max(1, round(h * s)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
        if self.rotate > 0:
            angle = float(rng.uniform(-self.rotate, self.rotate))
            matrix = cv2.getRotationMatrix2D(((size[0] - 1) / 2.0, (size[1] - 1) / 2.0), angle, 1.0)
            image = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            label = cv2.warpAffine(label, matrix, size, flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=VOID)
        ch, cw = self.crop
        pad_h, pad_w = max(ch - label.shape[0], 0), max(cw - label.shape[1], 0)
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=0)
            label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=VOID)
        image, label = _random_crop_flip(rng, image, label, self.crop, self.flip)
        if self.photometric > 0:
            image = photometric_jitter(rng, image, self.photometric)
        return _to_tensors(image, label)


class EvalImages(_EpochSamples):
    """Whole images without augmentation, for validation (sizes may differ between items: batch 1).

    ``limit``: use only the first ``limit`` images.
    """

    def __init__(self, ds: SegmentationDataset, *, limit: int | None = None) -> None:
        super().__init__(ds, 0)
        self.limit = None if limit is None or limit <= 0 else int(limit)

    def __len__(self) -> int:
        return len(self.ds) if self.limit is None else min(len(self.ds), self.limit)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.ds[self._check(index)]
        return _to_tensors(item.image, item.label)


def background_class(class_names: list[str]) -> int | None:
    """Index of the class named background (:func:`~deconv_gui.core.vocabulary.is_background`), or ``None``."""
    for k, name in enumerate(class_names):
        if is_background(name):
            return k
    return None


def stage1_label(label: np.ndarray, mask: np.ndarray, class_id: int, thing_classes: tuple[int, ...],
                 background: int | None) -> np.ndarray:
    """``(H, W) uint8`` stage-1 label: ``class_id`` on ``mask``, the rest as in the module docstring."""
    if background is not None:
        out = np.where(label == VOID, VOID, background).astype(np.uint8)
    else:
        is_thing = np.zeros(256, bool)
        is_thing[list(thing_classes)] = True
        out = np.where(is_thing[label], VOID, label).astype(np.uint8)
    out[mask] = class_id
    return out


class Stage1Crops(_EpochSamples):
    """DeconvNet stage 1: one item per ground-truth instance, its tight box ×``context`` about the centre (each
    side at least ``min_window``).

    The index is built once here from the labels (a tqdm bar over the images): for each instance its image,
    class, box and mask (kept cropped to the box, so items need no connected-component pass; CamVid train's
    7560 instances take ~40 MB). Attributes: ``index`` ``(N, 2) int64`` (image, instance within the image),
    ``classes`` ``(N,) int64``, ``boxes`` ``(N, 4) float64``.
    """

    def __init__(self, ds: SegmentationDataset, *, resize: int = 250, crop: int = 224, context: float = 1.2,
                 min_window: float = 0.0, flip: bool = True, seed: int = 0, progress: bool = True,
                 fill: str = "zeros") -> None:
        super().__init__(ds, seed)
        self.fill = fill
        if crop > resize:
            raise ValueError(f"crop {crop} must not exceed resize {resize}")
        self.resize, self.crop, self.context, self.flip = int(resize), int(crop), float(context), bool(flip)
        self.min_window = float(min_window)
        self.background = background_class(ds.class_names)
        index: list[tuple[int, int]] = []
        classes: list[int] = []
        boxes: list[np.ndarray] = []
        self._masks: list[np.ndarray] = []
        for i in tqdm(range(len(ds)), desc="stage-1 instances", unit="img", disable=not progress or None):
            for k, inst in enumerate(ds.instances(i)):
                x0, y0, x1, y1 = (int(v) for v in inst.box)
                index.append((i, k))
                classes.append(inst.class_id)
                boxes.append(inst.box)
                self._masks.append(inst.mask[y0:y1, x0:x1].copy())
        if not index:
            raise DatasetError(f"no object instances in the '{ds.split}' split (thing classes "
                               f"{[ds.class_names[c] for c in ds.thing_classes]})", ds.root)
        self.index = np.asarray(index, np.int64).reshape(-1, 2)
        self.classes = np.asarray(classes, np.int64)
        self.boxes = np.asarray(boxes, np.float64).reshape(-1, 4)

    def __len__(self) -> int:
        return len(self.index)

    def window(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The un-augmented ``resize × resize`` window of sample ``index``: image ``(S, S, 3) uint8``, label
        ``(S, S) uint8``."""
        n = self._check(index)
        image, label = _image_and_label(self.ds, int(self.index[n, 0]))
        box = self.boxes[n]
        x0, y0, x1, y1 = (int(v) for v in box)
        mask = np.zeros(label.shape, bool)
        mask[y0:y1, x0:x1] = self._masks[n]
        label = stage1_label(label, mask, int(self.classes[n]), self.ds.thing_classes, self.background)
        return warp_window(image, label, enlarge_boxes(box[None], self.context, self.min_window)[0], self.resize,
                           self.fill)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.window(index)
        rng = item_rng(self.seed, self.epoch, index)
        return _to_tensors(*_random_crop_flip(rng, image, label, (self.crop, self.crop), self.flip))


def _image_and_label(ds: SegmentationDataset, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``i`` and its label, checked to have the same size (without computing instances)."""
    image, label = ds.image(i), ds.label(i)
    if image.shape[:2] != label.shape:
        ds[i]  # raises the size-mismatch DatasetError
    return image, label


class Stage2Crops(_EpochSamples):
    """DeconvNet stage 2: Edge Box windows that overlap ground truth, all classes labelled, rare classes oversampled.

    Windows: every cached proposal (raw box) of a training image whose best IoU with one of the image's instance
    boxes is ``>= iou_threshold``, enlarged ×``context`` (each side at least ``min_window``). A class is *present* in a window when it covers at
    least ``min_class_fraction`` of the window's in-image pixels.

    Balancing (``balance=True``): each class's frequency ``f_c`` is the fraction of windows it is present in;
    a window's weight is ``1 / f_r`` for its rarest present class ``r`` (weight 1 with no class present). Each
    epoch draws ``samples_per_epoch`` windows (default: the number of windows) with replacement from those
    weights, deterministically per ``(seed, epoch)``. Without balancing the epoch is every window once, in order
    (or a deterministic draw when ``samples_per_epoch`` differs).
    """

    def __init__(self, ds: SegmentationDataset, proposals: ProposalCache, *, iou_threshold: float = 0.5,
                 context: float = 1.2, min_window: float = 0.0, resize: int = 250, crop: int = 224,
                 flip: bool = True, balance: bool = True, samples_per_epoch: int | None = None, seed: int = 0,
                 min_class_fraction: float = 0.01, progress: bool = True, fill: str = "zeros") -> None:
        super().__init__(ds, seed)
        self.fill = fill
        if crop > resize:
            raise ValueError(f"crop {crop} must not exceed resize {resize}")
        self.resize, self.crop, self.context, self.flip = int(resize), int(crop), float(context), bool(flip)
        self.iou_threshold = float(iou_threshold)
        self.balance = bool(balance)
        windows, owners, present = [], [], []
        for i in tqdm(range(len(ds)), desc="stage-2 windows", unit="img", disable=not progress or None):
            gt, _ = ds.instance_boxes(i)
            raw = proposals.boxes(i, ds)
            if len(gt) == 0 or len(raw) == 0:
                continue
            keep = box_iou(raw, gt).max(axis=1) >= self.iou_threshold
            if not keep.any():
                continue
            boxes = np.array([integer_box(b) for b in enlarge_boxes(raw[keep], self.context, min_window)],
                             np.float64)
            windows.append(boxes)
            owners.append(np.full(len(boxes), i, np.int64))
            present.append(_classes_present(ds.label(i), boxes, ds.num_classes, min_class_fraction))
        if not windows:
            raise DatasetError(f"no Edge Box proposal overlaps a ground-truth instance with IoU >= "
                               f"{self.iou_threshold} in the '{ds.split}' split", ds.root)
        self.windows = np.concatenate(windows)
        self.window_image = np.concatenate(owners)
        self.window_classes = np.concatenate(present)
        self.weights = _balance_weights(self.window_classes) if self.balance else np.ones(len(self.windows))
        self.samples_per_epoch = len(self.windows) if samples_per_epoch is None else int(samples_per_epoch)
        if self.samples_per_epoch <= 0:
            raise ValueError(f"samples_per_epoch must be positive, got {samples_per_epoch}")
        self.order = self._draw(0)
        log.info("stage 2: %d windows from %d images", len(self.windows), len(ds))

    def _draw(self, epoch: int) -> np.ndarray:
        """``(samples_per_epoch,) int64`` window indices of ``epoch``."""
        n, m = self.samples_per_epoch, len(self.windows)
        if not self.balance and n == m:
            return np.arange(m, dtype=np.int64)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(epoch)], spawn_key=(1,)))
        if not self.balance:
            return rng.choice(m, size=n, replace=n > m).astype(np.int64)
        return rng.choice(m, size=n, replace=True, p=self.weights / self.weights.sum()).astype(np.int64)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.order = self._draw(self.epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def window(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The un-augmented ``resize × resize`` window of sample ``index`` in the current epoch."""
        j = int(self.order[self._check(index)])
        image, label = _image_and_label(self.ds, int(self.window_image[j]))
        return warp_window(image, label, self.windows[j], self.resize, self.fill)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.window(index)
        rng = item_rng(self.seed, self.epoch, index)
        return _to_tensors(*_random_crop_flip(rng, image, label, (self.crop, self.crop), self.flip))


def _classes_present(label: np.ndarray, boxes: np.ndarray, num_classes: int, min_fraction: float) -> np.ndarray:
    """``(N, C) bool``: class ``c`` covers ``>= min_fraction`` of box ``n``'s in-image pixels (``boxes`` integer)."""
    h, w = label.shape
    x0 = np.clip(boxes[:, 0], 0, w).astype(np.int64)
    y0 = np.clip(boxes[:, 1], 0, h).astype(np.int64)
    x1 = np.clip(boxes[:, 2], 0, w).astype(np.int64)
    y1 = np.clip(boxes[:, 3], 0, h).astype(np.int64)
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    out = np.zeros((len(boxes), num_classes), bool)
    for c in np.unique(label):
        if c >= num_classes:
            continue
        integral = cv2.integral((label == c).astype(np.uint8))  # (H + 1, W + 1) int32
        counts = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        out[:, c] = counts >= np.maximum(min_fraction * area, 1)
    return out


def _balance_weights(present: np.ndarray) -> np.ndarray:
    """``(N,) float64`` window weights: ``1 / f_r`` for the rarest present class ``r`` (see :class:`Stage2Crops`)."""
    freq = present.mean(axis=0)  # (C,) fraction of windows each class is present in
    inv = np.where(freq > 0, 1.0 / np.maximum(freq, 1e-12), 0.0)
    weights = (present * inv[None, :]).max(axis=1)
    return np.where(weights > 0, weights, 1.0)
