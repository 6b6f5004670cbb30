"""Exporting a :class:`SegmentationResult` (or a folder of them) in the formats a user can ask for.

Formats (:data:`FORMATS`) and the files each writes into ``out_dir`` for an image whose stem is ``stem``:

- ``palette``: ``<stem>.png``, the label map as a VOC-style palette PNG with the model's class colours (pixel
  value = class index; 255 = void, drawn in the VOC void colour).
- ``index``: ``<stem>_index.png``, the label map as a single-channel PNG of class indices.
- ``overlay``: ``<stem>_overlay.png``, class colours blended over the image (RGB).
- ``instances``: ``<stem>_instances/NNN.png`` (one 0/255 mask per instance) + ``<stem>_instances.json``
  (boxes, objectness, class, mean probability, mask file; schema in :func:`deconv_gui.io.instance_files.write_instances`).
- ``coco``: ``<stem>_coco.json``, a COCO instance-segmentation file with RLE masks; a folder export writes one
  ``coco.json`` for all its images instead.

Instances are the included proposals whose own mask is non-empty (:meth:`SegmentationResult.instance_mask`),
trimmed to and extended by the hand edits (:func:`instance_records`).
Without proposals (whole-image mode, or a run that kept no per-instance maps) they are the connected components
of each non-background class of the label map.

Nothing is overwritten unless ``overwrite=True``; the folder is checked for writability before anything is
written; every file is written atomically, so an interrupted export never leaves a truncated file, and an
image's instance masks and JSON are replaced as one set (:func:`deconv_gui.io.instance_files.write_instances`). The
first export into a folder in a process finishes instance sets a kill interrupted and removes our stale
temporaries there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence, Sized
from pathlib import Path

import cv2
import numpy as np

from deconv_gui.core.cancel import CancelToken, ProgressCallback
from deconv_gui.core.errors import DeconvGuiError, OutputError
from deconv_gui.core.palette import palette_for
from deconv_gui.core.vocabulary import EXPORT_FORMATS
from deconv_gui.inference.result import SegmentationResult
from deconv_gui.io.atomic import first_visit
from deconv_gui.io.files import require_writable_folder
from deconv_gui.io.instance_files import (
    MIN_COMPONENT_AREA,
    InstanceRecord,
    coco_annotations,
    coco_image,
    instances_json_path,
    instances_mask_dir,
    is_background,
    label_components,
    recover_instance_exports,
    write_coco,
    write_instances,
)
from deconv_gui.io.label_maps import write_index_png, write_overlay_png, write_palette_png

log = logging.getLogger(__name__)

FORMATS = EXPORT_FORMATS
FOLDER_COCO_NAME = "coco.json"

PathLike = str | os.PathLike[str]


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """``formats`` without repeats, in :data:`FORMATS` order; an unknown name raises ``ValueError``."""
    asked = set(formats)
    unknown = sorted(asked - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown export format(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in asked)


def output_paths(out_dir: PathLike, stem: str, formats: Iterable[str]) -> list[Path]:
    """The paths an export of ``stem`` in ``formats`` writes (the instance masks as their folder)."""
    out = Path(out_dir)
    paths: list[Path] = []
    for fmt in check_formats(formats):
        if fmt == "palette":
            paths.append(out / f"{stem}.png")
        elif fmt == "index":
            paths.append(out / f"{stem}_index.png")
        elif fmt == "overlay":
            paths.append(out / f"{stem}_overlay.png")
        elif fmt == "instances":
            paths += [instances_json_path(out, stem), instances_mask_dir(out, stem)]
        else:
            paths.append(out / f"{stem}_coco.json")
    return paths


def existing_outputs(out_dir: PathLike, stem: str, formats: Iterable[str]) -> list[Path]:
    """Those of :func:`output_paths` that already exist (a mask folder counts when it is not empty)."""
    return [p for p in output_paths(out_dir, stem, formats) if _exists(p)]


def folder_output_paths(out_dir: PathLike, image_paths: Sequence[PathLike], formats: Iterable[str]) -> list[Path]:
    """The paths :func:`export_folder` writes for these images: per-image files, then ``coco.json``."""
    fmts = check_formats(formats)
    per_image = tuple(f for f in fmts if f != "coco")
    paths: list[Path] = []
    seen: set[str] = set()
    for image_path in image_paths:
        paths += output_paths(out_dir, _unique_stem(Path(image_path), seen), per_image)
    if "coco" in fmts:
        paths.append(Path(out_dir) / FOLDER_COCO_NAME)
    return paths


def existing_folder_outputs(
    out_dir: PathLike, image_paths: Sequence[PathLike], formats: Iterable[str]
) -> list[Path]:
    """Those of :func:`folder_output_paths` that already exist (to ask the user before overwriting)."""
    return [p for p in folder_output_paths(out_dir, image_paths, formats) if _exists(p)]


def instance_records(
    result: SegmentationResult, label: np.ndarray | None = None, *, min_area: int = MIN_COMPONENT_AREA
) -> list[InstanceRecord]:
    """The instances of ``result``: included proposals with a non-empty own mask, else label components.

    ``label`` (``(H, W)`` ints, default ``result.label``): the label map as exported, hand edits included. Where
    it differs from ``result.label``, a proposal's mask loses the pixels painted another class (one with no
    pixel of its class left is dropped), and the painted pixels no instance of their class covers become
    instances too: each such region joins the instance of its class it touches, or stands alone as ``source``
    "edit" (score 1.0). Without proposals, instances are the connected components of ``label``; their ``score`` is the mean
    probability of their class over their pixels.
    """
    label = result.label if label is None else _check_label(label, result)
    names = result.class_names
    classes = [c for c in range(len(names)) if not is_background(c, names)]
    if result.mode == "instances" and result.instance_scores is not None:
        painted = label != result.label
        has_edits = bool(painted.any())
        records = []
        for i in range(result.num_proposals):
            if not result.include[i]:
                continue
            mask, cls, prob = result.instance_mask(i)
            if has_edits:
                shows_cls = label == cls
                mask &= ~painted | shows_cls
                if not (mask & shows_cls).any():
                    continue  # painted over: none of its pixels shows its class any more
            if not mask.any():
                continue
            records.append(InstanceRecord(
                mask=mask, class_id=cls, score=prob, index=i,
                source="user_box" if result.from_user[i] else "proposal",
                box=tuple(float(v) for v in result.boxes[i]), objectness=float(result.proposal_scores[i]),
            ))
        if has_edits:
            records += _painted_regions(records, label, painted, classes, result.num_proposals, min_area)
        return records
    if result.mode == "instances" and result.num_proposals:
        log.info("the run kept no per-proposal maps: exporting connected components of the label map instead")
    records = []
    for k, (cls, mask) in enumerate(label_components(label, classes, min_area=min_area)):
        records.append(InstanceRecord(mask=mask, class_id=cls, score=_mean_probability(result, cls, mask),
                                      index=k, source="component"))
    return records


def _painted_regions(
    records: list[InstanceRecord], label: np.ndarray, painted: np.ndarray, classes: Sequence[int],
    first_index: int, min_area: int,
) -> list[InstanceRecord]:
    """Hand-painted pixels of ``classes`` that no record of their class covers: each 8-connected region is added
    to the first record of its class it touches (``records`` are updated in place), else returned as a new
    ``"edit"`` record numbered from ``first_index``."""
    covered = np.zeros(label.shape, bool)
    for rec in records:
        covered |= rec.mask & (label == rec.class_id)
    loose = np.where(painted & ~covered, label.astype(np.int64), -1)
    kernel = np.ones((3, 3), np.uint8)
    added: list[InstanceRecord] = []
    for cls, region in label_components(loose, classes, min_area=1):
        grown = cv2.dilate(region.astype(np.uint8), kernel).astype(bool)
        host = next((r for r in records if r.class_id == cls and (r.mask & grown).any()), None)
        if host is not None:
            np.logical_or(host.mask, region, out=host.mask)
        elif region.sum() >= min_area:
            added.append(InstanceRecord(mask=region, class_id=cls, score=1.0, index=first_index + len(added),
                                        source="edit"))
    return added


def export_result(
    out_dir: PathLike,
    stem: str,
    image: np.ndarray,
    result: SegmentationResult,
    formats: Iterable[str],
    *,
    overwrite: bool = False,
    label: np.ndarray | None = None,
    image_name: str | None = None,
) -> list[Path]:
    """Write ``result`` for the image ``image`` (``(H, W, 3) uint8`` RGB) in ``formats``; return the files written.

    ``label``: an edited ``(H, W)`` label map to export instead of ``result.label`` (also the source of
    connected-component instances). ``image_name``: the image's file name recorded in the JSON files (default
    ``stem``). Raises :class:`OutputError` naming the file when an output exists and ``overwrite`` is False
    (nothing is written then), naming the folder when it cannot be created or written, or naming the file on a
    disk error.
    """
    written, _ = _export_one(out_dir, stem, image, result, check_formats(formats), overwrite=overwrite,
                             label=label, image_name=image_name)
    return written


def export_folder(
    items: Iterable[tuple[Path, np.ndarray, SegmentationResult] | tuple[Path, np.ndarray, SegmentationResult,
                                                                        np.ndarray | None]],
    out_dir: PathLike,
    formats: Iterable[str],
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    coco_name: str = FOLDER_COCO_NAME,
) -> list[Path]:
    """Export ``(image path, image, result[, edited label])`` items (consumed lazily, one at a time) into
    ``out_dir``; an item's edited ``(H, W)`` label map, when given and not None, replaces ``result.label``.

    Every format but ``coco`` is written per image as :func:`export_result` does, named after the image's stem
    (``a.png`` and ``a.jpg`` both present: the second becomes ``a_jpg``); ``coco`` writes one ``coco.json`` for
    all images, after the last one (``coco_name``: another name, e.g. one process's part). ``progress(done, total, "export")`` follows each image (``total`` 0 when
    ``items`` has no length); ``cancel`` is checked before each image (:class:`Cancelled` propagates and
    ``coco.json`` is not written). Raises :class:`OutputError` as :func:`export_result` does: for an existing
    ``coco.json`` before anything is written, for an image's existing output when that image comes (ask first
    with :func:`existing_folder_outputs`).
    """
    fmts = check_formats(formats)
    out = _prepare_folder(out_dir)
    coco_path = out / coco_name
    want_coco = "coco" in fmts
    if want_coco and not overwrite:
        _refuse_existing([coco_path] if coco_path.exists() else [])
    per_image = tuple(f for f in fmts if f != "coco")
    total = len(items) if isinstance(items, Sized) else 0
    seen: set[str] = set()
    images: list[dict] = []
    annotations: list[dict] = []
    class_names: list[str] | None = None
    written: list[Path] = []
    for done, item in enumerate(items, start=1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        image_path, image, result = Path(item[0]), item[1], item[2]
        label = item[3] if len(item) > 3 else None
        stem = _unique_stem(image_path, seen)
        records = None
        if per_image:
            files, records = _export_one(out, stem, image, result, per_image, overwrite=overwrite, label=label,
                                         image_name=image_path.name)
            written += files
        if want_coco:
            if class_names is None:
                class_names = list(result.class_names)
            elif list(result.class_names) != class_names:
                raise DeconvGuiError(
                    f"segmented with other classes ({result.class_names}) than the images before it "
                    f"({class_names}); one COCO file cannot hold both", image_path)
            image_id = len(images) + 1
            images.append(coco_image(image_id, image_path.name, result.image_hw))
            records = instance_records(result, label) if records is None else records
            annotations += coco_annotations(records, image_id, first_id=len(annotations) + 1)
        if progress is not None:
            progress(done, total, "export")
    if want_coco and class_names is not None:
        written.append(write_coco(coco_path, images, annotations, class_names))
    return written


def _export_one(
    out_dir: PathLike,
    stem: str,
    image: np.ndarray,
    result: SegmentationResult,
    fmts: tuple[str, ...],
    *,
    overwrite: bool,
    label: np.ndarray | None,
    image_name: str | None,
) -> tuple[list[Path], list[InstanceRecord] | None]:
    """:func:`export_result` returning also the instance records it computed (``None`` when it needed none)."""
    image = np.asarray(image)
    if image.shape != (*result.image_hw, 3):
        raise ValueError(f"image {image.shape} does not match the result's size {result.image_hw}")
    label = result.label if label is None else _check_label(label, result)
    out = _prepare_folder(out_dir)
    if not overwrite:
        _refuse_existing(existing_outputs(out, stem, fmts))
    palette = palette_for(np.asarray(result.palette).tolist())
    names = list(result.class_names)
    records: list[InstanceRecord] | None = None
    written: list[Path] = []
    for fmt in fmts:
        path = output_paths(out, stem, (fmt,))[0]  # for instances: the JSON
        if fmt == "palette":
            write_palette_png(path, label, palette)
        elif fmt == "index":
            write_index_png(path, label)
        elif fmt == "overlay":
            write_overlay_png(path, image, label, palette)
        else:
            records = instance_records(result, label) if records is None else records
            if fmt == "instances":
                written += write_instances(out, stem, result.image_hw, names, records, image_name=image_name)
                continue
            image_entry = coco_image(1, image_name or stem, result.image_hw)
            write_coco(path, [image_entry], coco_annotations(records, image_id=1), names)
        written.append(path)
    return written, records


def _prepare_folder(out_dir: PathLike) -> Path:
    """The checked output folder, with instance exports a kill interrupted finished (once per process) and our
    stale temporaries removed (see :func:`require_writable_folder`)."""
    if first_visit(out_dir, "instance exports"):
        recover_instance_exports(out_dir)
    return require_writable_folder(out_dir)


def _refuse_existing(existing: list[Path]) -> None:
    if existing:
        more = f" (and {len(existing) - 1} more output(s))" if len(existing) > 1 else ""
        raise OutputError(f"already exists, not overwriting{more}", existing[0])


def _exists(path: Path) -> bool:
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


def _unique_stem(image_path: Path, seen: set[str]) -> str:
    """``image_path``'s stem, or its name with dots as underscores when an earlier image took that stem."""
    stem = image_path.stem
    if stem in seen:
        stem = image_path.name.replace(".", "_")
        base, n = stem, 2
        while stem in seen:
            stem, n = f"{base}_{n}", n + 1
    seen.add(stem)
    return stem


def _check_label(label: np.ndarray, result: SegmentationResult) -> np.ndarray:
    label = np.asarray(label)
    if label.shape != tuple(result.image_hw):
        raise ValueError(f"label {label.shape} does not match the result's size {result.image_hw}")
    return label


def _mean_probability(result: SegmentationResult, cls: int, mask: np.ndarray) -> float:
    probs = result.probabilities
    if probs is None or probs.ndim != 3 or probs.shape[1:] != mask.shape or cls >= probs.shape[0]:
        return 0.0
    return float(probs[cls][mask].mean())
