"""Synthetic scenes: textured shapes of five classes on a cluttered background, with exact labels.

Used by tests, benchmarks and the demo in place of real datasets. Pure numpy (no OpenCV, no torch).

A scene is painted back to front (painter's order): later shapes occlude earlier ones. Labels follow the
pixels that are visible, so ``semantic`` and ``instances`` agree everywhere, and the boxes are the tight
boxes of each instance's visible pixels (``x0, y0, x1, y1``, exclusive, float64 — the convention of
:mod:`deconv_gui.core.boxes`). Instances hidden entirely by later shapes are dropped and the remaining
instance ids renumbered ``1..K`` in painting order.

Colour correlates with class only loosely (each class has a preferred hue, but ~40 % of instances take any
hue, and textures are shared by all classes), so a network has to learn shape to score well.

:func:`make_demo_scene` is the simpler variant the bundled demo model is trained and shown on: two to four
shapes that never touch, each in its class's hue, on a plain muted background.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from deconv_gui.core.palette import palette_for

SYNTHETIC_CLASSES: tuple[str, ...] = ("background", "disc", "square", "triangle", "ring", "cross")
SYNTHETIC_THING_CLASSES: tuple[int, ...] = (1, 2, 3, 4, 5)
SYNTHETIC_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (220, 20, 60), (0, 160, 80), (30, 90, 230), (240, 200, 0), (180, 60, 200),
)

# Preferred hue per class (index = class id); only a loose hint, see module docstring.
_CLASS_HUES = (0.0, 0.0, 0.33, 0.62, 0.15, 0.83)
_ANY_HUE_PROBABILITY = 0.4


@dataclass(frozen=True)
class _Colouring:
    """How shapes are coloured: preferred hue per class (index = class id), the spread around it, the
    saturation and value ranges of the base colour, and the texture's second colour — darker by a factor in
    ``dark`` or lighter by a fraction of the way to white in ``light``."""

    hues: tuple[float, ...] = _CLASS_HUES
    hue_spread: float = 0.06
    saturation: tuple[float, float] = (0.5, 1.0)
    value: tuple[float, float] = (0.4, 0.95)
    dark: tuple[float, float] = (0.45, 0.8)
    light: tuple[float, float] = (0.25, 0.6)


_STANDARD_COLOURING = _Colouring()
# Demo scenes: the five hues spread evenly round the wheel near the overlay colours (disc red, ring yellow,
# square green, triangle blue, cross magenta), a narrow spread, vivid base colours and gentle textures, so
# that colour tells the classes apart and the shape tells where each one ends.
_DEMO_COLOURING = _Colouring(
    hues=(0.0, 0.0, 0.40, 0.61, 0.18, 0.81), hue_spread=0.02, saturation=(0.7, 1.0), value=(0.6, 0.95),
    dark=(0.7, 0.85), light=(0.15, 0.35),
)
# Default shape size (diameter / side) as a fraction of the shorter image side. At 240×320 this gives
# 72–156 px, at 360×480 108–234 px, so many shapes pass Edge Boxes' 112 px minimum side.
_DEFAULT_MIN_SIZE_FRACTION = 0.3
_DEFAULT_MAX_SIZE_FRACTION = 0.65
_PLACEMENT_CANDIDATES = 8
_LAYOUT_ATTEMPTS = 20


@dataclass
class SyntheticScene:
    """One synthetic image with its ground truth.

    Attributes:
        image: ``(H, W, 3) uint8`` RGB.
        semantic: ``(H, W) uint8`` class per pixel: 0 background, 1..5 shape class (no void).
        instances: ``(H, W) int32``: 0 no instance, ``k >= 1`` instance ``k`` (painting order).
        boxes: ``(K, 4) float64`` tight boxes ``x0, y0, x1, y1`` (exclusive) of each instance's visible pixels;
            row ``k - 1`` belongs to instance ``k``.
        classes: ``(K,) int64`` class (1..5) of each instance.
    """

    image: np.ndarray
    semantic: np.ndarray
    instances: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray


def synthetic_palette() -> np.ndarray:
    """``(256, 3) uint8`` palette: six distinct colours for :data:`SYNTHETIC_CLASSES`, then the VOC map."""
    return palette_for(SYNTHETIC_COLOURS)


def make_scene(
    seed: int,
    *,
    height: int = 240,
    width: int = 320,
    min_objects: int = 2,
    max_objects: int = 6,
    min_size: int | None = None,
    max_size: int | None = None,
    any_hue_probability: float = _ANY_HUE_PROBABILITY,
) -> SyntheticScene:
    """Draw a deterministic synthetic scene (same ``seed`` and arguments → identical arrays).

    ``min_size`` / ``max_size`` bound each shape's diameter or side in pixels (defaults: 0.3 and 0.65 of the
    shorter image side). The scene holds between ``min_objects`` and ``max_objects`` visible instances
    (layouts where occlusion hides too many shapes are redrawn). ``any_hue_probability`` is the chance that a
    shape ignores its class's preferred hue (0 = colour always hints the class: the easy "demo" variant).
    """
    if height < 8 or width < 8:
        raise ValueError(f"scene must be at least 8×8 pixels, got {height}×{width}")
    if not 0 <= min_objects <= max_objects:
        raise ValueError(f"need 0 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    short = min(height, width)
    lo = int(round(_DEFAULT_MIN_SIZE_FRACTION * short)) if min_size is None else int(min_size)
    hi = int(round(_DEFAULT_MAX_SIZE_FRACTION * short)) if max_size is None else int(max_size)
    lo = max(lo, 4)
    hi = max(hi, lo)

    rng = np.random.default_rng(seed)
    background = _background(rng, height, width)
    for _ in range(_LAYOUT_ATTEMPTS):
        n = int(rng.integers(min_objects, max_objects + 1))
        scene = _paint_shapes(rng, background, n, lo, hi, any_hue_probability)
        if len(scene.classes) >= min_objects:
            return scene
    # Pathological sizes (huge shapes on a tiny canvas): shrink until the shapes fit side by side.
    while True:
        hi = max(4, hi // 2)
        lo = min(lo, hi)
        scene = _paint_shapes(rng, background, min_objects, lo, hi, any_hue_probability)
        if len(scene.classes) >= min_objects or hi == 4:
            return scene


def make_demo_scene(seed: int, *, height: int = 360, width: int = 480) -> SyntheticScene:
    """The demo variant (deterministic in ``seed``): 2–4 shapes of 0.24–0.38 of the shorter side, kept apart
    (no shape touches another, so each is one whole instance), vivid colour always near the class's hue (five
    hues spread round the wheel) with gentle textures, on a plain muted background (smooth shading, no stripes
    or blobs). What the bundled demo model is trained on."""
    if height < 64 or width < 64:
        raise ValueError(f"a demo scene needs at least 64×64 pixels, got {height}×{width}")
    short = min(height, width)
    lo, hi = int(round(_DEMO_SIZE_FRACTION[0] * short)), int(round(_DEMO_SIZE_FRACTION[1] * short))
    rng = np.random.default_rng(seed)
    background = _plain_background(rng, height, width)
    scene = None
    for _ in range(_LAYOUT_ATTEMPTS):
        n = int(rng.integers(2, 5))
        scene = _paint_shapes(rng, background, n, lo, hi, 0.0, separate=True, colouring=_DEMO_COLOURING)
        if len(scene.classes) >= 2:
            return scene
    assert scene is not None
    return scene


_DEMO_SIZE_FRACTION = (0.24, 0.38)


def _paint_shapes(
    rng: np.random.Generator, background: np.ndarray, n: int, lo: int, hi: int,
    any_hue_probability: float = _ANY_HUE_PROBABILITY, *, separate: bool = False,
    colouring: _Colouring = _STANDARD_COLOURING,
) -> SyntheticScene:
    """Paint ``n`` shapes over a copy of ``background`` (``(H, W, 3) float32``) and build the labels.

    ``separate``: a shape whose window would overlap an earlier shape's (plus a 6-px gap) is skipped, so no
    two shapes touch. ``colouring``: the hues, colour ranges and texture contrast."""
    height, width = background.shape[:2]
    canvas = background.copy()
    semantic = np.zeros((height, width), np.uint8)
    instances = np.zeros((height, width), np.int32)
    centres: list[tuple[float, float]] = []
    for k in range(1, n + 1):
        cls = int(rng.integers(1, len(SYNTHETIC_CLASSES)))
        size = float(rng.uniform(lo, hi))
        cy, cx = _place(rng, centres, height, width, size)
        window, mask, (u, v) = _shape_mask(rng, cls, cy, cx, size, height, width)
        if not mask.any():
            continue
        if separate and _touches(instances, window, mask, gap=6):
            continue
        centres.append((cy, cx))
        colour = _shape_colour(rng, cls, background[int(cy) % height, int(cx) % width], any_hue_probability,
                               colouring)
        texture = _texture(rng, u, v, size, colour, colouring)
        canvas[window][mask] = texture[mask]
        semantic[window][mask] = cls
        instances[window][mask] = k
    # Uniform pixel noise: as good as Gaussian here and several times cheaper to draw.
    amplitude = np.float32(rng.uniform(4.0, 9.0))
    canvas += (rng.random(canvas.shape, dtype=np.float32) - np.float32(0.5)) * (2 * amplitude)
    image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return _finish_labels(image, semantic, instances, n)


def _touches(instances: np.ndarray, window: tuple[slice, slice], mask: np.ndarray, gap: int) -> bool:
    """Whether ``mask`` (in ``window``) dilated by ``gap`` pixels (a box dilation) meets a painted instance."""
    ys, xs = window
    y0, y1 = max(0, ys.start - gap), min(instances.shape[0], ys.stop + gap)
    x0, x1 = max(0, xs.start - gap), min(instances.shape[1], xs.stop + gap)
    grown = np.zeros((y1 - y0, x1 - x0), bool)
    oy, ox = ys.start - y0, xs.start - x0
    rows, cols = np.nonzero(mask)
    for dy in (-gap, 0, gap):
        for dx in (-gap, 0, gap):
            grown[np.clip(rows + oy + dy, 0, y1 - y0 - 1), np.clip(cols + ox + dx, 0, x1 - x0 - 1)] = True
    return bool((instances[y0:y1, x0:x1][grown] > 0).any())


def _finish_labels(image: np.ndarray, semantic: np.ndarray, instances: np.ndarray, n: int) -> SyntheticScene:
    """Drop fully hidden instances, renumber the rest ``1..K`` and compute tight boxes of visible pixels."""
    counts = np.bincount(instances.ravel(), minlength=n + 1)
    visible = np.flatnonzero(counts[1:]) + 1
    lut = np.zeros(n + 1, np.int32)
    lut[visible] = np.arange(1, len(visible) + 1, dtype=np.int32)
    instances = lut[instances]
    boxes = np.zeros((len(visible), 4), np.float64)
    classes = np.zeros(len(visible), np.int64)
    for i in range(len(visible)):
        mask = instances == i + 1
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
        classes[i] = semantic.flat[int(mask.argmax())]  # first visible pixel of the instance
    return SyntheticScene(image=image, semantic=semantic, instances=instances, boxes=boxes, classes=classes)


def _place(
    rng: np.random.Generator, centres: list[tuple[float, float]], height: int, width: int, size: float
) -> tuple[float, float]:
    """A centre keeping most of the shape inside the image, spread away from earlier centres."""
    margin_y = min(0.35 * size, height / 2)
    margin_x = min(0.35 * size, width / 2)
    cys = rng.uniform(margin_y, height - margin_y, _PLACEMENT_CANDIDATES)
    cxs = rng.uniform(margin_x, width - margin_x, _PLACEMENT_CANDIDATES)
    if not centres:
        return float(cys[0]), float(cxs[0])
    prev = np.asarray(centres)
    dist = np.hypot(cys[:, None] - prev[None, :, 0], cxs[:, None] - prev[None, :, 1]).min(axis=1)
    best = int(dist.argmax())
    return float(cys[best]), float(cxs[best])


def _shape_mask(
    rng: np.random.Generator, cls: int, cy: float, cx: float, size: float, height: int, width: int
) -> tuple[tuple[slice, slice], np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Rasterise one shape inside its window (clipped to the image).

    Returns the window slices, the ``(h, w) bool`` mask in the window, and the rotated local coordinates
    ``u, v`` (``(h, w) float32`` each, pixels, origin at the shape centre) used for texturing.
    """
    half = int(np.ceil(0.75 * size)) + 1
    y0, y1 = max(0, int(cy) - half), min(height, int(cy) + half + 1)
    x0, x1 = max(0, int(cx) - half), min(width, int(cx) + half + 1)
    dy, dx = np.ogrid[y0:y1, x0:x1]
    dy = dy.astype(np.float32) + 0.5 - cy
    dx = dx.astype(np.float32) + 0.5 - cx
    theta = rng.uniform(0.0, 2.0 * np.pi) if cls in (2, 3, 5) else 0.0
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    u = dx * c + dy * s
    v = dy * c - dx * s
    r = size / 2.0
    if cls == 1:  # disc
        mask = u * u + v * v <= r * r
    elif cls == 2:  # square
        mask = (np.abs(u) <= r) & (np.abs(v) <= r)
    elif cls == 3:  # equilateral triangle, side ≈ 1.04 · size
        circumradius = 0.6 * size
        phis = np.pi / 2 + np.arange(3) * 2 * np.pi / 3 + np.pi  # directions to the edge midpoints
        reach = np.maximum.reduce([u * np.float32(np.cos(p)) + v * np.float32(np.sin(p)) for p in phis])
        mask = reach <= circumradius / 2
    elif cls == 4:  # ring
        inner = r * rng.uniform(0.45, 0.65)
        rr = u * u + v * v
        mask = (rr <= r * r) & (rr >= inner * inner)
    else:  # cross
        arm = r * rng.uniform(0.28, 0.4)
        au, av = np.abs(u), np.abs(v)
        mask = ((au <= r) & (av <= arm)) | ((av <= r) & (au <= arm))
    u, v = np.broadcast_arrays(u, v)
    return (slice(y0, y1), slice(x0, x1)), mask, (u, v)


