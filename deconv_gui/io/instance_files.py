"""Instance exports from plain arrays: COCO run-length encoding, instance mask files + JSON, COCO JSON.

Everything here takes numpy arrays and :class:`InstanceRecord` s, never a segmentation result (``io`` sits below
``inference``); :mod:`deconv_gui.inference.result_files` turns results into records and picks the files.

Conventions: masks are ``(H, W) bool``; boxes ``x0, y0, x1, y1`` in pixels with ``x1``/``y1`` exclusive; COCO
``bbox`` is ``[x, y, width, height]`` and ``segmentation`` is an uncompressed-header RLE (``{"size": [H, W],
"counts": str}``) as :func:`pycocotools.mask.encode` writes it. A COCO ``category_id`` is the model's class
index + 1 (many COCO tools reserve 0; each category also states its ``class_index``, the pixel value of the
palette and index PNGs); the background class is not a category. Proposals are numbered from 1 as the app's
table shows them: the instance JSON's ``id`` and ``proposal``, the mask file ``NNN.png`` and COCO's
``proposal`` are ``InstanceRecord.index + 1``. Every file is written atomically.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from deconv_gui.core.errors import OutputError
from deconv_gui.io.atomic import COMMIT_MARK, STALE_AGE_S, pid_alive, temp_name, temp_owner
from deconv_gui.io.label_maps import write_json, write_mask_png

log = logging.getLogger(__name__)

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

    The JSON holds the image size, the class names, the box convention and per instance: ``id``, ``source``,
    ``proposal`` (its number from 1 as in the app's table, or null), ``class_id``, ``class_name``, ``mean_probability``, ``objectness`` (null for
    components), ``box`` (clipped to the image) and ``box_raw`` (the proposal window; both null for
    components), ``mask_box`` (tight box of the mask), ``area``, ``mask`` (path relative to ``out_dir``),
    ``user_box``. Returns the paths written (masks, then the JSON).

    The pair is replaced as one set: the masks and the JSON are staged in a hidden folder beside the mask
    folder, which is then swapped in (other files in the old mask folder move along; its old masks go) and the
    JSON moved into place. A kill while staging leaves the previous set untouched; a kill inside the swap's
    three renames leaves a marked set that :func:`recover_instance_exports` finishes on the next export into
    ``out_dir``. Either way the JSON and the masks it names always come from one export.
    """
    out = Path(out_dir)
    mask_dir = instances_mask_dir(out, stem)
    json_path = instances_json_path(out, stem)
    if mask_dir.exists() and not mask_dir.is_dir():
        raise OutputError("cannot create the folder: it is a file", mask_dir)
    staged = out / temp_name(mask_dir.name)
    try:
        staged.mkdir()
    except OSError as exc:
        raise OutputError(f"cannot create the folder: {exc.strerror or exc}", mask_dir) from None
    written: list[Path] = []
    entries = []
    try:
        for k, rec in enumerate(records):
            name = f"{number(rec.index):03d}.png"
            _staged_write(write_mask_png, staged / name, mask_dir / name, rec.mask)
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
        _staged_write(write_json, staged / _STAGED_JSON, json_path, {
            "image": image_name or stem,
            "image_size": {"height": int(image_hw[0]), "width": int(image_hw[1])},
            "box_format": BOX_FORMAT,
            "classes": list(class_names),
            "instances": entries,
        })
        _staged_write(write_json, staged / COMMIT_MARK, mask_dir,
                      {"pid": os.getpid(), "folder": mask_dir.name, "json": json_path.name})
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    _swap_in(out, staged, mask_dir.name, json_path.name)
    written.append(json_path)
    return written


#: The staged instances JSON inside a staged mask folder (moved to ``<stem>_instances.json`` by the swap).
_STAGED_JSON = ".deconv-staged.json"


def _staged_write(writer: Any, tmp: Path, shown: Path, data: Any) -> None:
    """``writer(tmp, data)``, an OutputError naming ``shown`` (the file the user asked for) instead of ``tmp``."""
    try:
        writer(tmp, data)
    except OutputError as exc:
        raise OutputError(exc.reason, shown) from None


