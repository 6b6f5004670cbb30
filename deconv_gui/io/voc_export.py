"""Write images and their label maps as a PASCAL-VOC-style dataset tree that ``deconv-gui train`` reads.

Layout under ``root`` (the ``voc`` format of :mod:`deconv_gui.io.dataset_files`)::

    JPEGImages/<id>.jpg                  the image (JPEG, quality 95)
    SegmentationClass/<id>.png           the label map, palette PNG (pixel = class index, 255 = void)
    ImageSets/Segmentation/train.txt     ids, one a line (also val.txt and trainval.txt)
    classes.txt                          the class names, one a line

Every file is written atomically. Nothing is overwritten unless ``overwrite=True``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from deconv_gui.core.cancel import CancelToken, ProgressCallback
from deconv_gui.core.errors import OutputError
from deconv_gui.io.atomic import atomic_path, atomic_write_bytes, clean_stale_temps_once
from deconv_gui.io.files import require_writable_folder
from deconv_gui.io.label_maps import write_palette_png

log = logging.getLogger(__name__)

JPEG_QUALITY = 95
SPLIT_DIR = Path("ImageSets") / "Segmentation"


def voc_split(ids: list[str], val_every: int = 5) -> tuple[list[str], list[str]]:
    """``(train, val)``: every ``val_every``-th id goes to val. With one image it is in both (the trainer needs
    a val split); with more, val gets at least the last one and train keeps the rest."""
    if len(ids) <= 1:
        return list(ids), list(ids)
    val = [i for k, i in enumerate(ids) if val_every > 0 and k % val_every == val_every - 1] or [ids[-1]]
    return [i for i in ids if i not in val], val


def write_voc_dataset(
    root: str | os.PathLike[str],
    items: Iterable[tuple[str, np.ndarray, np.ndarray]],
    class_names: list[str],
    palette: np.ndarray,
    *,
    val_every: int = 5,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[Path]:
    """Write ``(id, image (H, W, 3) uint8 RGB, label (H, W) uint8)`` items as a VOC tree; the files written.

    ``palette``: ``(N ≤ 256, 3) uint8`` class colours for the PNGs. The split lists and ``classes.txt`` are
    written last, so a cancelled or failed export is not a readable (half) dataset. Raises
    :class:`OutputError` naming the first existing file when ``overwrite`` is False.
    """
    out = require_writable_folder(root)
    if not overwrite:
        for name in (SPLIT_DIR / "train.txt", SPLIT_DIR / "val.txt", Path("classes.txt")):
            if (out / name).exists():
                raise OutputError("already exists, not overwriting (choose an empty folder)", out / name)
    for sub in ("JPEGImages", "SegmentationClass", str(SPLIT_DIR)):
        (out / sub).mkdir(parents=True, exist_ok=True)
        clean_stale_temps_once(out / sub)
    written: list[Path] = []
    ids: list[str] = []
    for done, (image_id, image, label) in enumerate(items, start=1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if image.shape[:2] != label.shape:
            raise ValueError(f"{image_id}: image {image.shape} and label {label.shape} sizes differ")
        if image_id in ids:
            raise ValueError(f"duplicate image id {image_id!r}")
        jpg, png = out / "JPEGImages" / f"{image_id}.jpg", out / "SegmentationClass" / f"{image_id}.png"
        for path in (jpg, png):
            if not overwrite and path.exists():
                raise OutputError("already exists, not overwriting", path)
        with atomic_path(jpg) as tmp:
            Image.fromarray(np.ascontiguousarray(image, np.uint8)).save(tmp, format="JPEG", quality=JPEG_QUALITY)
        write_palette_png(png, label, palette)
        written += [jpg, png]
        ids.append(image_id)
        if progress is not None:
            progress(done, 0, "dataset export")
    if not ids:
        raise OutputError("nothing to export: no image has edits or a result", out)
    train, val = voc_split(ids, val_every)
    for name, listed in (("train", train), ("val", val), ("trainval", ids)):
        path = out / SPLIT_DIR / f"{name}.txt"
        # ids come from file names: one that is not UTF-8 is written as its original bytes (os.fsencode)
        atomic_write_bytes(path, ("\n".join(listed) + "\n").encode("utf-8", errors="surrogateescape"))
        written.append(path)
    atomic_write_bytes(out / "classes.txt", ("\n".join(class_names) + "\n").encode("utf-8"))
    written.append(out / "classes.txt")
    log.info("dataset export: %d images (%d train, %d val) in %s", len(ids), len(train), len(val), out)
    return written
