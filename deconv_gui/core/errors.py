"""The one exception type for errors a user can cause (bad file, wrong checkpoint, bad dataset).

The CLI and the UI show ``str(error)`` and never a traceback, so every message names the file (when there is
one) and the reason.
"""

from __future__ import annotations

from os import PathLike


class DeconvGuiError(Exception):
    """An error caused by user input. ``str(err)`` is a complete, user-facing sentence."""

    def __init__(self, reason: str, path: str | PathLike[str] | None = None) -> None:
        self.reason = reason
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class ImageReadError(DeconvGuiError):
    """An image file could not be read (missing, corrupt, unsupported, too large)."""


class CheckpointError(DeconvGuiError):
    """A weights file is not a valid checkpoint or does not match what was asked for."""


class DatasetError(DeconvGuiError):
    """A dataset tree is missing files or holds inconsistent images/labels."""


class OutputError(DeconvGuiError):
    """A result could not be written (unwritable folder, disk full)."""


class Cancelled(Exception):
    """Raised inside long work when its :class:`CancelToken` was set; not an error."""
