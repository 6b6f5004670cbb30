"""Instance exports from plain arrays: COCO run-length encoding, instance mask files + JSON, COCO JSON.

Everything here takes numpy arrays and :class:`InstanceRecord` s, never a segmentation result (``io`` sits below
``inference``); :mod:`deconv_gui.inference.exports` turns results into records and picks the files.

Conventions: masks are ``(H, W) bool``; boxes ``x0, y0, x1, y1`` in pixels with ``x1``/``y1`` exclusive; COCO
``bbox`` is ``[x, y, width, height]`` and ``segmentation`` is an uncompressed-header RLE (``{"size": [H, W],
"counts": str}``) as :func:`pycocotools.mask.encode` writes it. A COCO ``category_id`` is the model's class
index + 1 (many COCO tools reserve 0; each category also states its ``class_index``, the pixel value of the
palette and index PNGs); the background class is not a category. Proposals are numbered from 1 as the app's
table shows them: the instance JSON's ``id`` and ``proposal``, the mask file ``NNN.png`` and COCO's
``proposal`` are ``InstanceRecord.index + 1``. Every file is written atomically.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from deconv_gui.core.errors import OutputError
from deconv_gui.io.label_maps import write_json, write_mask_png

BOX_FORMAT = "x0 y0 x1 y1, pixels, x1/y1 exclusive"
BACKGROUND_NAMES = frozenset({"background", "__background__", "bg", "_background_"})
#: Connected components smaller than this (pixels) are not exported as instances (noise specks).
MIN_COMPONENT_AREA = 16
_MASK_NAME = re.compile(r"^\d{3,}\.png$")


@dataclass(frozen=True)
class InstanceRecord:
    """One instance to export.

    ``mask``: ``(H, W) bool``; ``class_id``: index into the class names; ``score``: confidence in ``[0, 1]``
    (mean class probability over the mask; 1.0 for hand-painted regions); ``index``: proposal index (``source``
    "proposal"/"user_box") or component number (``source`` "component", or "edit" for a region painted by hand
    that no instance covers), 0-based; files and JSON show it as :func:`number` (from 1); ``box``: the raw proposal
    window (``x0, y0, x1, y1``, may reach past the image) or ``None`` for components; ``objectness``: the Edge
    Box score (1.0 for user boxes) or ``None``.
    """

    mask: np.ndarray
    class_id: int
    score: float
    index: int
    source: str = "proposal"
    box: tuple[float, float, float, float] | None = None
    objectness: float | None = None


PROPOSAL_SOURCES = ("proposal", "user_box")


def number(index: int) -> int:
    """The 1-based number users see for the 0-based proposal/component ``index`` (table, JSON, mask file)."""
    return int(index) + 1


def coco_category_id(class_id: int) -> int:
    """COCO ``category_id`` of class index ``class_id``: ≥ 1, as COCO tools expect."""
    return int(class_id) + 1


def is_background(class_id: int, class_names: Sequence[str]) -> bool:
    """Whether class ``class_id`` is the background class (index 0 named like "background")."""
    return class_id == 0 and bool(class_names) and class_names[0].strip().lower() in BACKGROUND_NAMES


# ---------------------------------------------------------------- arrays


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of a ``(H, W)`` bool mask: ``{"size": [H, W], "counts": str}`` (JSON-ready)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def mask_box(mask: np.ndarray) -> list[int] | None:
    """Tight box ``[x0, y0, x1, y1]`` (exclusive) of a ``(H, W) bool`` mask, or ``None`` when it is empty."""
    mask = np.asarray(mask, bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def clip_box(box: Sequence[float], image_hw: tuple[int, int]) -> list[float]:
    """``box`` (``x0, y0, x1, y1``) clipped to an ``(H, W)`` image."""
    h, w = image_hw
    x0, y0, x1, y1 = (float(v) for v in box)
    return [min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h)]


def label_components(
    label: np.ndarray, class_ids: Sequence[int], *, min_area: int = MIN_COMPONENT_AREA
) -> list[tuple[int, np.ndarray]]:
    """Connected components (8-connected) of each class in ``class_ids`` in a ``(H, W)`` label map.

    Returns ``(class_id, mask (H, W) bool)`` pairs, by class then by the components' top-left scan order;
    components under ``min_area`` pixels are left out.
    """
    label = np.asarray(label)
    found: list[tuple[int, np.ndarray]] = []
    for cls in class_ids:
        binary = (label == cls).astype(np.uint8)
        if not binary.any():
            continue
        count, comp, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        for k in range(1, count):
            if stats[k, cv2.CC_STAT_AREA] >= min_area:
                found.append((int(cls), comp == k))
    return found


# ---------------------------------------------------------------- instance masks + JSON


def instances_json_path(out_dir: str | os.PathLike[str], stem: str) -> Path:
    return Path(out_dir) / f"{stem}_instances.json"


def instances_mask_dir(out_dir: str | os.PathLike[str], stem: str) -> Path:
    return Path(out_dir) / f"{stem}_instances"


def write_instances(
    out_dir: str | os.PathLike[str],
    stem: str,
    image_hw: tuple[int, int],
    class_names: Sequence[str],
    records: Sequence[InstanceRecord],
    *,
    image_name: str | None = None,
) -> list[Path]:
    """Write one mask PNG per record (``<stem>_instances/NNN.png``, 0/255) and ``<stem>_instances.json``.

    Mask files from an earlier export that this one does not rewrite are removed, so the folder always matches
    the JSON. The JSON (written last) holds the image size, the class names, the box convention and per
    instance: ``id``, ``source``, ``proposal`` (its number from 1 as in the app's table, or null), ``class_id``, ``class_name``,
    ``mean_probability``, ``objectness`` (null for components), ``box`` (clipped to the image) and ``box_raw``
    (the proposal window; both null for components), ``mask_box`` (tight box of the mask), ``area``, ``mask``
    (path relative to ``out_dir``), ``user_box``. Returns the paths written (masks, then the JSON).
    """
    out = Path(out_dir)
    mask_dir = instances_mask_dir(out, stem)
    try:
        mask_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder: {exc.strerror or exc}", mask_dir) from None
    written: list[Path] = []
    entries = []
    for k, rec in enumerate(records):
        name = f"{number(rec.index):03d}.png"
        write_mask_png(mask_dir / name, rec.mask)
        written.append(mask_dir / name)
        entries.append({
            "id": number(k),
            "source": rec.source,
            "proposal": number(rec.index) if rec.source in PROPOSAL_SOURCES else None,
            "class_id": rec.class_id,
            "class_name": _class_name(rec.class_id, class_names),
            "mean_probability": rec.score,
            "objectness": rec.objectness,
            "box": None if rec.box is None else clip_box(rec.box, image_hw),
            "box_raw": None if rec.box is None else [float(v) for v in rec.box],
            "mask_box": mask_box(rec.mask),
            "area": int(np.count_nonzero(rec.mask)),
            "mask": f"{mask_dir.name}/{name}",
            "user_box": rec.source == "user_box",
        })
    _remove_stale_masks(mask_dir, {p.name for p in written})
    json_path = instances_json_path(out, stem)
    write_json(json_path, {
        "image": image_name or stem,
        "image_size": {"height": int(image_hw[0]), "width": int(image_hw[1])},
        "box_format": BOX_FORMAT,
        "classes": list(class_names),
        "instances": entries,
    })
    written.append(json_path)
    return written


def _remove_stale_masks(mask_dir: Path, keep: set[str]) -> None:
    for old in mask_dir.iterdir():
        if _MASK_NAME.match(old.name) and old.name not in keep and old.is_file():
            try:
                old.unlink()
            except OSError as exc:
                raise OutputError(f"cannot remove an old mask: {exc.strerror or exc}", old) from None


def _class_name(class_id: int, class_names: Sequence[str]) -> str:
    return class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)


# ---------------------------------------------------------------- COCO


def coco_image(image_id: int, file_name: str, image_hw: tuple[int, int]) -> dict[str, Any]:
    """A COCO ``images`` entry."""
    return {"id": int(image_id), "file_name": file_name, "height": int(image_hw[0]), "width": int(image_hw[1])}


def coco_annotations(records: Sequence[InstanceRecord], image_id: int, first_id: int = 1) -> list[dict[str, Any]]:
    """COCO ``annotations`` for ``records`` of one image, ids ``first_id, first_id + 1, …``.

    Each has ``segmentation`` (RLE), ``area`` (pixels), ``bbox`` (``[x, y, w, h]`` of the mask), ``iscrowd`` 0,
    ``score``, and the export's ``source`` and ``proposal`` index.
    """
    annotations = []
    for k, rec in enumerate(records):
        rle = encode_rle(rec.mask)
        box = mask_box(rec.mask) or [0, 0, 0, 0]
        annotations.append({
            "id": first_id + k,
            "image_id": int(image_id),
            "category_id": coco_category_id(rec.class_id),
            "segmentation": rle,
            "area": int(np.count_nonzero(rec.mask)),
            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
            "iscrowd": 0,
            "score": float(rec.score),
            "source": rec.source,
            "proposal": number(rec.index) if rec.source in PROPOSAL_SOURCES else None,
        })
    return annotations


def coco_categories(class_names: Sequence[str]) -> list[dict[str, Any]]:
    """COCO ``categories``: every class but the background, ``id`` = class index + 1, ``class_index`` = the class's
    pixel value in the label PNGs."""
    return [
        {"id": coco_category_id(i), "name": name, "supercategory": "object", "class_index": i}
        for i, name in enumerate(class_names)
        if not is_background(i, class_names)
    ]


def write_coco(
    path: str | os.PathLike[str],
    images: Sequence[dict[str, Any]],
    annotations: Sequence[dict[str, Any]],
    class_names: Sequence[str],
) -> Path:
    """Write a COCO instance-segmentation JSON (``info``, ``images``, ``categories``, ``annotations``)."""
    write_json(path, {
        "info": {"description": "deconv_gui instance export; category_id = class index + 1 (the label PNGs' "
                                "pixel value is each category's class_index); proposals numbered from 1",
                 "version": "1.0"},
        "licenses": [],
        "images": list(images),
        "categories": coco_categories(class_names),
        "annotations": list(annotations),
    })
    return Path(path)
