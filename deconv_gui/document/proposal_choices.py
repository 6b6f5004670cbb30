"""The user's per-image proposal choices — boxes drawn (B) and proposals unticked — kept beside the autosaved
hand edits, so reopening an image (in a later session too) brings them back, Qt-free.

File: the edits autosave's path with ``.proposals.json`` instead of ``.edits.png`` (see
:mod:`deconv_gui.document.autosave`), written atomically whenever a choice changes:
``{"format": "deconv_gui proposal choices", "version": 1, "image": name, "digest": <pixels' hash>,
"edge_boxes": N, "boxes": [[x0, y0, x1, y1], …], "excluded": [i, …]}``. ``boxes`` are the drawn boxes in order
(image pixels, exclusive); ``excluded`` the 0-based indices of unticked proposals over the Edge Boxes
(``0..N-1``) and then the drawn boxes (``N..``). No file while nothing is drawn or unticked. A file made for
another image (or the same file since changed) is ignored with a logged warning, never an error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deconv_gui.document.autosave import SUFFIX as EDITS_SUFFIX
from deconv_gui.document.autosave import EditsStore, image_digest
from deconv_gui.io.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT_NAME = "deconv_gui proposal choices"
VERSION = 1
SUFFIX = ".proposals.json"


@dataclass(frozen=True)
class ProposalChoices:
    """Drawn ``boxes`` (x0, y0, x1, y1) and ``excluded`` proposal indices; ``edge_boxes``: how many Edge Box
    proposals the run had (the drawn boxes follow them)."""

    edge_boxes: int
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    excluded: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.boxes and not self.excluded

    def edge_include(self) -> np.ndarray:
        """``(edge_boxes,)`` bool: the Edge Box proposals' ticks (what a new run starts from)."""
        include = np.ones(self.edge_boxes, bool)
        include[[i for i in self.excluded if i < self.edge_boxes]] = False
        return include

    def excluded_boxes(self) -> list[int]:
        """Indices of the drawn boxes the user unticked (over all proposals)."""
        return [i for i in self.excluded if i >= self.edge_boxes]


def choices_of(from_user: np.ndarray, boxes: np.ndarray, include: np.ndarray) -> ProposalChoices:
    """The choices in a session's cached result: ``from_user`` ``(N,)`` bool, ``boxes`` ``(N, 4)``, the user's
    ``include`` ``(N,)`` bool."""
    drawn = np.flatnonzero(from_user)
    return ProposalChoices(
        edge_boxes=int(len(from_user) - len(drawn)),
        boxes=tuple(tuple(float(v) for v in boxes[i]) for i in drawn),  # type: ignore[misc]
        excluded=tuple(int(i) for i in np.flatnonzero(~np.asarray(include, bool))),
    )


def choices_path(store: EditsStore, image_path: Path) -> Path:
    edits = store.path_for(image_path)
    return edits.with_name(edits.name[: -len(EDITS_SUFFIX)] + SUFFIX)


def save_choices(store: EditsStore, image_path: Path, image: np.ndarray, choices: ProposalChoices) -> None:
    """Write (or, when ``choices`` is empty, remove) the file; a failure is logged, never raised (the edits'
    autosave reports an unwritable folder to the user)."""
    path = choices_path(store, image_path)
    try:
        if choices.empty:
            path.unlink(missing_ok=True)
            return
        data = {"format": FORMAT_NAME, "version": VERSION, "image": Path(image_path).name,
                "digest": image_digest(image), "edge_boxes": choices.edge_boxes,
                "boxes": [list(b) for b in choices.boxes], "excluded": list(choices.excluded)}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - OSError or an OutputError: never lose the session over it
        log.warning("%s: cannot save the proposal choices (%s)", path, exc)


def load_choices(store: EditsStore, image_path: Path, image: np.ndarray) -> ProposalChoices | None:
    """The saved choices of ``image_path`` (pixels ``image``), or None (none saved, unreadable, other image)."""
    path = choices_path(store, image_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT_NAME or data.get("digest") != image_digest(image):
            log.warning("%s: ignoring proposal choices made for another image", path)
            return None
        boxes = tuple(tuple(float(v) for v in b) for b in data["boxes"] if len(b) == 4)
        return ProposalChoices(int(data["edge_boxes"]), boxes,  # type: ignore[arg-type]
                               tuple(int(i) for i in data["excluded"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s: ignoring unreadable proposal choices (%s)", path, exc)
        return None
