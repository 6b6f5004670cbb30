"""Labelled segmentation datasets for training: PASCAL VOC 2012, CamVid (SegNet layout) and a plain folder.

Files are found by :func:`deconv_gui.io.dataset_files.find_dataset_files`; this module reads, validates and
describes them. One :class:`SegmentationDataset` is one split of one dataset. Items are
:class:`LabeledImage` (image, class label map, object instances).

Layouts (``root`` is the folder passed to :func:`open_dataset`):

- ``voc`` — ``JPEGImages/{id}.jpg``, ``SegmentationClass/{id}.png`` (palette PNG; the palette *index* is the
  class, 255 void), optional ``SegmentationObject/{id}.png`` (instance ids; 0 and 255 = no instance),
  ``ImageSets/Segmentation/{split}.txt``. A ``VOC2012/`` sub-folder is found too. 21 classes, bitget palette,
  things = classes 1..20.
- ``camvid`` — SegNet layout: ``{split}.txt`` (``image label`` pairs), ``{split}/``, ``{split}annot/``;
  single-channel labels 0..10, 11 = Unlabelled → void 255. Classes Sky, Building, Pole, Road, Pavement, Tree,
  SignSymbol, Fence, Car, Pedestrian, Bicyclist with the SegNet colours; things = Pole, Tree, SignSymbol, Fence,
  Car, Pedestrian, Bicyclist.
- ``folder`` — ``images/`` (any readable image), ``masks/{stem}.png`` (single-channel class indices, 255 void),
  ``classes.txt`` (required: one class name a line; line ``k`` names class ``k``), optional ``{split}.txt``
  (stems of the split; without it every image is in every split), optional ``instances/{stem}.png``
  (instance ids, as VOC's ``SegmentationObject``).

Every layout also reads, when present in ``root``:

- ``classes.txt`` — replaces the built-in class list of ``voc`` / ``camvid`` (for CamVid the value after the
  last class is void; see :mod:`deconv_gui.io.dataset_files`). The palette is CamVid's, the synthetic scenes',
  or the VOC bitget map, chosen by the class names.
- ``things.txt`` — the thing classes (names or integer ids, one a line). Default: CamVid's seven object classes
  for the built-in CamVid list, else every class except class 0 when class 0 is named "background", else all.

Instances: from the instance-id maps where the dataset has them, else the 8-connected components of each thing
class with at least ``min_instance_pixels`` pixels (:mod:`deconv_gui.training.instances`).

Errors a user can cause raise :class:`DatasetError` naming the file and the reason: missing root, split list,
image or label; unreadable files; image/label size mismatch; label values that are neither a class nor 255;
an empty split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from deconv_gui.core.errors import DatasetError, ImageReadError
from deconv_gui.core.palette import CAMVID_CLASSES, CAMVID_COLOURS, VOID, voc_palette
from deconv_gui.core.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_COLOURS
from deconv_gui.core.vocabulary import has_background_class
from deconv_gui.io.dataset_files import DATASET_FORMATS, DatasetFiles, find_dataset_files
from deconv_gui.io.images import read_image
from deconv_gui.io.label_maps import read_label_png
from deconv_gui.training.instances import (
    Instance,
    instance_boxes,
    instances_from_components,
    instances_from_ids,
)

__all__ = [
    "CAMVID_THING_NAMES", "Instance", "LabeledImage", "SegmentationDataset", "class_frequencies",
    "linknet_class_weights", "open_dataset", "sqrt_class_weights",
]

log = logging.getLogger(__name__)

CAMVID_THING_NAMES: tuple[str, ...] = ("Pole", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist")
DEFAULT_MIN_INSTANCE_PIXELS = 64


@dataclass
class LabeledImage:
    """One dataset item.

    Attributes:
        path: the image file.
        image: ``(H, W, 3) uint8`` RGB.
        label: ``(H, W) uint8`` class ids, 255 = void.
        instances: the image's object instances (see :mod:`deconv_gui.training.instances`).
    """

    path: Path
    image: np.ndarray
    label: np.ndarray
    instances: list[Instance]


class SegmentationDataset:
    """One split of one dataset; ``ds[i]`` reads, validates and returns :class:`LabeledImage` ``i``.

    Attributes:
        root, split, format: where it comes from (``format`` in ``voc | camvid | folder``).
        class_names: ``C`` names; label values are ``0..C-1`` or 255 (void).
        palette: ``(C, 3) uint8`` RGB colour per class.
        thing_classes: classes that form object instances.
        image_paths, label_paths: the split's files, in split-list order.
        min_instance_pixels: smallest connected component kept as an instance (no effect with instance maps).
    """

    def __init__(
        self,
        files: DatasetFiles,
        *,
        class_names: list[str],
        palette: np.ndarray,
        thing_classes: tuple[int, ...],
        cache_images: bool = False,
        min_instance_pixels: int = DEFAULT_MIN_INSTANCE_PIXELS,
    ) -> None:
        self.files = files
        self.root = files.root
        self.split = files.split
        self.format = files.format
        self.class_names = list(class_names)
        self.palette = np.asarray(palette, np.uint8).reshape(-1, 3)
        self.thing_classes = tuple(int(c) for c in thing_classes)
        self.image_paths: list[Path] = list(files.images)
        self.label_paths: list[Path] = list(files.labels)
        self.instance_paths: list[Path | None] = list(files.instances)
        self.min_instance_pixels = int(min_instance_pixels)
        self.cache_images = bool(cache_images)
        self._images: dict[int, np.ndarray] = {}
        self._labels: dict[int, np.ndarray] = {}
        self._boxes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._valid = np.zeros(256, bool)
        self._valid[: len(self.class_names)] = True
        self._valid[VOID] = True

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.image_paths)

    def __repr__(self) -> str:
        return (f"SegmentationDataset({self.format!r}, {str(self.root)!r}, split={self.split!r}, "
                f"{len(self)} images, {self.num_classes} classes)")

    def _check_index(self, i: int) -> int:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"image index {i} out of range for {len(self)} images")
        return i % len(self)

    def image(self, i: int) -> np.ndarray:
        """``(H, W, 3) uint8`` RGB image ``i`` (kept in memory with ``cache_images``)."""
        i = self._check_index(i)
        if i in self._images:
            return self._images[i]
        try:
            image = read_image(self.image_paths[i])
        except ImageReadError as exc:
            raise DatasetError(exc.reason, exc.path) from exc
        if self.cache_images:
            self._images[i] = image
        return image

    def label(self, i: int) -> np.ndarray:
        """``(H, W) uint8`` class label map ``i`` (void values mapped to 255), validated; cheap (no image read)."""
        i = self._check_index(i)
        if i in self._labels:
            return self._labels[i]
        path = self.label_paths[i]
        try:
            label = self.files.map_label(read_label_png(path))
        except ImageReadError as exc:
            raise DatasetError(exc.reason, exc.path) from exc
        bad = ~self._valid[label]
        if bad.any():
            values = np.unique(label[bad])
            shown = ", ".join(str(int(v)) for v in values[:10]) + (" ..." if len(values) > 10 else "")
            raise DatasetError(
                f"label values {shown} are not classes ({self.num_classes} classes: valid values are "
                f"0..{self.num_classes - 1} and 255 for void)", path)
        if self.cache_images:
            self._labels[i] = label
        return label

    def instances(self, i: int, label: np.ndarray | None = None) -> list[Instance]:
        """Object instances of image ``i`` (``label``: its label map, when already read)."""
        i = self._check_index(i)
        label = self.label(i) if label is None else label
        ids_path = self.instance_paths[i]
        if ids_path is None:
            found = instances_from_components(label, self.thing_classes, self.min_instance_pixels)
        else:
            try:
                ids = read_label_png(ids_path)
            except ImageReadError as exc:
                raise DatasetError(exc.reason, exc.path) from exc
            if ids.shape != label.shape:
                raise DatasetError(
                    f"instance map is {ids.shape[1]}×{ids.shape[0]} but its label is "
                    f"{label.shape[1]}×{label.shape[0]}", ids_path)
            found = instances_from_ids(label, ids, self.thing_classes)
        if i not in self._boxes:
            self._boxes[i] = instance_boxes(found)
        return found

    def instance_boxes(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(K, 4) float64`` boxes and ``(K,) int64`` classes of image ``i``'s instances (remembered)."""
        i = self._check_index(i)
        if i not in self._boxes:
            self.instances(i)
        return self._boxes[i]

    def __getitem__(self, i: int) -> LabeledImage:
        i = self._check_index(i)
        label = self.label(i)
        image = self.image(i)
        if image.shape[:2] != label.shape:
            raise DatasetError(
                f"label is {label.shape[1]}×{label.shape[0]} but its image {self.image_paths[i].name} is "
                f"{image.shape[1]}×{image.shape[0]}", self.label_paths[i])
        return LabeledImage(path=self.image_paths[i], image=image, label=label, instances=self.instances(i, label))


