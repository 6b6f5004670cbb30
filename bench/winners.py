"""Time of the inspector's winner map (and of one hover explanation) next to the aggregation it explains.

    .venv/bin/python bench/winners.py                      # 480×360, 50 proposals, 11 classes
    .venv/bin/python bench/winners.py --size 960x720 --proposals 200 --classes 21

Random boxes of 20–60 % of the image side with random ``(C, 224, 224)`` float16 score maps; the label map is
the aggregation's argmax. Prints the median of ``--repeat`` runs in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from deconv_gui.core.aggregation import aggregate_instances, label_map, softmax
from deconv_gui.inference.explain import compute_winners, explain_pixel
from deconv_gui.inference.result import SegmentationResult


def make_result(h: int, w: int, n: int, c: int, seed: int = 0) -> SegmentationResult:
    rng = np.random.default_rng(seed)
    side = rng.uniform(0.2, 0.6, (n, 2)) * [w, h]
    x0 = rng.uniform(-0.1 * w, w - side[:, 0])
    y0 = rng.uniform(-0.1 * h, h - side[:, 1])
    boxes = np.stack([x0, y0, x0 + side[:, 0], y0 + side[:, 1]], 1).round().astype(np.int64)
    scores = rng.normal(0, 2, (n, c, 224, 224)).astype(np.float16)
    agg = aggregate_instances(scores, boxes, (h, w))
    probs = softmax(agg)
    return SegmentationResult(image_hw=(h, w), class_names=[f"c{i}" for i in range(c)],
                              palette=np.zeros((c, 3), np.uint8), boxes=boxes, proposal_scores=np.ones(n, np.float32),
                              instance_scores=scores, aggregated=agg, partner_scores=None, probabilities=probs,
                              label=label_map(probs), include=np.ones(n, bool), from_user=np.zeros(n, bool))


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="480x360", help="WIDTHxHEIGHT")
    p.add_argument("--proposals", type=int, default=50)
    p.add_argument("--classes", type=int, default=11)
    p.add_argument("--repeat", type=int, default=7)
    a = p.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    r = make_result(h, w, a.proposals, a.classes)
    agg = median_ms(lambda: aggregate_instances(r.instance_scores, r.boxes, r.image_hw), a.repeat)
    win = median_ms(lambda: compute_winners(r), a.repeat)
    hover = median_ms(lambda: explain_pixel(r, w // 2, h // 2), a.repeat * 10)
    print(f"{w}×{h}, {a.proposals} proposals, {a.classes} classes: aggregation {agg:.1f} ms, "
          f"winner map {win:.1f} ms, one hover explanation {hover:.2f} ms")


if __name__ == "__main__":
    main()
