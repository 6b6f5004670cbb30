"""Benchmark the dense CRF: deconv_gui's lattice CRF against pydensecrf2 (C++), printed as one table.

Run from the repository root::

    .venv/bin/python bench/crf.py [--seed S] [--image PATH] [--classes 21] [--iterations 10] [--repeats 3]

Input: a 500×375 ``deconv_gui.core.synthetic.make_scene`` image (``--seed``, default 2) or any image file
(``--image``, resized to 500×375), and ``--classes`` (default 21) class probabilities that are random but
structured: the scene's labels (mapped onto the classes), blurred random score fields and pixel noise,
through a softmax — a confident-but-wrong mixture like a network's output.

One row per implementation, normalisation and thread count:
    impl       pydensecrf2 (C++, single-threaded) or deconv_gui on cpu/cuda
    norm       "none" (DeconvNet's setting, dense_crf's default) or "symmetric" (pydensecrf's default)
    threads    torch intra-op threads (CPU rows)
    total_s    median seconds for the whole CRF (lattices + operator + iterations), fresh each repeat
    build_s    median seconds building lattices (+ sparse operator for deconv_gui); deconv_gui's size-only
               Gaussian lattice cache is cleared before each repeat, so this is the cold cost
    iter_s     median seconds for the mean-field iterations (incl. unary set-up and the copy back)
    agree%     labels (argmax) equal to pydensecrf2's with the same normalisation
    max|dQ|    largest absolute difference of the marginals from pydensecrf2's
    vertices   lattice vertices, Gaussian + bilateral

Timings are wall-clock on whatever machine runs this; the 2-core dev machine shares its cores, so rows
measured a minute apart can differ by ±30 %.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deconv_gui.core.synthetic import make_scene  # noqa: E402
from deconv_gui.postprocess import crf as crf_module  # noqa: E402
from deconv_gui.postprocess.crf import CRFParams, DenseCRF, dense_crf_reference, unary_from_probs  # noqa: E402

WIDTH, HEIGHT = 500, 375


def structured_probabilities(labels: np.ndarray, classes: int, seed: int) -> np.ndarray:
    """``(H, W)`` labels → ``(classes, H, W) float32`` softmax of label evidence + smooth fields + noise."""
    rng = np.random.default_rng(seed)
    height, width = labels.shape
    scores = np.zeros((classes, height, width), np.float32)
    mapped = (labels.astype(np.int64) * 7) % classes
    np.put_along_axis(scores, mapped[None], 2.5, axis=0)
    coarse = rng.normal(0.0, 1.5, (classes, height // 25 + 2, width // 25 + 2)).astype(np.float32)
    scores += np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_CUBIC) for c in coarse])
    scores += rng.normal(0.0, 0.8, scores.shape).astype(np.float32)
    scores -= scores.max(0, keepdims=True)
    exp = np.exp(scores)
    return (exp / exp.sum(0, keepdims=True)).astype(np.float32)


def load_input(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    if args.image:
        bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read {args.image}")
        image = cv2.cvtColor(cv2.resize(bgr, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        labels = (gray // 64).astype(np.int64)  # crude structure: intensity bands
        name = Path(args.image).name
    else:
        scene = make_scene(args.seed, height=HEIGHT, width=WIDTH)
        image, labels, name = scene.image, scene.semantic, f"make_scene({args.seed})"
    return np.ascontiguousarray(image), structured_probabilities(labels, args.classes, args.seed), name


def median_time(run: Callable[[], tuple[float, float]], repeats: int) -> tuple[float, float, float]:
    """Median (total, build, iterations) seconds of ``run`` returning (build, iterations)."""
    builds, iters = zip(*(run() for _ in range(repeats)), strict=True)
    totals = [b + i for b, i in zip(builds, iters, strict=True)]
    return statistics.median(totals), statistics.median(builds), statistics.median(iters)


def time_reference(image: np.ndarray, probs: np.ndarray, params: CRFParams) -> tuple[float, float]:
    import pydensecrf.densecrf as dcrf

    classes, height, width = probs.shape
    normalization = dcrf.NORMALIZE_SYMMETRIC if params.normalization == "symmetric" else dcrf.NO_NORMALIZATION
    start = time.perf_counter()
    crf = dcrf.DenseCRF2D(width, height, classes)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_probs(probs).reshape(classes, -1)))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_weight, normalization=normalization)
    crf.addPairwiseBilateral(sxy=params.bilateral_sxy, srgb=params.bilateral_srgb, rgbim=image,
                             compat=params.bilateral_weight, normalization=normalization)
    built = time.perf_counter()
    np.asarray(crf.inference(params.iterations))
    return built - start, time.perf_counter() - built


def time_ours(image: np.ndarray, probs: np.ndarray, params: CRFParams, device: str) -> tuple[float, float]:
    crf_module._gaussian_lattice.cache_clear()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model = DenseCRF(image, params, device=device)
    model.pairwise  # noqa: B018 - builds lattices and operator
    if device == "cuda":
        torch.cuda.synchronize()
    built = time.perf_counter()
    model.refine(probs)
    return built - start, time.perf_counter() - built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--image", default="")
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    image, probs, name = load_input(args)
    kernels = crf_module._build_kernels(image, CRFParams())
    vertices = "+".join(str(lattice.num_vertices) for lattice, _ in kernels)
    try:
        import pydensecrf.densecrf  # noqa: F401

        have_reference = True
    except ImportError:
        have_reference = False
        print("pydensecrf2 not installed: no reference rows, no agreement columns")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"input: {name}, {WIDTH}×{HEIGHT}, {args.classes} classes, {args.iterations} iterations, "
          f"median of {args.repeats}; cpu threads available: {torch.get_num_threads()}")
    header = f"{'impl':<12} {'norm':<10} {'threads':>7} {'total_s':>8} {'build_s':>8} {'iter_s':>8} " \
             f"{'agree%':>8} {'max|dQ|':>9} {'vertices':>15}"
    print(header)
    print("-" * len(header))
    default_threads = torch.get_num_threads()
    for normalization in ("none", "symmetric"):
        params = CRFParams(iterations=args.iterations, normalization=normalization)
        reference = None
        if have_reference:
            reference = dense_crf_reference(image, probs, params)
            total, build, iters = median_time(functools.partial(time_reference, image, probs, params), args.repeats)
            print(f"{'pydensecrf2':<12} {normalization:<10} {1:>7} {total:>8.3f} {build:>8.3f} {iters:>8.3f} "
                  f"{'':>8} {'':>9} {'':>15}")
        for device in devices:
            thread_counts = sorted({1, default_threads}) if device == "cpu" else [default_threads]
            for threads in thread_counts:
                torch.set_num_threads(threads)
                result = DenseCRF(image, params, device=device).refine(probs)
                total, build, iters = median_time(functools.partial(time_ours, image, probs, params, device),
                                                  args.repeats)
                if reference is not None:
                    agree = f"{100 * np.mean(result.argmax(0) == reference.argmax(0)):.3f}"
                    diff = f"{np.abs(result - reference).max():.2e}"
                else:
                    agree = diff = "-"
                label = f"ours-{device}"
                print(f"{label:<12} {normalization:<10} {threads:>7} {total:>8.3f} {build:>8.3f} {iters:>8.3f} "
                      f"{agree:>8} {diff:>9} {vertices:>15}")
        torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