def _swap_in(out: Path, staged: Path, folder: str, json_name: str) -> None:
    """Make the complete staged set ``staged`` the export: ``out/folder`` (masks) and ``out/json_name``.

    Steps (each a rename, so each survives a kill and is redone by :func:`recover_instance_exports`): move the
    old folder's other files into ``staged``; move the old folder aside; rename ``staged`` to ``folder``; move
    its staged JSON over ``json_name``; drop the commit mark and the old folder.
    """
    target, json_target = out / folder, out / json_name
    try:
        old = None
        if target.is_dir():
            for entry in os.scandir(target):
                if _MASK_NAME.match(entry.name) or temp_owner(entry.name) is not None or \
                        entry.name in (COMMIT_MARK, _STAGED_JSON) or os.path.lexists(staged / entry.name):
                    continue
                os.rename(entry.path, staged / entry.name)  # the user's own files stay with the masks
            old = out / temp_name(folder, kind="old")
            os.rename(target, old)
        os.rename(staged, target)
        os.replace(target / _STAGED_JSON, json_target)  # the JSON: from here on the new set is the export
        (target / COMMIT_MARK).unlink()
    except OSError as exc:
        raise OutputError(f"cannot replace the earlier export: {exc.strerror or exc}", target) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_instance_exports(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Finish instance exports in ``out_dir`` that a kill interrupted inside their swap (see
    :func:`write_instances`); returns the mask folders finished. Sets of still-running processes are left
    alone; incomplete staged folders are removed later by :func:`~deconv_gui.io.atomic.clean_stale_temps`."""
    out = Path(out_dir)
    pending = []
    try:
        entries = [e for e in os.scandir(out) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    for entry in entries:
        mark = Path(entry.path) / COMMIT_MARK
        try:
            info = json.loads(mark.read_text(encoding="utf-8"))
            pid, folder, json_name = int(info["pid"]), str(info["folder"]), str(info["json"])
            when = mark.stat().st_mtime
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid == os.getpid() or "/" in folder or "/" in json_name or \
                (pid_alive(pid) and time.time() - when < STALE_AGE_S):
            continue
        pending.append((when, Path(entry.path), folder, json_name))
    finished = []
    for _, path, folder, json_name in sorted(pending):
        try:
            if path.name == folder:  # swapped in; the JSON may still be staged
                if (path / _STAGED_JSON).exists():
                    os.replace(path / _STAGED_JSON, out / json_name)
                (path / COMMIT_MARK).unlink()
            elif temp_owner(path.name) is not None:
                _swap_in(out, path, folder, json_name)
            else:
                continue
        except (OSError, OutputError) as exc:
            log.warning("could not finish the interrupted export %s: %s", path, exc)
            continue
        log.info("finished an interrupted instance export: %s", out / folder)
        finished.append(out / folder)
    return finished


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


def merge_coco_parts(
    parts: Sequence[dict[str, Any]], path: str | os.PathLike[str], file_order: Sequence[str] = ()
) -> Path:
    """Write one COCO file at ``path`` from COCO dicts of disjoint image sets (e.g. one per process).

    Images are ordered by ``file_order`` (file names; others after, in part order) and numbered 1, 2, …;
    annotations follow their images, renumbered 1, 2, … with ``image_id`` remapped. ``categories`` must be the
    same in every part (else ``ValueError``: one COCO file cannot hold two class lists); ``info`` and
    ``licenses`` come from the first part. Needs at least one part.
    """
    if not parts:
        raise ValueError("no COCO parts to merge")
    categories = parts[0]["categories"]
    if any(part["categories"] != categories for part in parts):
        raise ValueError("the parts have different categories")
    rank = {name: i for i, name in enumerate(file_order)}
    entries = []  # (sort key, image, its annotations)
    for p, part in enumerate(parts):
        by_image: dict[int, list[dict[str, Any]]] = {}
        for ann in part["annotations"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
        for k, image in enumerate(part["images"]):
            key = (rank.get(image["file_name"], len(rank)), p, k)
            entries.append((key, image, by_image.get(image["id"], [])))
    entries.sort(key=lambda e: e[0])
    images, annotations = [], []
    for image_id, (_, image, anns) in enumerate(entries, start=1):
        images.append({**image, "id": image_id})
        for ann in anns:
            annotations.append({**ann, "id": len(annotations) + 1, "image_id": image_id})
    write_json(path, {
        "info": parts[0].get("info", {}), "licenses": parts[0].get("licenses", []),
        "images": images, "categories": categories, "annotations": annotations,
    })
    return Path(path)
