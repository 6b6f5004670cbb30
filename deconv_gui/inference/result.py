"""What one segmentation run produces: the network's :class:`RawMaps`, and the :class:`SegmentationResult`
combined from them (kept together, so a GUI can re-combine without the network)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deconv_gui.core.aggregation import resize_to_box, softmax


@dataclass(kw_only=True)
class RawMaps:
    """What the network produced for one image — everything a label map is combined from, nothing combined yet.

    :meth:`deconv_gui.inference.pipeline.Segmenter.segment` returns it; :func:`deconv_gui.inference.pipeline.
    recombine` is the one way from it to a :class:`SegmentationResult` (for the CLI and the app alike).

    Shapes: ``H, W`` image size; ``N`` proposals; ``C`` classes; ``S`` network input size (224).

    - ``boxes``: ``(N, 4)`` int64 crop windows ``x0, y0, x1, y1`` (exclusive, after ×1.2 context, may reach
      past the image); ``proposal_scores``: ``(N,)`` float32 objectness (1.0 for user boxes).
    - ``instance_scores``: ``(N, C, S, S)`` float16 raw scores per proposal at network resolution, or ``None``
      when the run did not keep them (memory-bounded CLI runs).
    - ``from_user``: ``(N,)`` bool, boxes the user (or caller) gave rather than Edge Boxes.
    - ``base_scores``: ``(C, H, W)`` float32 whole-image raw scores that instance-wise aggregation starts from
      (datasets without a background class), or ``None`` (starts from 0, the paper).
    - ``partner_scores``: ``(C, H, W)`` float32 raw scores of the ensemble partner, or ``None``.
    - ``aggregated``: ``(C, H, W)`` float32 raw scores the run combined on its way — a whole-image model's
      scores (``mode="whole"``), or the max over all proposals streamed by a run that kept no per-instance
      maps — else ``None`` (the combination is :func:`recombine`'s).
    """

    image_hw: tuple[int, int]
    class_names: list[str]
    palette: np.ndarray
    boxes: np.ndarray
    proposal_scores: np.ndarray
    instance_scores: np.ndarray | None
    from_user: np.ndarray
    partner_scores: np.ndarray | None = None
    base_scores: np.ndarray | None = None
    aggregated: np.ndarray | None = None
    mode: str = "instances"
    timings: dict[str, float] = field(default_factory=dict)
    device: str = ""
    appended_to: int | None = None
    """``id()`` of the ``instance_scores`` array whose maps are this one's first ones (a drawn box was appended
    to those raw maps), else None: lets a cache carry its pasted proposals over without comparing the maps."""

    @property
    def num_proposals(self) -> int:
        return int(len(self.boxes))

    def instance_probabilities(self, index: int) -> tuple[np.ndarray, tuple[slice, slice]] | None:
        """Proposal ``index``'s own class probabilities over its visible box: ``((C, h, w) float32, (rows, cols))``."""
        if self.instance_scores is None:
            return None
        pasted = resize_to_box(self.instance_scores[index], self.boxes[index], self.image_hw)
        if pasted is None:
            return None
        patch, window = pasted
        return softmax(patch), window

    def instance_mask(self, index: int) -> tuple[np.ndarray, int, float]:
        """Proposal ``index`` as an instance: ``(mask (H, W) bool, class id, mean probability)``.

        The mask holds the pixels of its box where the proposal's own argmax is not background; the class is
        the most frequent foreground class there (0 with an empty mask).
        """
        h, w = self.image_hw
        mask = np.zeros((h, w), bool)
        inst = self.instance_probabilities(index)
        if inst is None:
            return mask, 0, 0.0
        probs, (rows, cols) = inst
        labels = probs.argmax(axis=0)
        fg = labels != 0
        if not fg.any():
            return mask, 0, 0.0
        cls = int(np.bincount(labels[fg], minlength=probs.shape[0])[1:].argmax() + 1)
        sel = labels == cls
        mask[rows, cols] = sel
        return mask, cls, float(probs[cls][sel].mean())


@dataclass(kw_only=True)
class SegmentationResult(RawMaps):
    """A label map and how it was combined: the :class:`RawMaps` it came from plus

    - ``aggregated``: ``(C, H, W)`` float32 aggregated raw scores (max/sum from 0 or the base) of the included
      proposals, or a whole-image model's raw scores in whole-image mode;
    - ``include``: ``(N,)`` bool, the proposals taking part in ``aggregated`` (user ticks ∧ top-N);
    - ``probabilities``: ``(C, H, W)`` float32 final class probabilities (after ensemble and CRF);
      ``label``: ``(H, W)`` uint8 argmax.
    """

    aggregated: np.ndarray
    probabilities: np.ndarray
    label: np.ndarray
    include: np.ndarray

