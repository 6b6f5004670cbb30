"""Edge and orientation maps for Edge Boxes.

Edge Boxes scores a window by the edge groups it wholly contains, so it needs two ``(H, W) float32`` maps:

* an **edge map** in ``0..1`` that is *thin* (one pixel across an edge). Thick edges make the edge clustering
  explode and EdgeBoxes 20–100× slower, so every map made here goes through non-maximum suppression;
* an **orientation map** in ``[0, π)``: the direction of the edge *normal* (the direction across the edge), in
  radians, measured from the +x axis (columns) towards +y (rows, downwards). A vertical edge (a left/right
  boundary) has orientation 0, a horizontal one π/2.

Two sources of edges:

* :func:`gradient_edges` — built in and model-free: smoothed Lab colour gradient magnitude, thinned by NMS,
  short fragments removed. Recall and speed on synthetic scenes and CamVid: ``bench/proposals.py``.
* :class:`StructuredEdgeModel` — OpenCV's structured-edge random forest, for users who supply a trained
  ``model.yml.gz`` (none ships with pip packages; OpenCV's own is research-licensed).
"""

from __future__ import annotations

import logging
from os import PathLike
from pathlib import Path

import cv2
import numpy as np

from deconv_gui.core.errors import DeconvGuiError

logger = logging.getLogger(__name__)