def _thing_classes(root: Path, names: list[str], builtin_camvid: bool) -> tuple[int, ...]:
    things_file = root / "things.txt"
    if things_file.exists():
        entries = [s.strip() for s in things_file.read_text(encoding="utf-8").splitlines() if s.strip()]
        ids: list[int] = []
        for entry in entries:
            if entry in names:
                ids.append(names.index(entry))
            elif entry.isdigit() and int(entry) < len(names):
                ids.append(int(entry))
            else:
                raise DatasetError(f"{entry!r} is neither a class name nor a class id (0..{len(names) - 1})",
                                   things_file)
        return tuple(sorted(set(ids)))
    if builtin_camvid:
        return tuple(names.index(n) for n in CAMVID_THING_NAMES)
    if has_background_class(names):
        return tuple(range(1, len(names)))
    return tuple(range(len(names)))


def _palette(names: list[str]) -> np.ndarray:
    if tuple(names) == CAMVID_CLASSES:
        return np.asarray(CAMVID_COLOURS, np.uint8)
    if tuple(names) == SYNTHETIC_CLASSES:
        return np.asarray(SYNTHETIC_COLOURS, np.uint8)
    return voc_palette()[: len(names)].copy()


def open_dataset(
    root: str | Path,
    fmt: str,
    split: str,
    *,
    cache_images: bool = False,
    min_instance_pixels: int = DEFAULT_MIN_INSTANCE_PIXELS,
) -> SegmentationDataset:
    """Open one split of a dataset (layouts in the module docstring).

    ``fmt`` in ``voc | camvid | folder``. ``cache_images`` keeps decoded images and labels in memory after the
    first read (CamVid train ≈ 200 MB). Files are checked to exist here; their contents when read.
    """
    if fmt not in DATASET_FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; use one of {', '.join(DATASET_FORMATS)}", root)
    files = find_dataset_files(root, fmt, split)
    names = list(files.class_names)
    if not names:
        raise DatasetError("class-names file classes.txt not found (one class name a line)",
                           Path(files.root) / "classes.txt")
    if len(names) > 255:
        raise DatasetError(f"{len(names)} classes; at most 255 fit a label image (255 is void)",
                           Path(files.root) / "classes.txt")
    if fmt == "folder" and not (Path(files.root) / f"{split}.txt").exists():
        log.warning("%s: no %s.txt; the '%s' split holds every image", files.root, split, split)
    builtin_camvid = fmt == "camvid" and tuple(names) == CAMVID_CLASSES
    things = _thing_classes(Path(files.root), names, builtin_camvid)
    return SegmentationDataset(files, class_names=names, palette=_palette(names), thing_classes=things,
                               cache_images=cache_images, min_instance_pixels=min_instance_pixels)


