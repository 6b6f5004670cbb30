"""Autosave of an image's hand edits, Qt-free: one atomic PNG per image, restored when the image is reopened.

Where: ``<image folder>/.deconv_gui/<image name>.edits.png``, or, when the user picked a project folder,
``<project>/<image stem>-<hash of the image's path>.edits.png``.

Format: a 2-channel ``LA`` PNG, ``L`` = the painted label (255 = void), ``A`` = 255 where edited, 0 elsewhere.
Its ``deconv_gui`` text chunk holds a small JSON object: ``{"format": "deconv_gui edits", "version": 1,
"image": name, "width": W, "height": H, "digest": <blake2b of the image's pixels>}`` so edits made on another
image (or on the same file changed since) are recognised. One file (not a PNG + a JSON beside it) is written
by one atomic rename: a kill -9 at any moment leaves either the previous autosave or the new one, whole.

A file that cannot be read back is *never* overwritten silently: it is renamed aside to
``<name>.corrupt-<time>`` (``.changed-<time>`` when it belongs to another version of the image) and the caller
gets a message naming both files.

:class:`AutosaveWriter` writes on a background thread, keeping only the newest pending snapshot per file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.io.atomic import atomic_path, clean_stale_temps_once
from deconv_gui.io.files import resolved
from deconv_gui.io.images import MAX_IMAGE_PIXELS

log = logging.getLogger(__name__)

AUTOSAVE_DIR = ".deconv_gui"
SUFFIX = ".edits.png"
FORMAT_NAME = "deconv_gui edits"
VERSION = 1
TEXT_KEY = "deconv_gui"


def image_digest(image: np.ndarray) -> str:
    """A short hash of an image's pixels and shape (``(H, W, 3) uint8``) — ~40 ms for 12 megapixels."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


def autosave_path(image_path: Path, project_dir: Path | None = None) -> Path:
    """Where the edits of ``image_path`` are autosaved (see the module docstring)."""
    image_path = Path(image_path)
    if project_dir is None:
        return image_path.parent / AUTOSAVE_DIR / f"{image_path.name}{SUFFIX}"
    tag = hashlib.sha1(os.fsencode(resolved(image_path))).hexdigest()[:10]
    return Path(project_dir) / f"{image_path.stem}-{tag}{SUFFIX}"