#: Triangle-filter radius for the image before taking gradients (Dollár's ``convTri`` radius).
GRADIENT_SMOOTH_RADIUS = 2
#: Triangle-filter radius for the edge map before the orientation's second derivatives (``edgesDetect``: 4).
ORIENTATION_SMOOTH_RADIUS = 4
#: Gradient magnitude (Lab channels scaled to ~0..1, per pixel, after smoothing) at which edge strength reaches
#: 63 % (1 − 1/e) of its peak. Strength saturates as ``EDGE_PEAK · (1 − exp(−m / GRADIENT_SCALE))`` so one very
#: strong edge does not wash out the rest (dividing by the image maximum would).
GRADIENT_SCALE = 0.2
#: Strength of the strongest edges. Structured-edge maps, for which EdgeBoxes' magnitude thresholds
#: (``edgeMinMag`` 0.1, ``clusterMinMag`` 0.5, ``minScore`` 0.01) were tuned, rarely exceed ~0.5 on real
#: contours. Saturating at 1 instead keeps many more tiny edge groups alive: EdgeBoxes took 0.3–0.6 s instead
#: of 0.02–0.06 s per 480×360 image, with no better top-50 recall (bench/proposals.py).
EDGE_PEAK = 0.5
#: Edge pixels weaker than this are not edges for the fragment filter (EdgeBoxes' default ``edgeMinMag``).
FRAGMENT_MIN_STRENGTH = 0.1
#: Connected edge fragments (8-connected pixels above ``FRAGMENT_MIN_STRENGTH``) whose summed strength is below
#: this (≈ 10–20 px of edge) are removed: texture and noise specks that only slow EdgeBoxes down.
FRAGMENT_MIN_TOTAL = 5.0


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as ``(H, W, 3) uint8`` RGB.

    Accepts ``(H, W)`` grayscale, ``(H, W, 1)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (alpha dropped).
    Non-uint8 input is clipped to ``0..255`` and cast. Raises ``ValueError`` for any other shape.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    elif not (arr.ndim == 3 and arr.shape[2] == 3):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"image is empty: shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def triangle_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """Separable triangle filter of ``radius`` (Dollár's ``convTri``), reflect border; float32, same shape."""
    img = np.asarray(image, dtype=np.float32)
    if radius <= 0:
        return img.copy()
    ramp = np.arange(1, radius + 2, dtype=np.float32)
    kernel = np.concatenate([ramp, ramp[-2::-1]]) / float((radius + 1) ** 2)
    return cv2.sepFilter2D(img, cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_REFLECT)


def orientation_map(edges: np.ndarray) -> np.ndarray:
    """Edge-normal orientation of an edge map, Dollár's model-free formula (``edgesDetect.m``).

    ``E`` is smoothed with a triangle filter (radius 4), then ``O = mod(atan(Oyy·sign(−Oxy) / (Oxx + 1e-5)), π)``
    from its second derivatives (central differences), except that ``sign(0)`` counts as +1 so exactly
    horizontal edges get π/2 (MATLAB's ``sign(0) = 0`` gives them 0). Returns ``(H, W) float32`` in ``[0, π)``: 0 across a
    vertical edge, π/2 across a horizontal one.
    """
    e = np.asarray(edges, dtype=np.float32)
    if e.ndim != 2:
        raise ValueError(f"edge map must be (H, W), got shape {e.shape}")
    smooth = triangle_blur(e, ORIENTATION_SMOOTH_RADIUS)
    oy, ox = _central_gradient(smooth)
    _, oxx = _central_gradient(ox)
    oyy, oxy = _central_gradient(oy)
    # sign(0) is taken as +1, not MATLAB's 0: with sign(0) = 0 an exactly horizontal edge (Oxy = 0 along it,
    # common in synthetic images) would get orientation 0 instead of π/2 and NMS would thin it sideways.
    sign = np.where(oxy > 0, -1.0, 1.0).astype(np.float32)
    ratio = oyy * sign / (oxx + 1e-5)
    return np.mod(np.arctan(ratio), np.pi).astype(np.float32)


def suppress_non_maxima(
    edges: np.ndarray,
    orientation: np.ndarray,
    *,
    radius: int = 1,
    border: int = 5,
    multiplier: float = 1.01,
) -> np.ndarray:
    """Thin an edge map: keep a pixel only where it is the maximum across the edge (Dollár's ``edgesNms``).

    A pixel is zeroed when ``multiplier × E`` is below the bilinearly interpolated ``E`` at any offset
    ``d ∈ [−radius, radius] \\ {0}`` along its normal ``(cos O, sin O)``. Then edges within ``border`` pixels of
    the image edge are faded linearly (noisy there). Inputs and result are ``(H, W) float32``.
    """
    e = np.ascontiguousarray(edges, dtype=np.float32)
    o = np.asarray(orientation, dtype=np.float32)
    if e.shape != o.shape or e.ndim != 2:
        raise ValueError(f"edges {e.shape} and orientation {o.shape} must be the same (H, W)")
    h, w = e.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    cos_o, sin_o = np.cos(o), np.sin(o)
    scaled = e * multiplier
    keep = e > 0
    for d in range(-radius, radius + 1):
        if d == 0:
            continue
        neighbour = cv2.remap(e, cols + d * cos_o, rows + d * sin_o, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        keep &= scaled >= neighbour
    thin = np.where(keep, e, 0.0).astype(np.float32)
    border = min(border, w // 2, h // 2)
    if border > 0:
        ramp = np.arange(border, dtype=np.float32) / border
        thin[:, :border] *= ramp[None, :]
        thin[:, w - border:] *= ramp[None, ::-1]
        thin[:border, :] *= ramp[:, None]
        thin[h - border:, :] *= ramp[::-1, None]
    return thin


def gradient_edges(image: np.ndarray) -> np.ndarray:
    """Built-in, model-free edge map of an RGB image: ``(H, W, 3) uint8`` → thin ``(H, W) float32`` in 0..0.5.

    See :func:`gradient_edges_and_orientation` (this returns its first output).
    """
    return gradient_edges_and_orientation(image)[0]


def gradient_edges_and_orientation(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thin gradient edges and their orientation for EdgeBoxes, from one pass over the image.

    The image (any shape :func:`as_rgb_uint8` accepts) is converted to Lab (each channel scaled to about
    0..1), smoothed with a triangle filter, and the per-pixel gradient magnitude is the maximum over the three
    channels. The unthinned magnitude gives the orientation (:func:`orientation_map`), which drives
    :func:`suppress_non_maxima`; the thinned magnitude becomes strength
    ``EDGE_PEAK · (1 − exp(−magnitude / GRADIENT_SCALE))`` (saturating, below ``EDGE_PEAK`` = 0.5), and short
    weak fragments are dropped (:func:`remove_edge_fragments`).

    Returns ``(edges, orientation)``, both ``(H, W) float32``: edges in ``[0, EDGE_PEAK)`` ⊂ ``[0, 1]``, one to
    two pixels wide (two where a step edge falls exactly between pixels), orientation in ``[0, π)``.
    """
    rgb = as_rgb_uint8(image)
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    lab *= np.array([1 / 100.0, 1 / 200.0, 1 / 200.0], np.float32)  # L 0..100, a/b about ±100 → ~unit range
    smooth = triangle_blur(lab, GRADIENT_SMOOTH_RADIUS)
    gy, gx = _central_gradient(smooth)
    magnitude = np.sqrt(gx * gx + gy * gy).max(axis=2)
    orientation = orientation_map(_saturate(magnitude))
    # Thin the raw magnitude, not the saturated strength: saturation flattens strong ridges into plateaus
    # several pixels wide that NMS cannot split.
    thin = _saturate(suppress_non_maxima(magnitude, orientation))
    return remove_edge_fragments(thin), orientation


def remove_edge_fragments(
    edges: np.ndarray, *, min_strength: float = FRAGMENT_MIN_STRENGTH, min_total: float = FRAGMENT_MIN_TOTAL
) -> np.ndarray:
    """Zero connected edge fragments with little total strength; ``(H, W) float32`` in and out.

    Fragments are 8-connected components of pixels above ``min_strength``; a fragment whose strengths sum to
    less than ``min_total`` is removed (pixels at or below ``min_strength`` are kept as they are).
    """
    e = np.asarray(edges, dtype=np.float32)
    count, labels = cv2.connectedComponents((e > min_strength).astype(np.uint8), connectivity=8)
    totals = np.bincount(labels.ravel(), weights=e.ravel(), minlength=count)
    totals[0] = np.inf  # label 0 = not an edge pixel: never removed here
    return np.where(totals[labels] < min_total, 0.0, e).astype(np.float32)


class StructuredEdgeModel:
    """OpenCV's structured-edge forest (``cv2.ximgproc.StructuredEdgeDetection``) from a user's model file.

    ``path`` is a ``model.yml.gz`` (as in opencv_extra's ``testdata/cv/ximgproc``). A missing or unreadable file
    raises :class:`DeconvGuiError` naming the file and the reason.
    """

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DeconvGuiError("structured-edge model file not found", self.path)
        _check_model_file(self.path)
        try:
            self._detector = cv2.ximgproc.createStructuredEdgeDetection(str(self.path))
        except cv2.error as err:
            raise DeconvGuiError(f"not a valid structured-edge model ({_first_line(err)})", self.path) from err
        if self._detector is None or self._detector.empty():
            raise DeconvGuiError("not a valid structured-edge model (OpenCV loaded nothing)", self.path)
        logger.debug("loaded structured-edge model %s", self.path)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Edges and orientation of an RGB image.

        ``image``: any shape :func:`as_rgb_uint8` accepts. Returns ``(edges, orientation)``, ``(H, W) float32``:
        edges in 0..1 thinned by ``edgesNms(r=1, s=5, m=1.01)``, orientation in ``[0, π)``.
        """
        rgb = as_rgb_uint8(image).astype(np.float32) / 255.0
        edges = self._detector.detectEdges(rgb)
        orientation = self._detector.computeOrientation(edges)
        thin = self._detector.edgesNms(edges, orientation, r=1, s=5, m=1.01, isParallel=True)
        return np.asarray(thin, np.float32), np.asarray(orientation, np.float32)


_MODEL_OPTIONS = (
    "stride", "shrinkNumber", "patchSize", "patchInnerSize", "numberOfGradientOrientations",
    "selfsimilarityGridSize", "numberOfTrees", "numberOfTreesToEvaluate",
)
_MODEL_ARRAYS = ("childs", "featureIds", "thresholds", "edgeBoundaries", "edgeBins")


def _check_model_file(path: Path) -> None:
    """Raise :class:`DeconvGuiError` unless ``path`` looks like a structured-edge forest.

    OpenCV's loader trusts the file: a YAML file without the forest (``numberOfTrees`` missing → 0) kills the
    process with a division by zero instead of raising, so the keys it divides by and indexes with are checked
    here first.
    """
    try:
        storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as err:  # the binding wraps parse errors in SystemError
        err = err.__cause__ if isinstance(err.__cause__, cv2.error) else err
        raise DeconvGuiError(f"not a valid structured-edge model ({_first_line(err)})", path) from err
    try:
        if not storage.isOpened():
            raise DeconvGuiError("not a valid structured-edge model (OpenCV cannot open it)", path)
        options = storage.getNode("options")
        for key in _MODEL_OPTIONS:
            node = options.getNode(key) if not options.empty() else options
            if node.empty() or not (node.isInt() or node.isReal()) or node.real() < 1:
                raise DeconvGuiError(f"not a valid structured-edge model (options/{key} missing or < 1)", path)
        for key in _MODEL_ARRAYS:
            node = storage.getNode(key)
            if node.empty() or node.size() == 0:
                raise DeconvGuiError(f"not a valid structured-edge model ({key} missing or empty)", path)
    finally:
        storage.release()


def _central_gradient(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(d/dy, d/dx)`` by central differences (one-sided at the border), like MATLAB ``gradient``; float32."""
    img = np.asarray(image, dtype=np.float32)
    gy = np.empty_like(img)
    gx = np.empty_like(img)
    if img.shape[0] > 1:
        gy[1:-1] = (img[2:] - img[:-2]) * 0.5
        gy[0] = img[1] - img[0]
        gy[-1] = img[-1] - img[-2]
    else:
        gy[...] = 0.0
    if img.shape[1] > 1:
        gx[:, 1:-1] = (img[:, 2:] - img[:, :-2]) * 0.5
        gx[:, 0] = img[:, 1] - img[:, 0]
        gx[:, -1] = img[:, -1] - img[:, -2]
    else:
        gx[...] = 0.0
    return gy, gx


def _saturate(magnitude: np.ndarray) -> np.ndarray:
    """Gradient magnitude → edge strength ``EDGE_PEAK · (1 − exp(−m / GRADIENT_SCALE))``; float32."""
    m = np.asarray(magnitude, np.float32)
    return (EDGE_PEAK * (1.0 - np.exp(-m / GRADIENT_SCALE))).astype(np.float32)


def _first_line(err: Exception) -> str:
    """The most informative single line of an OpenCV error message."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    line = lines[-1] if lines else type(err).__name__
    return line.split(" error: ", 1)[-1]  # drop OpenCV's "OpenCV(x.y) /path/file.cpp:123:" prefix
