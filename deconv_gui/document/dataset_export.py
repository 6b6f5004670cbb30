""""Dataset export": the edited images of a folder as a VOC-style tree that ``deconv-gui train`` reads, Qt-free.

Only images with hand edits are exported (the point is to train on corrected masks). Each one's label map is
its edits on top of the prediction: the cached result, else a fresh run when a model is loaded, else void
(only the edited pixels then count).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from deconv_gui.core.cancel import CancelToken, ProgressCallback, no_progress
from deconv_gui.core.errors import DeconvGuiError, OutputError
from deconv_gui.core.palette import VOID, palette_for
from deconv_gui.document.jobs import Engine, Job, SavedEdits
from deconv_gui.document.session import ImageSession, ViewChoices
from deconv_gui.inference.result import SegmentationResult
from deconv_gui.io.images import read_image
from deconv_gui.io.voc_export import write_voc_dataset

Cached = tuple[np.ndarray, SegmentationResult | None, np.ndarray]
"""``(image, result or None, edited label (H, W) uint8)`` of an image open in the app."""


def dataset_export_job(
    engine: Engine, files: list[Path], cached: dict[Path, Cached], choices: ViewChoices, out_dir: Path,
    *, has_saved_edits: Callable[[Path], bool], saved_edits: SavedEdits, overwrite: bool = False,
    val_every: int = 5,
) -> Job:
    """A job writing the edited images among ``files`` to ``out_dir``: ``cached`` ones (edits taken on the GUI
    thread) and those with an autosave (``has_saved_edits``, read with ``saved_edits``)."""
    source = engine.runner.meta if engine.runner is not None else None
    names = list(source.class_names) if source is not None else []
    colours = list(source.palette) if source is not None else None
    for _image, result, _label in cached.values():
        if not names and result is not None:
            names, colours = list(result.class_names), np.asarray(result.palette).tolist()
    if not names:
        raise OutputError("load the model the edits were made for: its class names go into classes.txt", out_dir)
    wanted = [p for p in files if p in cached or has_saved_edits(p)]

    def job(progress: ProgressCallback, cancel: CancelToken) -> list[Path]:
        seen: set[str] = set()

        def items() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
            for k, path in enumerate(wanted):
                cancel.raise_if_cancelled()
                progress(k, len(wanted), f"dataset export: {path.name}")
                if path in cached:
                    image, _result, label = cached[path]
                else:
                    try:
                        image = read_image(path)
                    except DeconvGuiError:
                        continue
                    edits = saved_edits(path, image)
                    if edits is None:
                        continue
                    prediction = np.full(image.shape[:2], VOID, np.uint8)
                    if engine.ready:
                        session = ImageSession(path, image)
                        prediction = engine.segment_job(session, choices)(no_progress, cancel).shown.label
                    label = np.where(edits[1], edits[0], prediction)
                yield _unique_id(path, seen), image, label

        return write_voc_dataset(out_dir, items(), names, palette_for(colours), val_every=val_every,
                                 overwrite=overwrite, progress=lambda d, _t, s: progress(d, len(wanted), s),
                                 cancel=cancel)

    return job


def _unique_id(path: Path, seen: set[str]) -> str:
    stem, n = path.stem.replace(" ", "_"), 2
    base = stem
    while stem in seen:
        stem, n = f"{base}_{n}", n + 1
    seen.add(stem)
    return stem
