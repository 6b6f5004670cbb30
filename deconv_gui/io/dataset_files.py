"""Find (image, label) file pairs of a dataset on disk, in the layouts the project reads.

- ``camvid`` (SegNet layout): ``{split}.txt`` lines ``/SegNet/CamVid/train/x.png /SegNet/.../trainannot/x.png``
  (or plain relative paths); images in ``{split}/``, labels in ``{split}annot/``; label 11 (Unlabelled) → 255.
  An optional ``classes.txt`` in the root replaces the 11 CamVid classes (one name a line); the label value
  right after the last class (CamVid's "Unlabelled" convention) is then void, and a last line named
  ``Unlabelled``/``Unlabeled``/``void`` is that void value rather than a class.
- ``voc`` (PASCAL VOC 2012): ``ImageSets/Segmentation/{split}.txt`` ids, ``JPEGImages/{id}.jpg``,
  ``SegmentationClass/{id}.png`` (palette PNG, 255 = void), optional ``SegmentationObject/{id}.png``; an optional
  ``classes.txt`` replaces the 21 VOC classes.
- ``folder``: ``images/`` and ``masks/`` with matching stems (masks single-channel index PNGs), optional
  ``instances/`` (instance-id PNGs, 0 and 255 = no instance), optional ``classes.txt`` (one class name a line) and
  ``{split}.txt`` listing stems.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deconv_gui.core.errors import DatasetError
from deconv_gui.core.palette import CAMVID_CLASSES, VOC_CLASSES
from deconv_gui.core.vocabulary import DATASET_FORMATS
from deconv_gui.io.images import IMAGE_SUFFIXES


@dataclass(frozen=True)
class DatasetFiles:
    """Pairs of files of one split. ``void_values`` are label values mapped to 255 when reading."""

    root: Path
    format: str
    split: str
    images: list[Path]
    labels: list[Path]
    instances: list[Path | None]
    class_names: list[str]
    void_values: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.images)

    def map_label(self, raw: np.ndarray) -> np.ndarray:
        """Raw label values → training labels: ``void_values`` and values ≥ num_classes become 255."""
        out = raw.astype(np.uint8, copy=True)
        for v in self.void_values:
            out[raw == v] = 255
        return out


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DatasetError(f"{what} not found", path)
    return path


def _read_lines(listing: Path) -> list[str]:
    """The lines of a split list, decoded as file names are (UTF-8, other bytes kept as :func:`os.fsdecode`
    keeps them), so a listed Latin-1 name finds its file."""
    try:
        return listing.read_bytes().decode("utf-8", errors="surrogateescape").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read the split list: {exc.strerror or exc}", listing) from exc


_VOID_NAMES = ("unlabelled", "unlabeled", "void")


def read_class_names(root: Path) -> list[str] | None:
    """Class names from ``root/classes.txt`` (one a line, blank lines skipped), or ``None`` without that file."""
    names_file = root / "classes.txt"
    if not names_file.exists():
        return None
    try:
        names = [s.strip() for s in names_file.read_text(encoding="utf-8").splitlines() if s.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read the class-names file ({exc})", names_file) from exc
    if not names:
        raise DatasetError("the class-names file is empty", names_file)
    return names


def _camvid(root: Path, split: str) -> DatasetFiles:
    listing = _require(root / f"{split}.txt", f"CamVid split list '{split}.txt'")
    images, labels = [], []
    for n, line in enumerate(_read_lines(listing), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(f"line {n} should hold 'image label', got {line!r}", listing)
        img = root / split / Path(parts[0]).name
        lab = root / f"{split}annot" / Path(parts[1]).name
        images.append(_require(img, "image listed in the split file"))
        labels.append(_require(lab, "label listed in the split file"))
    if not images:
        raise DatasetError("the split list is empty", listing)
    names = read_class_names(root)
    if names is None:
        names = list(CAMVID_CLASSES)
    elif len(names) > 1 and names[-1].lower() in _VOID_NAMES:
        names = names[:-1]
    return DatasetFiles(root, "camvid", split, images, labels, [None] * len(images), names, (len(names),))


def _voc(root: Path, split: str) -> DatasetFiles:
    if (root / "VOC2012").is_dir() and not (root / "JPEGImages").is_dir():
        root = root / "VOC2012"
    listing = _require(root / "ImageSets" / "Segmentation" / f"{split}.txt", f"VOC split list '{split}.txt'")
    ids = [s.strip() for s in _read_lines(listing) if s.strip()]
    if not ids:
        raise DatasetError("the split list is empty", listing)
    images = [_require(root / "JPEGImages" / f"{i}.jpg", "image listed in the split file") for i in ids]
    labels = [_require(root / "SegmentationClass" / f"{i}.png", "label listed in the split file") for i in ids]
    obj = root / "SegmentationObject"
    instances = [(obj / f"{i}.png") if (obj / f"{i}.png").exists() else None for i in ids]
    return DatasetFiles(root, "voc", split, images, labels, instances, read_class_names(root) or list(VOC_CLASSES))


def _folder(root: Path, split: str) -> DatasetFiles:
    img_dir = _require(root / "images", "folder dataset's 'images' directory")
    mask_dir = _require(root / "masks", "folder dataset's 'masks' directory")
    listing = root / f"{split}.txt"
    if listing.exists():
        stems = [s.strip() for s in _read_lines(listing) if s.strip()]
        if not stems:
            raise DatasetError("the split list is empty", listing)
        by_stem = {p.stem: p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        missing = [s for s in stems if s not in by_stem]
        if missing:
            raise DatasetError(f"{len(missing)} listed images have no file in images/, e.g. {missing[0]!r}", listing)
        images = [by_stem[s] for s in stems]
    else:
        images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError("no images found", img_dir)
    labels = [_require(mask_dir / f"{p.stem}.png", f"mask for image {p.name}") for p in images]
    inst_dir = root / "instances"
    instances = [(inst_dir / f"{p.stem}.png") if (inst_dir / f"{p.stem}.png").exists() else None for p in images]
    return DatasetFiles(root, "folder", split, images, labels, instances, read_class_names(root) or [])


def parse_split(expression: str) -> tuple[list[str], list[str], list[str]]:
    """A split expression → ``(splits, keep_prefixes, drop_prefixes)``.

    ``"train+val"`` is the union of two split lists; ``@P`` keeps only files whose name starts with ``P``
    (CamVid's sequence prefix, e.g. ``train@0006R0``), ``!P`` drops them (``train+val!0006R0``); several
    ``@``/``!`` parts may follow. A plain name is one split.
    """
    import re

    parts = re.split(r"([@!])", expression.strip())
    splits = [s.strip() for s in parts[0].split("+")]
    keep = [parts[i + 1].strip() for i in range(1, len(parts) - 1, 2) if parts[i] == "@"]
    drop = [parts[i + 1].strip() for i in range(1, len(parts) - 1, 2) if parts[i] == "!"]
    if not all(splits) or not all(keep) or not all(drop):
        raise DatasetError(f"bad split expression {expression!r} (e.g. train, train+val, train+val!0006R0, "
                           "train@0006R0)")
    return splits, keep, drop


def find_dataset_files(root: str | Path, fmt: str, split: str = "val") -> DatasetFiles:
    """List one split of a dataset; a missing folder, list or file raises :class:`DatasetError` naming it.

    ``split`` may be an expression (:func:`parse_split`): a union of splits filtered by file-name prefix.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError("dataset folder not found", root)
    readers = {"camvid": _camvid, "voc": _voc, "folder": _folder}
    if fmt not in readers:
        raise DatasetError(f"unknown dataset format {fmt!r}; use one of {', '.join(DATASET_FORMATS)}", root)
    names, keep, drop = parse_split(split)
    if len(names) == 1 and not keep and not drop:
        return readers[fmt](root, split)
    parts = [readers[fmt](root, name) for name in names]
    rows = [row for part in parts for row in zip(part.images, part.labels, part.instances, strict=True)]
    rows = [r for r in rows if (not keep or r[0].name.startswith(tuple(keep))) and not r[0].name.startswith(tuple(drop) or ("\0",))]
    if not rows:
        raise DatasetError(f"the split expression {split!r} selects no files", root)
    first = parts[0]
    return DatasetFiles(first.root, first.format, split, [r[0] for r in rows], [r[1] for r in rows],
                        [r[2] for r in rows], first.class_names, first.void_values)


def labelled_images(files: DatasetFiles, num_classes: int, limit: int = 0):  # noqa: ANN201 - an Iterator
    """Yield ``(image (H, W, 3) uint8, target (H, W) uint8)`` for the first ``limit`` pairs (0 = all); label
    values outside ``[0, num_classes)`` become 255 (void). A label whose size differs from its image raises
    DatasetError naming the label file."""
    from deconv_gui.io.images import read_image
    from deconv_gui.io.label_maps import read_label_png

    pairs = list(zip(files.images, files.labels, strict=True))
    for img_path, lab_path in pairs[: limit or None]:
        image = read_image(img_path)
        target = files.map_label(read_label_png(lab_path))
        if target.shape != image.shape[:2]:
            raise DatasetError(f"label is {target.shape[1]}×{target.shape[0]} but its image is "
                               f"{image.shape[1]}×{image.shape[0]}", lab_path)
        yield image, np.where(target < num_classes, target, 255).astype(np.uint8)