def _shape_colour(
    rng: np.random.Generator, cls: int, background_rgb: np.ndarray, any_hue_probability: float = _ANY_HUE_PROBABILITY,
    colouring: _Colouring = _STANDARD_COLOURING,
) -> np.ndarray:
    """``(3,) float32`` saturated base colour, hue loosely tied to ``cls``, far from the local background."""
    best, best_dist = np.zeros(3, np.float32), -1.0
    for _ in range(6):
        if rng.random() < any_hue_probability:
            hue = rng.random()
        else:
            hue = (colouring.hues[cls] + rng.normal(0.0, colouring.hue_spread)) % 1.0
        rgb = np.asarray(colorsys.hsv_to_rgb(hue, rng.uniform(*colouring.saturation), rng.uniform(*colouring.value)),
                         np.float32)
        rgb *= 255.0
        dist = float(np.linalg.norm(rgb - background_rgb))
        if dist > best_dist:
            best, best_dist = rgb, dist
        if dist >= 80.0:
            break
    return best


def _texture(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, size: float, colour: np.ndarray,
    colouring: _Colouring = _STANDARD_COLOURING,
) -> np.ndarray:
    """``(h, w, 3) float32`` texture in shape coordinates: flat, stripes, checker, gradient or spots."""
    kind = int(rng.integers(0, 5))
    if kind == 0:
        pattern = np.zeros_like(u)
    elif kind == 1:
        period = rng.uniform(6.0, 20.0)
        a = rng.uniform(0, np.pi)
        pattern = 0.5 + 0.5 * np.sin((u * np.cos(a) + v * np.sin(a)) * (2 * np.pi / period))
    elif kind == 2:
        cell = rng.uniform(5.0, 16.0)
        pattern = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    elif kind == 3:
        pattern = np.clip(u / size + 0.5, 0.0, 1.0)
    else:
        period = rng.uniform(8.0, 18.0)
        pattern = 0.5 + 0.5 * np.sin(u * (2 * np.pi / period)) * np.sin(v * (2 * np.pi / period))
    if rng.random() < 0.5:
        second = colour * np.float32(rng.uniform(*colouring.dark))
    else:
        second = colour + (255.0 - colour) * np.float32(rng.uniform(*colouring.light))
    pattern = pattern.astype(np.float32)[..., None]
    return colour + (second - colour) * pattern


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """``(H, W, 3) float32`` muted, cluttered background: smooth noise, gradient, faint stripes and blobs."""
    hue, sat, val = rng.random(), rng.uniform(0.05, 0.3), rng.uniform(0.35, 0.75)
    base = np.asarray(colorsys.hsv_to_rgb(hue, sat, val), np.float32) * 255.0
    img = np.broadcast_to(base, (height, width, 3)).astype(np.float32)
    coarse = rng.normal(0.0, 18.0, (int(rng.integers(3, 7)), int(rng.integers(4, 9)), 3)).astype(np.float32)
    img += _upsample_bilinear(coarse, height, width)
    yy, xx = np.ogrid[0:height, 0:width]
    yy = yy.astype(np.float32)
    xx = xx.astype(np.float32)
    g = rng.normal(0.0, 25.0, 2) / max(height, width)
    img += (yy * np.float32(g[0]) + xx * np.float32(g[1]))[..., None]
    for _ in range(int(rng.integers(1, 3))):  # faint stripes
        a = rng.uniform(0, np.pi)
        period = rng.uniform(8.0, 40.0)
        amp = rng.uniform(4.0, 10.0)
        img += (amp * np.sin((xx * np.cos(a) + yy * np.sin(a)) * (2 * np.pi / period) + rng.uniform(0, 6.3)))[
            ..., None
        ].astype(np.float32)
    for _ in range(int(rng.integers(3, 9))):  # low-contrast blobs, evaluated within 3 sigma only
        by, bx = rng.uniform(0, height), rng.uniform(0, width)
        sigma = rng.uniform(5.0, 40.0)
        tint = rng.normal(0.0, 18.0, 3).astype(np.float32)
        ys = slice(max(0, int(by - 3 * sigma)), min(height, int(by + 3 * sigma) + 1))
        xs = slice(max(0, int(bx - 3 * sigma)), min(width, int(bx + 3 * sigma) + 1))
        w = np.exp(-((yy[ys] - by) ** 2 + (xx[:, xs] - bx) ** 2) / np.float32(2 * sigma * sigma))
        img[ys, xs] += w[..., None] * tint
    return img