_FREQUENCY_CACHE: dict[tuple, np.ndarray] = {}


def class_frequencies(ds: SegmentationDataset, *, progress: bool = False) -> np.ndarray:
    """``(C,) float64`` fraction of the labelled (non-void) pixels in each class over the whole split.

    Computed once per dataset split (remembered for the process) from the labels only.
    """
    key = (ds.format, str(Path(ds.root).resolve()), ds.split, len(ds), tuple(ds.class_names))
    if key not in _FREQUENCY_CACHE:
        counts = np.zeros(256, np.int64)
        for i in tqdm(range(len(ds)), desc="class frequencies", unit="img", disable=not progress):
            counts += np.bincount(ds.label(i).ravel(), minlength=256)
        counts = counts[: ds.num_classes].astype(np.float64)
        total = counts.sum()
        _FREQUENCY_CACHE[key] = counts / total if total > 0 else counts
    return _FREQUENCY_CACHE[key].copy()


def linknet_class_weights(freq: np.ndarray) -> np.ndarray:
    """LinkNet / ENet class weights ``w_c = 1 / ln(1.02 + p_c)`` for pixel fractions ``freq`` (``(C,)``)."""
    return 1.0 / np.log(1.02 + np.asarray(freq, np.float64))


def sqrt_class_weights(freq: np.ndarray) -> np.ndarray:
    """Square-root median-frequency weights ``w_c = sqrt(median(p) / p_c)`` for pixel fractions ``freq`` (``(C,)``).

    A milder lift for rare classes than LinkNet's (a class 100× rarer than the median gets ×10, not ×40); a
    class absent from the split gets weight 1.
    """
    p = np.asarray(freq, np.float64)
    present = p > 0
    weights = np.ones_like(p)
    if present.any():
        weights[present] = np.sqrt(np.median(p[present]) / p[present])
    return weights
