"""Small dataset trees of synthetic scenes (:func:`deconv_gui.core.synthetic.make_scene`) in every layout.

For tests, demos and the demo model. Each tree holds ``n_train`` + ``n_val`` scenes, a ``train`` and a ``val``
split, and a ``classes.txt`` naming the synthetic classes (background, disc, square, triangle, ring, cross), so
:func:`deconv_gui.training.datasets.open_dataset` reads it with the synthetic class list in every layout:

- ``voc``: ``JPEGImages/*.jpg``, ``SegmentationClass/*.png`` (palette PNG), ``SegmentationObject/*.png``
  (instance ids 1..K, the scene's instances), ``ImageSets/Segmentation/{train,val}.txt``.
- ``camvid``: SegNet layout, ``{train,val}/``, ``{train,val}annot/``, ``{train,val}.txt``; a 2-pixel frame of
  label value 6 (the value after the last class, CamVid's "Unlabelled" convention) exercises the void mapping.
- ``folder``: ``images/``, ``masks/`` (single-channel index PNGs), ``{train,val}.txt`` listing stems.

Scene ``k`` (0-based over train then val) uses seed ``seed * 1000 + k``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from deconv_gui.core.synthetic import SYNTHETIC_CLASSES, make_demo_scene, make_scene, synthetic_palette
from deconv_gui.io.atomic import atomic_path, atomic_write_bytes
from deconv_gui.io.label_maps import write_index_png, write_palette_png

SYNTHETIC_LAYOUTS: tuple[str, ...] = ("voc", "camvid", "folder")
#: ``standard``: :func:`~deconv_gui.core.synthetic.make_scene` (cluttered, colour a loose hint); ``demo``:
#: :func:`~deconv_gui.core.synthetic.make_demo_scene` (what the bundled demo model learns).
SYNTHETIC_VARIANTS: tuple[str, ...] = ("standard", "demo")
_CAMVID_FRAME = 2


def _save_image(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".jpg", ".jpeg"):
            Image.fromarray(image).save(tmp, format="JPEG", quality=95)
        else:
            Image.fromarray(image).save(tmp, format="PNG")


def _write_lines(path: Path, lines: list[str]) -> None:
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


def write_synthetic_tree(
    root: str | Path,
    layout: str,
    *,
    n_train: int = 8,
    n_val: int = 4,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
    any_hue_probability: float | None = None,
    variant: str = "standard",
) -> Path:
    """Write a synthetic dataset tree in ``layout`` (``voc | camvid | folder``) under ``root``; returns ``root``.

    ``any_hue_probability`` is passed to :func:`~deconv_gui.core.synthetic.make_scene` (None = its default; 0 =
    colours always hint the class); ``variant="demo"`` writes demo scenes instead (it ignores
    ``any_hue_probability``)."""
    if layout not in SYNTHETIC_LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(SYNTHETIC_LAYOUTS)}")
    if variant not in SYNTHETIC_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(SYNTHETIC_VARIANTS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    palette = synthetic_palette()
    splits = {"train": [f"scene_{k:04d}" for k in range(n_train)],
              "val": [f"scene_{k:04d}" for k in range(n_train, n_train + n_val)]}
    void_value = len(SYNTHETIC_CLASSES)
    _write_lines(root / "classes.txt", list(SYNTHETIC_CLASSES))
    if layout == "voc":
        for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
            (root / sub).mkdir(parents=True, exist_ok=True)
    elif layout == "folder":
        for sub in ("images", "masks"):
            (root / sub).mkdir(exist_ok=True)
    else:
        for split in splits:
            (root / split).mkdir(exist_ok=True)
            (root / f"{split}annot").mkdir(exist_ok=True)
    k = 0
    for split, stems in splits.items():
        listing: list[str] = []
        for stem in stems:
            if variant == "demo":
                scene = make_demo_scene(seed * 1000 + k, height=height, width=width)
            else:
                hue = {} if any_hue_probability is None else {"any_hue_probability": any_hue_probability}
                scene = make_scene(seed * 1000 + k, height=height, width=width, **hue)
            k += 1
            if layout == "voc":
                _save_image(root / "JPEGImages" / f"{stem}.jpg", scene.image)
                write_palette_png(root / "SegmentationClass" / f"{stem}.png", scene.semantic, palette)
                write_palette_png(root / "SegmentationObject" / f"{stem}.png", scene.instances.astype(np.uint8),
                                  palette)
                listing.append(stem)
            elif layout == "folder":
                _save_image(root / "images" / f"{stem}.png", scene.image)
                write_index_png(root / "masks" / f"{stem}.png", scene.semantic)
                listing.append(stem)
            else:
                label = scene.semantic.copy()
                f = _CAMVID_FRAME
                label[:f], label[-f:], label[:, :f], label[:, -f:] = void_value, void_value, void_value, void_value
                _save_image(root / split / f"{stem}.png", scene.image)
                write_index_png(root / f"{split}annot" / f"{stem}.png", label)
                listing.append(f"{split}/{stem}.png {split}annot/{stem}.png")
        if layout == "voc":
            _write_lines(root / "ImageSets" / "Segmentation" / f"{split}.txt", listing)
        else:
            _write_lines(root / f"{split}.txt", listing)
    return root