def save_edits(path: Path, label: np.ndarray, edited: np.ndarray, *, image_name: str, digest: str) -> Path:
    """Write edits (``label`` ``(H, W) uint8``, ``edited`` ``(H, W) bool``) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = label.shape
    meta = {"format": FORMAT_NAME, "version": VERSION, "image": image_name, "width": w, "height": h,
            "digest": digest}
    info = PngImagePlugin.PngInfo()
    info.add_text(TEXT_KEY, json.dumps(meta))
    pixels = np.stack([np.where(edited, label, 0).astype(np.uint8), np.where(edited, 255, 0).astype(np.uint8)],
                      axis=-1)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels, mode="LA").save(tmp, format="PNG", pnginfo=info, compress_level=1)
    return path


class AutosaveCorrupt(DeconvGuiError):
    """An autosave file could not be used; it was renamed aside (``kept``)."""

    def __init__(self, message: str, path: Path, kept: Path | None) -> None:
        super().__init__(message, path)
        self.kept = kept


def _set_aside(path: Path, reason: str) -> Path | None:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{reason}-{stamp}")
    n = 2
    while target.exists():
        target, n = path.with_name(f"{path.name}.{reason}-{stamp}-{n}"), n + 1
    try:
        os.replace(path, target)
    except OSError as exc:
        log.warning("cannot rename %s aside: %s", path, exc)
        return None
    return target


def read_edits(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(label (H, W) uint8, edited (H, W) bool, metadata)``; any problem raises ``ValueError``.

    A PNG whose header claims more pixels than any image the app opens (a decompression bomb) is refused from
    its header, before anything is decoded or allocated."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit follows
            im = Image.open(path)
        with im:
            width, height = im.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ValueError(f"PNG header claims {width}×{height} pixels, more than the "
                                 f"{MAX_IMAGE_PIXELS / 1e6:.4g} MP an image may have")
            im.load()
            text = im.text.get(TEXT_KEY) if hasattr(im, "text") else None
            if im.mode != "LA":
                raise ValueError(f"not an edits file (PNG mode {im.mode}, expected LA)")
            pixels = np.asarray(im)
    except Image.DecompressionBombError as exc:  # above 2 × Pillow's limit: refused by Image.open itself
        raise ValueError(f"PNG header claims too many pixels ({exc})") from exc
    except (OSError, SyntaxError) as exc:  # PIL raises these for truncated / broken files
        raise ValueError(f"unreadable PNG ({exc})") from exc
    if not text:
        raise ValueError("no deconv_gui metadata in the PNG")
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"bad metadata ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError("bad metadata (not a deconv_gui edits file)")
    if (meta.get("height"), meta.get("width")) != pixels.shape[:2]:
        raise ValueError("metadata size differs from the PNG's")
    edited = pixels[..., 1] >= 128
    return np.where(edited, pixels[..., 0], 0).astype(np.uint8), edited, meta


def load_edits(path: Path, *, image_hw: tuple[int, int], digest: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The edits saved at ``path`` for an image of size ``image_hw`` whose pixels hash to ``digest``.

    None when there is no file. A file that cannot be read is renamed to ``*.corrupt-<time>``, one saved for
    another image (size or hash differ) to ``*.changed-<time>``; both raise :class:`AutosaveCorrupt` whose
    message names the file and where it was kept.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        label, edited, meta = read_edits(path)
    except ValueError as exc:
        kept = _set_aside(path, "corrupt")
        where = f"kept as {kept.name}" if kept else "left in place"
        raise AutosaveCorrupt(f"corrupt autosave of your edits ({exc}); {where}, starting without edits",
                              path, kept) from exc
    if tuple(label.shape) != tuple(image_hw) or (digest is not None and meta.get("digest") != digest):
        kept = _set_aside(path, "changed")
        where = f"kept as {kept.name}" if kept else "left in place"
        raise AutosaveCorrupt(f"the image changed since these edits were saved; {where}, starting without edits",
                              path, kept)
    return label, edited


def remove_edits(path: Path) -> None:
    """Delete an autosave (all edits undone); missing is fine."""
    try:
        Path(path).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc)


@dataclass
class Snapshot:
    """What one autosave writes: copies of the edit arrays, taken on the GUI thread. ``image`` is hashed on the
    writer thread when ``digest`` is None. An empty snapshot (no edited pixel) removes the file."""

    path: Path
    label: np.ndarray
    edited: np.ndarray
    image_name: str
    image: np.ndarray | None = None
    digest: str | None = None


class AutosaveWriter:
    """A background thread that writes :class:`Snapshot` s, newest per file wins; ``on_saved(path, error)``
    is called on that thread after each write (``error`` None on success)."""

    def __init__(self, on_saved: Callable[[Path, str | None], None] | None = None) -> None:
        self.on_saved = on_saved
        self._pending: dict[Path, Snapshot] = {}
        self._digest: tuple[np.ndarray | None, str] = (None, "")
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="deconv_gui-autosave", daemon=True)
        self._thread.start()

    def submit(self, snapshot: Snapshot) -> None:
        with self._cond:
            if not self._closed:
                self._pending[snapshot.path] = snapshot
                self._cond.notify_all()
                return
        log.warning("autosave writer already closed: writing %s on the caller's thread", snapshot.path)
        self._write(snapshot)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted snapshot is written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> bool:
        """Write what is pending, then stop the thread (later submissions are written synchronously)."""
        ok = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return ok

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending:
                    return
                path = next(iter(self._pending))
                snap = self._pending.pop(path)
                self._busy = True
            error = None
            try:
                self._write(snap)
            except Exception as exc:  # noqa: BLE001 - reported to the user; the writer must survive
                log.exception("autosave of %s failed", snap.path)
                error = str(exc)
            if self.on_saved is not None:  # before flush() returns
                try:
                    self.on_saved(snap.path, error)
                except Exception:  # noqa: BLE001 - a callback bug must not stop the autosaves
                    log.exception("autosave callback failed")
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _write(self, snap: Snapshot) -> None:
        if not snap.edited.any():
            remove_edits(snap.path)
            return
        digest = snap.digest
        if digest is None:
            assert snap.image is not None
            cached, digest = self._digest  # the last image's hash (holding it: the same object is the same image)
            if cached is not snap.image:
                digest = image_digest(snap.image)
                self._digest = (snap.image, digest)
        save_edits(snap.path, snap.label, snap.edited, image_name=snap.image_name, digest=digest)


@dataclass
class EditsStore:
    """Where autosaves go (next to the images, or ``project_dir``) and reading them back."""

    project_dir: Path | None = None

    def path_for(self, image_path: Path) -> Path:
        return autosave_path(image_path, self.project_dir)

    def has_edits(self, image_path: Path) -> bool:
        return self.path_for(image_path).exists()

    def load(self, image_path: Path, image: np.ndarray, *, set_aside: bool = True
             ) -> tuple[np.ndarray, np.ndarray] | None:
        """The autosaved ``(label, edited)`` of ``image_path`` (pixels ``image``), or None. With ``set_aside``
        a bad file is renamed aside and :class:`AutosaveCorrupt` raised; without, it is only logged (None).
        The first load from a folder removes the temporaries a killed autosave left there."""
        path = self.path_for(image_path)
        clean_stale_temps_once(path.parent)
        if not set_aside:
            if not path.exists():
                return None
            try:
                label, edited, meta = read_edits(path)
            except ValueError as exc:
                log.warning("%s: ignoring unreadable autosave (%s)", path, exc)
                return None
            if label.shape != image.shape[:2] or meta.get("digest") != image_digest(image):
                log.warning("%s: ignoring autosave made for another version of the image", path)
                return None
            return label, edited
        return load_edits(path, image_hw=image.shape[:2], digest=image_digest(image))
