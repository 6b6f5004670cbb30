"""Atomic file writes: write to a temporary file in the target's folder, fsync, then ``os.replace``.

A reader (or a crash) never sees a half-written result: the target either keeps its previous content or holds
the complete new one. Failures a user can cause (missing or read-only folder, disk full) raise
:class:`~deconv_gui.core.errors.OutputError` naming the target file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from deconv_gui.core.errors import OutputError

log = logging.getLogger(__name__)


def _current_umask() -> int:
    """The process umask (read once; setting it back immediately keeps the process unchanged)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write into; on success move it over ``path`` atomically.

    The temporary name ends with ``path``'s suffix, so encoders that choose a format from the extension work.
    When the body raises, the temporary file is removed and ``path`` is left as it was. ``OSError`` from the
    body or the final move becomes :class:`OutputError` ("cannot write: <reason>"); other exceptions propagate
    unchanged. With ``overwrite=False`` an existing ``path`` raises ``OutputError`` ("already exists").
    The new file gets the permissions of the file it replaces, or the usual ``0o666 & ~umask``.
    """
    target = Path(path)
    if not overwrite and target.exists():
        raise OutputError("already exists (not overwriting)", target)
    if target.is_dir():
        raise OutputError("cannot write: is a folder", target)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.tmp", suffix=target.suffix, dir=target.parent)
    except FileNotFoundError:
        raise OutputError(f"cannot write: folder {str(target.parent)!r} does not exist", target) from None
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", target) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not overwrite and target.exists():
            raise OutputError("already exists (not overwriting)", target)
        _fsync_file(tmp)
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        _remove_quietly(tmp)
        raise OutputError(f"cannot write: {exc.strerror or exc}", target) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself; best effort (not every platform or filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        log.debug("fsync of folder %s failed: %s", folder, exc)
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove temporary file %s: %s", path, exc)
