"""Overlay layers as plain data (napari-style: the Qt side binds widgets to these, tested without Qt)."""

from __future__ import annotations

from dataclasses import dataclass

LAYER_NAMES: tuple[str, ...] = ("label map", "winner", "boundaries", "edits", "instance mask", "proposal boxes")


@dataclass
class LayerState:
    """One overlay: shown or not, and its opacity in ``[0, 1]``."""

    name: str
    visible: bool = True
    opacity: float = 1.0

    def set_opacity(self, value: float) -> None:
        self.opacity = min(1.0, max(0.0, float(value)))


def default_layers() -> dict[str, LayerState]:
    """The app's overlays, bottom to top, with their starting visibility and opacity."""
    return {
        "label map": LayerState("label map", True, 0.5),
        "winner": LayerState("winner", False, 0.8),  # the inspector's: which proposal won each pixel (W)
        "boundaries": LayerState("boundaries", True, 0.8),
        "edits": LayerState("edits", True, 0.7),
        "instance mask": LayerState("instance mask", True, 0.6),
        "proposal boxes": LayerState("proposal boxes", True, 0.5),
    }


def pick_box(boxes: list[tuple[int, int, int, int]], x: float, y: float, candidates: list[int]) -> int | None:
    """The smallest of the ``candidates`` boxes (x0, y0, x1, y1 exclusive) that contains ``(x, y)``, or None."""
    best, best_area = None, None
    for i in candidates:
        x0, y0, x1, y1 = boxes[i]
        if x0 <= x < x1 and y0 <= y < y1:
            area = (x1 - x0) * (y1 - y0)
            if best_area is None or area < best_area:
                best, best_area = i, area
    return best
