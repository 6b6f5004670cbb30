"""Up-front checks on the files and folders a user names: readable input files, writable output folders.

Each check raises the :class:`~deconv_gui.core.errors.DeconvGuiError` subclass its caller asks for, with a
message that names the path and the reason, so that the reader or writer that follows only meets problems
specific to its format.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from deconv_gui.core.errors import DeconvGuiError, OutputError
from deconv_gui.io.atomic import clean_stale_temps_once, make_temp_file


def require_readable_file(
    path: str | os.PathLike[str], what: str, error: type[DeconvGuiError] = DeconvGuiError
) -> Path:
    """Check that ``path`` is an existing, non-empty file this process may read; return it as a ``Path``.

    ``what`` names the expected kind of file with its article ("an image file", "a checkpoint file") for the
    folder message. Raises ``error`` (message: the path and one of "file not found", "is a folder, not
    <what>", "symbolic link loop", "broken symbolic link (...)", "not a regular file (...)", "cannot read:
    permission denied", "cannot read: <reason>", "empty file (0 bytes)"). A named pipe is refused before it is
    opened (opening one would block until something writes to it).
    """
    p = Path(path)
    reason = not_a_file_reason(p)
    if reason == "is a folder":
        raise error(f"is a folder, not {what}", p)
    if reason is not None:
        raise error(reason, p)
    try:
        size = p.stat().st_size
        with p.open("rb"):
            pass
    except FileNotFoundError:
        raise error("file not found", p) from None
    except PermissionError:
        raise error("cannot read: permission denied", p) from None
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", p) from None
    if size == 0:
        raise error("empty file (0 bytes)", p)
    return p


def not_a_file_reason(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is not a regular file (following symbolic links), or None when it is one.

    The reasons: "file not found", "is a folder", "symbolic link loop", "broken symbolic link (its target ...
    does not exist)", "not a regular file (a named pipe | a socket | a device)", "cannot read: <reason>".
    """
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        if os.path.islink(p):
            try:
                target = os.readlink(p)
            except OSError:
                target = "?"
            return f"broken symbolic link (its target {target!r} does not exist)"
        return "file not found"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if isinstance(exc, PermissionError):
            return "cannot read: permission denied"
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder"
    kind = "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"not a regular file ({kind})"


def resolved(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute with its symbolic links resolved as far as they go; never raises (Python 3.11's
    ``Path.resolve`` raises ``RuntimeError`` on a symbolic link loop)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def require_writable_folder(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and its parents) when missing and check that files can be created in it.

    The check really creates (and removes) an empty temporary file, so it holds for every user, root
    included, and every filesystem (read-only mounts, ACLs). The first check of a folder in a process also
    removes the stale temporaries an interrupted run left there (:func:`~deconv_gui.io.atomic.clean_stale_temps`). Raises :class:`OutputError` naming the folder:
    "cannot create the output folder: <reason>", "is a file, not a folder", "folder is not writable: <reason>".
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError("is a file, not a folder", folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder: {exc.strerror or exc}", folder) from None
    try:
        probe = make_temp_file(folder, "write-check")
    except OSError as exc:
        raise OutputError(f"folder is not writable: {exc.strerror or exc}", folder) from None
    probe.unlink(missing_ok=True)
    clean_stale_temps_once(folder)
    return folder
