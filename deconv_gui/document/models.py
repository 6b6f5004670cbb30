"""The bundled checkpoints (``resources/weights/*.pt``) and a cheap look at any checkpoint's metadata."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from deconv_gui.core.errors import CheckpointError
from deconv_gui.io.checkpoints import FORMAT, ModelMeta

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
BUNDLED_WEIGHTS_DIR = RESOURCES / "weights"


@dataclass(frozen=True)
class ModelInfo:
    """A checkpoint file and what it says about itself."""

    path: Path
    meta: ModelMeta

    @property
    def label(self) -> str:
        """Menu text, e.g. ``"demo_synthetic — deconvnet ×0.25, 6 classes"``."""
        m = self.meta
        return f"{self.path.stem} — {m.architecture} ×{m.width:g}, {m.num_classes} classes"


def read_meta(path: str | os.PathLike[str]) -> ModelMeta:
    """A checkpoint's :class:`ModelMeta` without reading its weights into memory (``mmap``; weights_only).

    Raises CheckpointError naming the file when it is not a readable deconv_gui checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("file not found", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - every loader failure means "not a checkpoint we can read"
        raise CheckpointError(f"not a readable checkpoint ({type(exc).__name__})", path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError("not a deconv_gui checkpoint (no 'format' marker)", path)
    return ModelMeta.from_plain(payload.get("meta"), path)


def bundled_models(folder: Path = BUNDLED_WEIGHTS_DIR) -> list[ModelInfo]:
    """Every readable ``*.pt`` in ``folder``, sorted by name; unreadable files are logged and skipped."""
    found = []
    for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        try:
            found.append(ModelInfo(path, read_meta(path)))
        except CheckpointError as exc:
            log.warning("skipping bundled weights: %s", exc)
    return found
