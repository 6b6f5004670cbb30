"""User preferences in a readable JSON file (``~/.config/deconv_gui/preferences.json``), Qt-free.

``DECONV_GUI_CONFIG_DIR`` overrides the folder (tests, portable installs). Window geometry lives in QSettings,
not here. Unknown keys are ignored and a broken file falls back to defaults (with a warning), so a bad edit
never stops the app from starting.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deconv_gui.io.atomic import atomic_write_bytes
from deconv_gui.postprocess.crf import CRFParams

log = logging.getLogger(__name__)

MAX_RECENT = 10


def config_dir() -> Path:
    """``$DECONV_GUI_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/deconv_gui``, else ``~/.config/deconv_gui``."""
    env = os.environ.get("DECONV_GUI_CONFIG_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "deconv_gui"


@dataclass
class Preferences:
    """Everything the app remembers between runs. ``device``: ``"auto" | "cpu" | "cuda"``."""

    recent_files: list[str] = field(default_factory=list)
    recent_weights: list[str] = field(default_factory=list)
    num_proposals: int = 50
    crf: dict[str, Any] = field(default_factory=lambda: dataclasses.asdict(CRFParams()))
    device: str = "auto"
    edge_model_file: str | None = None
    annotation_folder: str | None = None
    """Autosave hand edits into this project folder; None: the default one outside the data
    (``deconv_gui.document.output_folders.default_edits_folder``)."""
    export_formats: list[str] = field(default_factory=lambda: ["palette", "overlay"])
    """The formats ticked in the export dialog last time."""
    export_folder: str | None = None
    """The export dialog's folder last time; None: the image folder's project folder outside the data."""

    def crf_params(self) -> CRFParams:
        try:
            return CRFParams(**self.crf)
        except (TypeError, ValueError) as exc:
            log.warning("ignoring invalid CRF preferences (%s)", exc)
            return CRFParams()

    def set_crf_params(self, params: CRFParams) -> None:
        self.crf = dataclasses.asdict(params)

    def add_recent_file(self, path: str | os.PathLike[str]) -> None:
        self.recent_files = _push(self.recent_files, str(Path(path).resolve()))

    def add_recent_weights(self, path: str | os.PathLike[str]) -> None:
        self.recent_weights = _push(self.recent_weights, str(Path(path).resolve()))


def _push(items: list[str], item: str) -> list[str]:
    return [item, *[i for i in items if i != item]][:MAX_RECENT]


def preferences_path() -> Path:
    return config_dir() / "preferences.json"


def load_preferences(path: Path | None = None) -> Preferences:
    """Read the preferences file; missing → defaults, unreadable → defaults with a logged warning."""
    path = path or preferences_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Preferences()
    except (OSError, ValueError) as exc:
        log.warning("%s: ignoring unreadable preferences (%s)", path, exc)
        return Preferences()
    if not isinstance(data, dict):
        log.warning("%s: ignoring preferences that are not a JSON object", path)
        return Preferences()
    prefs = Preferences()
    for f in dataclasses.fields(Preferences):
        if f.name in data:
            setattr(prefs, f.name, data[f.name])
    prefs.recent_files = [str(p) for p in prefs.recent_files if isinstance(p, str)][:MAX_RECENT]
    prefs.recent_weights = [str(p) for p in prefs.recent_weights if isinstance(p, str)][:MAX_RECENT]
    try:
        prefs.num_proposals = max(1, int(prefs.num_proposals))
    except (TypeError, ValueError):
        prefs.num_proposals = Preferences.num_proposals
    if not isinstance(prefs.crf, dict):
        prefs.crf = Preferences().crf
    return prefs


def save_preferences(prefs: Preferences, path: Path | None = None) -> Path:
    """Write the preferences atomically as indented JSON; an unwritable folder is logged, not raised."""
    path = path or preferences_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(dataclasses.asdict(prefs), indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:
        log.warning("%s: cannot save preferences (%s)", path, exc)
    return path
