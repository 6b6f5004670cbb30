"""The models the app runs and the jobs it sends to its worker thread, Qt-free.

:class:`Engine` holds the main model, the optional ensemble partner and the proposal settings; its ``*_job``
methods return plain functions ``job(progress, cancel) -> value`` that a worker thread runs (see
``deconv_gui.ui.workers``). Jobs never touch the GUI; their values are dataclasses of numpy arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from deconv_gui.core.cancel import CancelToken, ProgressCallback, no_progress
from deconv_gui.core.errors import CheckpointError, DeconvGuiError
from deconv_gui.core.palette import colourise
from deconv_gui.document.session import (
    ImageSession,
    ProposalSummary,
    ViewChoices,
    carried_include,
    class_boundaries,
    summarise_proposals,
)
from deconv_gui.inference import result_files
from deconv_gui.inference.cancellable import cancellable
from deconv_gui.inference.combine import CombineCache
from deconv_gui.inference.pipeline import PipelineOptions, Segmenter, edge_box_config, recombine
from deconv_gui.inference.result import RawMaps, SegmentationResult
from deconv_gui.inference.runner import ModelRunner, RunnerOptions
from deconv_gui.io.images import read_image
from deconv_gui.proposals.edge_boxes import EdgeBoxProposer

log = logging.getLogger(__name__)

Job = Callable[[ProgressCallback, CancelToken], Any]
SavedEdits = Callable[[Path, np.ndarray], "tuple[np.ndarray, np.ndarray] | None"]
"""``(image path, image) -> (label (H, W) uint8, edited (H, W) bool)`` autosaved edits, or None."""
APP_CPU_CHUNK = 2
"""Crops per forward pass on the CPU in the app (the CLI uses 8): quicker progress and cancel."""
BOUNDARY_RGBA = (255, 255, 255, 230)


@dataclass
class Rendered:
    """A result ready to draw: ``label_rgb`` ``(H, W, 3) uint8`` class colours, ``boundary_rgba``
    ``(H, W, 4) uint8`` class borders (transparent elsewhere)."""

    path: Path
    shown: SegmentationResult
    label_rgb: np.ndarray
    boundary_rgba: np.ndarray
    raw: RawMaps | None = None
    """New raw maps to adopt (a run or an added box), or None (a re-combination of the session's)."""
    summaries: list[ProposalSummary] | None = None
    combine: CombineCache | None = None
    """The cache that serves ``raw``."""
    image: np.ndarray | None = None
    """The image, when the run read it itself (a folder run)."""
    base: RawMaps | None = None
    """The cached result this was recombined from; the UI drops it when the session's cache moved on."""


def render(path: Path, shown: SegmentationResult) -> Rendered:
    """Colour the label map and its class boundaries (numpy; runs on the worker for big images)."""
    label_rgb = colourise(shown.label, _palette256(shown.palette))
    edges = class_boundaries(shown.label)
    boundary = np.zeros((*edges.shape, 4), np.uint8)
    boundary[edges] = BOUNDARY_RGBA
    return Rendered(path, shown, label_rgb, boundary)


def _palette256(palette: np.ndarray) -> np.ndarray:
    pal = np.zeros((256, 3), np.uint8)
    pal[: len(palette)] = np.asarray(palette, np.uint8)[:256]
    return pal


def _name(path: Path | None) -> str:
    return Path(path).name if path is not None else "(unnamed)"


def load_runner(path: str | Path, device: str) -> ModelRunner:
    """A runner for the checkpoint at ``path`` on ``device`` (auto/cpu/cuda), small chunks on the CPU."""
    runner = ModelRunner.from_checkpoint(str(path), RunnerOptions(device=device))
    if runner.device.type == "cpu":
        runner.chunk_size = APP_CPU_CHUNK
    return runner


class Engine:
    """Main model + optional partner + proposal settings; builds Segmenters and jobs."""

    def __init__(self) -> None:
        self.runner: ModelRunner | None = None
        self.weights: Path | None = None
        self.partner: ModelRunner | None = None
        self.partner_weights: Path | None = None
        self._partner_aside: tuple[ModelRunner, Path | None] | None = None
        """A partner whose classes did not match the model loaded since; it comes back with a matching one."""
        self.device = "auto"
        self.num_proposals = 0
        """Edge Box proposals kept per image; 0 = the model's own ``meta.proposals`` setting (else DeconvNet's 50)."""
        self.edge_model_file: str | None = None
        self._proposer: EdgeBoxProposer | None = None

    @property
    def ready(self) -> bool:
        return self.runner is not None

    def describe(self) -> str:
        if self.runner is None:
            return "no model"
        return f"{self.weights.name if self.weights else 'model'} on {self.runner.describe_device()}"

    def set_runner(self, runner: ModelRunner, path: Path) -> str | None:
        """Use ``runner`` as the model. The ensemble partner stays (e.g. after "Use this checkpoint"); one whose
        classes differ is set aside and comes back with a model of its classes. Returns what the user should be
        told about the partner, or None."""
        names = runner.meta.class_names
        note = None
        if self.partner is not None and self.partner.meta.class_names != names:
            self._partner_aside = (self.partner, self.partner_weights)
            note = (f"ensemble partner {_name(self.partner_weights)} set aside: its classes differ from "
                    f"{Path(path).name}'s (it comes back with a model of its classes)")
            self.partner, self.partner_weights = None, None
        elif self.partner is None and self._partner_aside is not None \
                and self._partner_aside[0].meta.class_names == names:
            self.partner, self.partner_weights = self._partner_aside
            self._partner_aside = None
            note = f"ensemble partner {_name(self.partner_weights)} back: {Path(path).name} has its classes"
        before = self.runner.meta.proposals if self.runner is not None else {}
        self.runner, self.weights = runner, Path(path)
        if runner.meta.proposals != before:
            self._proposer = None  # the new model carries other proposal settings
        return note

    def set_partner(self, runner: ModelRunner | None, path: Path | None) -> None:
        if runner is not None and self.runner is not None and runner.meta.class_names != self.runner.meta.class_names:
            raise CheckpointError(
                f"the partner's classes ({', '.join(runner.meta.class_names)}) differ from the model's "
                f"({', '.join(self.runner.meta.class_names)})", path,
            )
        self.partner, self.partner_weights = runner, path
        self._partner_aside = None

    def set_proposals(self, num_proposals: int, edge_model_file: str | None) -> None:
        if (num_proposals, edge_model_file) != (self.num_proposals, self.edge_model_file):
            self.num_proposals, self.edge_model_file = int(num_proposals), edge_model_file
            self._proposer = None

    def model_top_n(self) -> int:
        """The proposal count the loaded model asks for (``meta.proposals``, else DeconvNet's 50)."""
        return edge_box_config(self.runner.meta if self.runner is not None else None).top_n

    def proposer(self) -> EdgeBoxProposer:
        if self._proposer is None:
            meta = self.runner.meta if self.runner is not None else None
            self._proposer = EdgeBoxProposer(edge_box_config(
                meta, top_n=self.num_proposals or None, edge_model_path=self.edge_model_file or None))
        return self._proposer

    def segmenter(self, choices: ViewChoices) -> Callable[[], Segmenter]:
        """A factory for a Segmenter with the current models, to call on the worker: building the proposer can
        load a structured-edge model file (slow, and its errors belong in the job's report)."""
        if self.runner is None:
            raise CheckpointError("no model loaded: File → Load weights…")
        runner, partner = self.runner, self.partner
        options = PipelineOptions(
            aggregation=choices.aggregation, ensemble="mean" if partner is not None else "off",
            crf=False, keep_instance_scores=True,
        )
        return lambda: Segmenter(runner, partner=partner, proposer=self.proposer(), options=options)

    def _models(self) -> list[nn.Module]:
        return [r.model for r in (self.runner, self.partner) if r is not None]

    def crf_device(self) -> str:
        return "cuda" if self.runner is not None and self.runner.device.type == "cuda" else "cpu"

    # --- jobs (run on the worker thread) -------------------------------------------------------------------

    @staticmethod
    def read_job(path: Path) -> Job:
        def job(progress: ProgressCallback, cancel: CancelToken) -> np.ndarray:
            progress(0, 1, "reading")
            return read_image(path)

        return job

    def segment_job(self, session: ImageSession, choices: ViewChoices, boxes: np.ndarray | None = None) -> Job:
        """Segment the session's image, then recombine with the user's choices and render."""
        segmenter = self.segmenter(choices)
        models = self._models()
        path, image = session.path, session.image
        previous = session.user_include.copy()  # a re-run (or a reopened image) keeps the user's ticks
        device = self.crf_device()

        def job(progress: ProgressCallback, cancel: CancelToken) -> Rendered:
            with cancellable(models, cancel):
                raw = segmenter().segment(image, boxes=boxes, progress=progress, cancel=cancel)
            progress(0, 1, "summarising")
            summaries = summarise_proposals(raw)
            cancel.raise_if_cancelled()
            include = carried_include(previous, raw.num_proposals)
            combine = CombineCache(raw, image)
            out = render(path, _recombine(raw, image, choices, include, device, progress, combine))
            out.raw, out.summaries, out.combine = raw, summaries, combine
            return out

        return job

    def recombine_job(self, session: ImageSession, choices: ViewChoices) -> Job:
        """Re-aggregate (+ensemble +CRF) from the cached maps — no network — and render."""
        raw, image, include, path = session.raw, session.image, session.user_include.copy(), session.path
        device = self.crf_device()
        if raw is None:
            raise ValueError("nothing to recombine")
        combine = session.combine_cache(raw)

        def job(progress: ProgressCallback, cancel: CancelToken) -> Rendered:
            out = render(path, _recombine(raw, image, choices, include, device, progress, combine))
            out.base = raw
            return out

        return job

    def add_box_job(self, session: ImageSession, choices: ViewChoices, box: np.ndarray) -> Job:
        """Run only the crop of ``box`` (x0, y0, x1, y1), append it as a user proposal, recombine, render."""
        segmenter = self.segmenter(choices)
        raw, image, path = session.raw, session.image, session.path
        include = np.append(session.user_include, True)
        device = self.crf_device()
        if raw is None:
            raise ValueError("segment the image before adding boxes")
        previous = session.combine_cache(raw)
        summaries = list(session.summaries)

        def job(progress: ProgressCallback, cancel: CancelToken) -> Rendered:
            progress(0, 1, "new box")
            updated = segmenter().add_box(raw, image, box)
            combine = previous.serving(updated)
            out = render(path, _recombine(updated, image, choices, include, device, progress, combine))
            out.raw, out.combine, out.base = updated, combine, raw
            out.summaries = summaries + summarise_proposals(updated, start=raw.num_proposals)
            return out

        return job

    # --- look-ahead jobs (while the user looks: quiet, cancelled by anything the user asks for) ---------------

    def crf_ahead_job(self, session: ImageSession, choices: ViewChoices) -> Job:
        """Refine the session's current recombination with the CRF into its cache (nothing is shown): switching
        the CRF on afterwards finds it there. Returns None."""
        raw, image, include = session.raw, session.image, session.user_include.copy()
        if raw is None:
            raise ValueError("nothing to refine")
        combine, device = session.combine_cache(raw), self.crf_device()
        options = replace(choices.pipeline_options(), crf=True)

        def job(progress: ProgressCallback, cancel: CancelToken) -> None:
            recombine(raw, image, options, include=include, top_n=choices.top_n, device=device, cache=combine,
                      cancel=cancel)

        return job

    def prefetch_job(self, path: Path, choices: ViewChoices,
                     has_saved_choices: Callable[[Path, np.ndarray], bool]) -> Job:
        """Read and segment the next image before it is asked for: a Rendered with its image (as a folder run
        item), or None when the image has saved ticks or boxes (those are re-applied when it is opened)."""

        def job(progress: ProgressCallback, cancel: CancelToken) -> Rendered | None:
            image = read_image(path)
            if has_saved_choices(path, image):
                return None
            cancel.raise_if_cancelled()
            out = self.segment_job(ImageSession(path, image), choices)(no_progress, cancel)
            out.image = image
            return out

        return job

    def partner_job(self, session: ImageSession) -> Job:
        """The partner's whole-image scores for the session's image (when the partner came after the run)."""
        partner, image = self.partner, session.image
        if partner is None:
            raise ValueError("no ensemble partner loaded")

        def job(progress: ProgressCallback, cancel: CancelToken) -> np.ndarray:
            progress(0, 1, "ensemble partner")
            with cancellable([partner.model], cancel):
                return partner.whole_image_scores(image)

        return job

    def folder_job(
        self, files: list[Path], choices: ViewChoices, post: Callable[[object], None],
        finish: Callable[[Rendered], object] = lambda out: out,
    ) -> Job:
        """Segment ``files`` one by one; ``post(finish(Rendered) | DeconvGuiError)`` is called (on the worker)
        after each image (``finish``: e.g. the UI's pictures of it, made on the worker). The job returns
        ``(succeeded, failed)``."""

        def job(progress: ProgressCallback, cancel: CancelToken) -> tuple[int, int]:
            ok = failed = 0
            for k, path in enumerate(files):
                cancel.raise_if_cancelled()
                progress(k, len(files), f"image {k + 1}/{len(files)}: {path.name}")
                try:
                    session = ImageSession(path, read_image(path))
                    out = self.segment_job(session, choices)(no_progress, cancel)
                    out.image = session.image
                    post(finish(out))
                    ok += 1
                except DeconvGuiError as exc:
                    failed += 1
                    post(exc)
            progress(len(files), len(files), "folder done")
            return ok, failed

        return job

    @staticmethod
    def export_job(session: ImageSession, out_dir: Path, formats: set[str], *, overwrite: bool) -> Job:
        """Write the session's shown result, with its hand edits on top, in ``formats`` (see
        ``deconv_gui.inference.result_files``)."""
        image, shown, path = session.image, session.shown, session.path
        if shown is None:
            raise ValueError(f"{path.name} has no result to export")
        label = session.edited_label()

        def job(progress: ProgressCallback, cancel: CancelToken) -> list[Path]:
            progress(0, 1, "export")
            return result_files.export_result(out_dir, path.stem, image, shown, formats, overwrite=overwrite,
                                         image_name=path.name, label=label)

        return job

    def export_folder_job(
        self, files: list[Path], cached: dict[Path, tuple], choices: ViewChoices,
        out_dir: Path, formats: set[str], *, overwrite: bool, saved_edits: SavedEdits | None = None,
    ) -> Job:
        """Export every file: ``cached`` ``(image, result[, edited label])`` as they are, the others segmented
        first (one at a time), with their autosaved edits (``saved_edits(path, image)``) on top."""

        def job(progress: ProgressCallback, cancel: CancelToken) -> list[Path]:
            def items() -> Iterator[tuple[Path, np.ndarray, SegmentationResult, np.ndarray | None]]:
                for path in files:
                    if path in cached:
                        image, shown, *rest = cached[path]
                        label = rest[0] if rest else None
                    else:
                        try:
                            image = read_image(path)
                        except DeconvGuiError as exc:
                            log.warning("export: skipping %s", exc)
                            continue
                        shown = self.segment_job(ImageSession(path, image), choices)(no_progress, cancel).shown
                        edits = saved_edits(path, image) if saved_edits is not None else None
                        label = None if edits is None else np.where(edits[1], edits[0], shown.label)
                    yield path, image, shown, label

            return result_files.export_folder(items(), out_dir, formats, overwrite=overwrite,
                                         progress=lambda d, _t, st: progress(d, len(files), st), cancel=cancel)

        return job

    @staticmethod
    def load_job(path: Path, device: str) -> Job:
        def job(progress: ProgressCallback, cancel: CancelToken) -> ModelRunner:
            progress(0, 1, "loading weights")
            return load_runner(path, device)

        return job

    @staticmethod
    def import_caffe_job(source: Path, out: Path, device: str) -> Job:
        """Convert the Caffe model ``source`` to the checkpoint ``out`` (nothing written on failure), then load
        it: the job's value is the :class:`ModelRunner`, like :meth:`load_job`'s."""

        def job(progress: ProgressCallback, cancel: CancelToken) -> ModelRunner:
            from deconv_gui.models.caffe_import import import_caffe

            progress(0, 2, "importing Caffe weights")
            summary = import_caffe(source, out)
            log.info("imported %s: %s", source, summary.describe())
            progress(1, 2, "loading weights")
            return load_runner(out, device)

        return job


def _recombine(
    raw: RawMaps, image: np.ndarray, choices: ViewChoices, include: np.ndarray, device: str,
    progress: ProgressCallback, combine: CombineCache,
) -> SegmentationResult:
    if choices.crf:
        progress(0, 1, "CRF")
    return recombine(raw, image, choices.pipeline_options(), include=include, top_n=choices.top_n, device=device,
                     cache=combine)
