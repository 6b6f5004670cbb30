"""Edge Box proposals of training images, computed once and kept on disk for stage 2 and later runs.

Layout: ``cache_dir/edgeboxes-{config hash}/{image file name}-{content hash}.npz`` holding every raw Edge Box
candidate of the image (``boxes (N, 4) float64`` xyxy exclusive, ``scores (N,) float32``, best first).

- The config hash covers only the settings that change the candidates (the EdgeBoxes parameters and the edge
  model); ``top_n``, ``min_side``, ``min_side_after_enlarge`` and ``enlarge`` are applied when reading, so
  changing them reuses the cache.
- The content hash (the first 12 hex digits of the file's SHA-1) keeps two datasets' ``0001.png`` apart and
  notices an image that changed.
- Files are written atomically, so parallel writers (DDP ranks, a killed run) never leave a partial file; a
  corrupt file is recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from deconv_gui.core.boxes import enlarge_boxes
from deconv_gui.io.atomic import atomic_path, clean_stale_temps_once
from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer
from deconv_gui.training.datasets import SegmentationDataset

log = logging.getLogger(__name__)

# Settings applied on read (see the module docstring); every other EdgeBoxConfig field keys the cache.
_READ_TIME_FIELDS = frozenset({"top_n", "min_side", "min_side_after_enlarge", "enlarge"})

TRAINING_EDGE_BOX_CONFIG = EdgeBoxConfig(top_n=200, min_side=32.0, min_side_after_enlarge=False)
"""Stage-2 default: many candidates (all proposals overlapping ground truth are used, not only the top 50 of
inference) and a small minimum side (objects in CamVid are often small)."""


def default_cache_dir() -> Path:
    """``$DECONV_GUI_CACHE/proposals``, else ``$XDG_CACHE_HOME/deconv_gui/proposals``, else
    ``~/.cache/deconv_gui/proposals`` — shared by runs, so a second run on the same images computes nothing."""
    if os.environ.get("DECONV_GUI_CACHE"):
        return Path(os.environ["DECONV_GUI_CACHE"]) / "proposals"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "deconv_gui" / "proposals"


def config_hash(config: EdgeBoxConfig) -> str:
    """12 hex digits identifying the candidate-affecting settings of ``config``."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in _READ_TIME_FIELDS}
    if fields.get("edge_model_path"):
        path = Path(fields["edge_model_path"])
        fields["edge_model_path"] = [path.name, path.stat().st_size if path.exists() else None]
    blob = json.dumps(fields, sort_keys=True).encode("utf-8")
    return hashlib.sha1(blob).hexdigest()[:12]


def _file_hash(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


class ProposalCache:
    """Edge Box proposals per image of a dataset, cached in ``cache_dir`` (see the module docstring)."""

    def __init__(self, cache_dir: str | Path | None = None,
                 config: EdgeBoxConfig = TRAINING_EDGE_BOX_CONFIG) -> None:
        self.config = config
        base = default_cache_dir() if cache_dir is None else Path(cache_dir)
        self.folder = base / f"edgeboxes-{config_hash(config)}"
        self._proposer: EdgeBoxProposer | None = None
        self._memo: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
        self.computed = 0  # images whose proposals this object computed (not read from disk)

    def path_for(self, image_path: Path) -> Path:
        """The cache file of ``image_path``."""
        return self.folder / f"{image_path.name}-{_file_hash(image_path)}.npz"

    def candidates(self, i: int, ds: SegmentationDataset) -> tuple[np.ndarray, np.ndarray]:
        """All raw candidates of image ``i``: ``(N, 4) float64`` xyxy and ``(N,) float32`` scores, best first."""
        image_path = Path(ds.image_paths[i])
        if image_path in self._memo:
            return self._memo[image_path]
        target = self.path_for(image_path)
        loaded = self._load(target)
        if loaded is None:
            if self._proposer is None:
                self._proposer = EdgeBoxProposer(self.config)
            boxes, scores = self._proposer.candidates(ds.image(i))
            boxes, scores = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float32)
            self.folder.mkdir(parents=True, exist_ok=True)
            clean_stale_temps_once(self.folder)
            with atomic_path(target) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, boxes=boxes, scores=scores)
            self.computed += 1
            loaded = boxes, scores
        self._memo[image_path] = loaded
        return loaded

    def boxes(self, i: int, ds: SegmentationDataset) -> np.ndarray:
        """``(N, 4) float64`` raw proposals of image ``i`` (before ×context): the candidates whose shorter side
        passes ``config.min_side`` (measured after ``enlarge`` when ``min_side_after_enlarge``), best
        ``config.top_n`` first. May be empty."""
        boxes, _ = self.candidates(i, ds)
        c = self.config
        measured = enlarge_boxes(boxes, c.enlarge) if c.min_side_after_enlarge else boxes
        shorter = np.minimum(measured[:, 2] - measured[:, 0], measured[:, 3] - measured[:, 1])
        keep = np.flatnonzero(shorter >= c.min_side)[: max(int(c.top_n), 0)]
        return boxes[keep]

    def precompute(self, ds: SegmentationDataset, *, progress: bool = True) -> None:
        """Compute (or check) the proposals of every image of ``ds``, with a tqdm bar."""
        for i in tqdm(range(len(ds)), desc="Edge Box proposals", unit="img", disable=not progress or None):
            self.candidates(i, ds)

    @staticmethod
    def _load(target: Path) -> tuple[np.ndarray, np.ndarray] | None:
        if not target.exists():
            return None
        try:
            with np.load(target, allow_pickle=False) as data:
                boxes = np.asarray(data["boxes"], np.float64).reshape(-1, 4)
                scores = np.asarray(data["scores"], np.float32).reshape(-1)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: unreadable proposal cache file (%s); recomputing", target, exc)
            return None
        if len(boxes) != len(scores):
            log.warning("%s: %d boxes but %d scores; recomputing", target, len(boxes), len(scores))
            return None
        return boxes, scores
