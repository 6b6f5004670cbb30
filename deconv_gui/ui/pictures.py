"""The UI's pictures of images and results: QImages made on the worker thread, kept beside the Qt-free sessions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtGui import QImage

from deconv_gui.core.cancel import CancelToken, ProgressCallback
from deconv_gui.document.jobs import Rendered
from deconv_gui.ui.qimage import LayerImages, prepare_layers, to_qimage


@dataclass
class Drawn:
    """A result as the UI draws it: the document's :class:`Rendered` and its overlay QImages (made on the
    worker thread), plus the image's own QImage when the job read the image itself (a folder run)."""

    rendered: Rendered
    layers: LayerImages
    display: QImage | None = None


@dataclass
class Pictures:
    """The UI's pictures of one opened image: the image as a QImage and its result's overlay layers."""

    display: QImage | None = None
    layers: LayerImages | None = None


def drawn(job: Callable[[ProgressCallback, CancelToken], Rendered]) -> Callable[[ProgressCallback, CancelToken], Drawn]:
    """``job`` whose Rendered result comes with its overlay QImages, converted on the worker thread."""

    def wrapped(progress: ProgressCallback, cancel: CancelToken) -> Drawn:
        out = job(progress, cancel)
        return Drawn(out, prepare_layers(out.label_rgb, out.boundary_rgba))

    return wrapped


def drawn_with_display(out: Rendered) -> Drawn:
    """A folder run's Rendered with its overlay QImages and the image's own QImage (made on the worker)."""
    display = to_qimage(out.image) if out.image is not None else None
    return Drawn(out, prepare_layers(out.label_rgb, out.boundary_rgba), display)


def with_qimage(image: np.ndarray) -> tuple[np.ndarray, QImage]:
    return image, to_qimage(image)
