"""User preferences in a readable JSON file (``~/.config/deconv_gui/preferences.json``), Qt-free.

``DECONV_GUI_CONFIG_DIR`` overrides the folder (tests, portable installs). Window geometry lives in QSettings,
not here. Every field is checked on reading: a wrong one falls back to its default with one warning naming it,
unknown keys are ignored, a broken file falls back to defaults, and a file with any problem is copied aside
first, so a bad edit never stops the app from starting and is never lost.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.core.vocabulary import DEVICES
from deconv_gui.io.atomic import atomic_write_bytes
from deconv_gui.io.files import resolved
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
    num_proposals: int = 0  # Edge Box proposals kept per image; 0 = the model's own setting (meta.proposals)
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
        self.recent_files = _push(self.recent_files, str(resolved(path)))

    def add_recent_weights(self, path: str | os.PathLike[str]) -> None:
        self.recent_weights = _push(self.recent_weights, str(resolved(path)))


def _push(items: list[str], item: str) -> list[str]:
    return [item, *[i for i in items if i != item]][:MAX_RECENT]


def preferences_path() -> Path:
    return config_dir() / "preferences.json"



_unwritable: set[Path] = set()
"""Preferences files whose last save failed (warned about once)."""
_protected: set[Path] = set()
"""Bad preferences files that could not be copied aside: never overwritten."""


def load_preferences(path: Path | None = None) -> Preferences:
    """Read the preferences file (see :func:`read_preferences`); each problem is logged as a warning."""
    prefs, problems = read_preferences(path)
    for problem in problems:
        log.warning("%s", problem)
    return prefs


def read_preferences(path: Path | None = None) -> tuple[Preferences, list[str]]:
    """The preferences in ``path`` and one message per problem met, each naming the file and the field.

    Missing file → defaults, no message. Unreadable file, not a JSON object → defaults. A field of the wrong
    type or value → that field's default (the others are kept); unknown keys are ignored. A file with any
    problem is first copied aside to ``preferences.json.bad-<time>`` (the message says where), so the save on
    exit never destroys what the user wrote; when that copy fails, the file is not overwritten at all.
    """
    path = Path(path or preferences_path())
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Preferences(), []
    except (OSError, ValueError) as exc:
        return Preferences(), [_kept_aside(path, f"{path}: unreadable preferences ({exc}); using the defaults")]
    if not isinstance(data, dict):
        return Preferences(), [_kept_aside(path, f"{path}: preferences are not a JSON object; using the defaults")]
    prefs, problems = Preferences(), []
    for f in dataclasses.fields(Preferences):
        if f.name not in data:
            continue
        try:
            setattr(prefs, f.name, _CHECKS[f.name](data[f.name]))
        except _PartlyBad as exc:
            setattr(prefs, f.name, exc.kept)
            problems.append(f"{path}: preference {f.name!r} {exc}; kept the rest")
        except (TypeError, ValueError) as exc:
            problems.append(f"{path}: preference {f.name!r} {exc}; using the default {getattr(prefs, f.name)!r}")
    if problems:
        problems[-1] = _kept_aside(path, problems[-1])
    return prefs, problems


def _kept_aside(path: Path, message: str) -> str:
    """Copy the bad preferences file to ``<name>.bad-<time>``; ``message`` plus where it was kept."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, n = path.with_name(f"{path.name}.bad-{stamp}"), 2
    while target.exists():
        target, n = path.with_name(f"{path.name}.bad-{stamp}-{n}"), n + 1
    try:
        atomic_write_bytes(target, path.read_bytes(), overwrite=False)
    except (OSError, DeconvGuiError) as exc:
        _protected.add(path)
        return f"{message} (could not keep a copy: {exc}; the file will not be overwritten)"
    return f"{message} (the file is kept as {target.name})"


class _PartlyBad(ValueError):
    """Some items of a list field were wrong: ``kept`` holds the good ones."""

    def __init__(self, message: str, kept: Any) -> None:
        super().__init__(message)
        self.kept = kept


def _string_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise TypeError(f"must be a list of paths, not {type(value).__name__}")
    good = [v for v in value if isinstance(v, str)][:MAX_RECENT]
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise _PartlyBad(f"must hold only paths (text); dropped {len(bad)} like {bad[0]!r}", good)
    return good


def _proposal_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 0:
        raise ValueError(f"must be a whole number >= 0 (0 = the model's own setting), not {value!r}")
    return int(value)


def _crf(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"must be an object of CRF settings, not {type(value).__name__}")
    try:
        return dataclasses.asdict(CRFParams(**value))
    except TypeError as exc:
        raise TypeError(f"has an unknown setting ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"is invalid ({exc})") from None


def _device(value: Any) -> str:
    if value not in DEVICES:
        raise ValueError(f"must be one of {', '.join(DEVICES)}, not {value!r}")
    return str(value)


def _optional_path(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"must be a path (text) or null, not {value!r}")
    return value


_CHECKS = {
    "recent_files": _string_list, "recent_weights": _string_list, "num_proposals": _proposal_count, "crf": _crf,
    "device": _device, "edge_model_file": _optional_path, "annotation_folder": _optional_path,
    "export_formats": _string_list, "export_folder": _optional_path,
}


def save_preferences(prefs: Preferences, path: Path | None = None) -> Path:
    """Write the preferences atomically as indented JSON. Never raises: a failure (unwritable folder, disk
    full) is logged once per file, and a bad file that could not be copied aside is left as it is."""
    path = Path(path or preferences_path())
    if path in _protected:
        log.info("%s: not saving preferences over the file that could not be kept aside", path)
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(dataclasses.asdict(prefs), indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(path, text.encode("utf-8"))
    except (OSError, DeconvGuiError) as exc:
        if path not in _unwritable:
            _unwritable.add(path)
            log.warning("%s: cannot save preferences (%s)", path, exc)
        return path
    _unwritable.discard(path)
    return path
