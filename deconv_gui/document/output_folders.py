"""Where the app writes by default: a project folder *outside* the data, never into an image folder, Qt-free.

``~/deconv_gui_output/`` (``$DECONV_GUI_OUTPUT_DIR`` overrides it: tests, portable installs) holds one folder per
image folder for exports and dataset exports (``<root>/<image folder name>/``) and ``<root>/edits/`` for the
autosaved hand edits (one file per image, named with a hash of its path, so two folders' ``0001.png`` stay
apart). A dataset tree opened for inspection is never written to unless the user picks a folder inside it.
"""

from __future__ import annotations

import os
from pathlib import Path

OUTPUT_ENV = "DECONV_GUI_OUTPUT_DIR"


def output_root() -> Path:
    """``$DECONV_GUI_OUTPUT_DIR``, else ``~/deconv_gui_output``."""
    env = os.environ.get(OUTPUT_ENV)
    return Path(env).expanduser() if env else Path.home() / "deconv_gui_output"


def project_folder(image_path: Path | None) -> Path:
    """The output folder for the images of ``image_path``'s folder: ``<root>/<folder name>`` (``<root>/images``
    without an image)."""
    name = Path(image_path).resolve().parent.name if image_path is not None else ""
    return output_root() / (name or "images")


def default_edits_folder() -> Path:
    """Where hand edits are autosaved unless the user chose a folder: ``<root>/edits``."""
    return output_root() / "edits"


def export_folder(image_path: Path | None, remembered: str | None) -> Path:
    """The export dialog's folder: the one the user chose last time, else the image folder's project folder."""
    return Path(remembered).expanduser() if remembered else project_folder(image_path)


def short_path(path: Path) -> str:
    """``path`` with the home folder written ``~`` (for labels)."""
    path = Path(path)
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)