def _plain_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """``(H, W, 3) float32`` plain, muted background (low saturation, smooth shading only) for demo scenes."""
    hue, sat, val = rng.random(), rng.uniform(0.0, 0.15), rng.uniform(0.3, 0.6)
    base = np.asarray(colorsys.hsv_to_rgb(hue, sat, val), np.float32) * 255.0
    img = np.broadcast_to(base, (height, width, 3)).astype(np.float32)
    coarse = rng.normal(0.0, 10.0, (3, 4, 3)).astype(np.float32)
    return img + _upsample_bilinear(coarse, height, width)


def _upsample_bilinear(coarse: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(h, w, C) float32`` → ``(height, width, C) float32`` (a strided view) by separable linear
    interpolation, corners aligned."""
    gh, gw = coarse.shape[:2]
    wy = _linear_weights(gh, height)  # (height, gh)
    wx = _linear_weights(gw, width)  # (width, gw)
    planes = wy @ coarse.transpose(2, 0, 1) @ wx.T  # (C, height, width)
    return planes.transpose(1, 2, 0)


def _linear_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in) float32`` matrix of 1-D linear interpolation weights, end points aligned."""
    pos = np.linspace(0.0, n_in - 1, n_out)
    left = np.minimum(pos.astype(np.int64), n_in - 2)
    frac = (pos - left).astype(np.float32)
    weights = np.zeros((n_out, n_in), np.float32)
    weights[np.arange(n_out), left] = 1 - frac
    weights[np.arange(n_out), left + 1] = frac
    return weights
