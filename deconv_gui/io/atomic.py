"""Atomic file writes: write to a temporary file in the target's folder, fsync, then ``os.replace``.

A reader (or a crash) never sees a half-written result: the target either keeps its previous content or holds
the complete new one. Failures a user can cause (missing or read-only folder, disk full) raise
:class:`~deconv_gui.core.errors.OutputError` naming the target file.

Temporary names are recognisable: ``.<name>.deconv-tmp-<pid>-<8 hex><suffix>`` (:func:`temp_name`), so that a
kill's leftovers can be told from anything else. :func:`clean_stale_temps` removes those of processes that are
gone (or older than :data:`STALE_AGE_S`) from a folder we write to, and never touches any other name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import threading
import time
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

#: A temporary of ours older than this is stale even when its process id is in use (the id was reused).
STALE_AGE_S = 24 * 3600
#: A staged folder holding this file is complete and waits to be swapped in; its owner (e.g.
#: :func:`deconv_gui.io.instance_files.recover_instance_exports`) finishes or drops it, :func:`clean_stale_temps` not.
COMMIT_MARK = ".deconv-commit.json"
_TEMP_NAME = re.compile(r"^\..*\.deconv-(?:tmp|old)-(?P<pid>[0-9]{1,10})-[0-9a-f]{8}(?:\.[A-Za-z0-9]{1,10})?$", re.S)
_NAME_KEEP = 96  # characters of the target's name kept in a temporary name (NAME_MAX is 255 bytes)


def temp_name(name: str, *, kind: str = "tmp", suffix: str = "") -> str:
    """A fresh hidden name for a temporary of ``name``: ``.<name>.deconv-<kind>-<pid>-<8 hex><suffix>``.

    ``kind`` is ``"tmp"`` (being written) or ``"old"`` (moved aside, to be removed); ``suffix`` (e.g. ``.png``)
    keeps encoders that pick the format from the extension working.
    """
    if kind not in ("tmp", "old"):
        raise ValueError(f"unknown temporary kind {kind!r}")
    return f".{name[:_NAME_KEEP]}.deconv-{kind}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def temp_owner(name: str) -> int | None:
    """The process id in one of our temporary names (:func:`temp_name`), or None for any other name."""
    match = _TEMP_NAME.match(name)
    return int(match.group("pid")) if match else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (this process counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # it exists, another user's
    except (ProcessLookupError, OverflowError, ValueError):
        return False  # gone, or not a valid process id at all
    return True


def is_stale_temp(path: Path) -> bool:
    """Whether ``path`` is one of our temporaries whose writer is gone: its process id is not running here,
    or it is older than :data:`STALE_AGE_S` (the id was reused). A symlink never is."""
    pid = temp_owner(path.name)
    if pid is None:
        return False
    try:
        st = path.lstat()
    except OSError:
        return False
    if not (path.is_file() or path.is_dir()) or path.is_symlink():
        return False
    age = time.time() - st.st_mtime
    return not pid_alive(pid) or age > STALE_AGE_S


def clean_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove from ``folder`` (not its subfolders) our stale temporaries (:func:`is_stale_temp`); returns them.

    Files and staged folders named by :func:`temp_name` only; a staged folder holding :data:`COMMIT_MARK` is
    left for its owner to finish. Best effort: a missing or unreadable folder, or an entry that cannot be
    removed, is logged and skipped.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        path = Path(entry.path)
        if not is_stale_temp(path):
            continue
        try:
            if path.is_dir():
                if (path / COMMIT_MARK).exists():
                    continue
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            log.warning("could not remove a stale temporary %s: %s", path, exc)
            continue
        removed.append(path)
    if removed:
        log.info("removed %d stale temporary file(s) left by an interrupted run in %s", len(removed), folder)
    return removed


_visited: set[tuple[str, str]] = set()
_visited_lock = threading.Lock()


def first_visit(folder: str | os.PathLike[str], purpose: str = "temps") -> bool:
    """True the first time this process asks about ``folder`` for ``purpose`` (then False): the once-per-run
    cleanups of a folder we write to, without rescanning it for every file."""
    key = (os.path.abspath(folder), purpose)
    with _visited_lock:
        if key in _visited:
            return False
        _visited.add(key)
        return True


def clean_stale_temps_once(folder: str | os.PathLike[str]) -> list[Path]:
    """:func:`clean_stale_temps` the first time this process writes to ``folder`` (later calls: nothing)."""
    return clean_stale_temps(folder) if first_visit(folder) else []


def make_temp_file(folder: Path, name: str, suffix: str = "") -> Path:
    """Create an empty temporary file (mode 0600) named by :func:`temp_name` in ``folder``; ``OSError`` passes."""
    for _ in range(100):
        path = Path(folder) / temp_name(name, suffix=suffix)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise FileExistsError(f"no free temporary name in {folder}")


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
        tmp = make_temp_file(target.parent, target.name, target.suffix)
    except FileNotFoundError:
        raise OutputError(f"cannot write: folder {str(target.parent)!r} does not exist", target) from None
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", target) from exc
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
