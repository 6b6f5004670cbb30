"""The bundled checkpoints (``resources/weights/*.pt``), one-click presets of them (model + ensemble partner),
what a checkpoint was trained on, and a cheap look at any checkpoint's metadata."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from deconv_gui.core.errors import CheckpointError
from deconv_gui.io.checkpoints import ModelMeta, is_shard_file, read_meta

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
BUNDLED_WEIGHTS_DIR = RESOURCES / "weights"


@dataclass(frozen=True)
class ModelInfo:
    """A checkpoint file and what it says about itself."""

    path: Path
    meta: ModelMeta

    @property
    def label(self) -> str:
        """Menu text, e.g. ``"demo_synthetic — deconvnet ×0.25, 6 classes"``."""
        m = self.meta
        return f"{self.path.stem} — {m.architecture} ×{m.width:g}, {m.num_classes} classes"


def bundled_models(folder: Path | None = None) -> list[ModelInfo]:
    """Every readable ``*.pt`` in ``folder`` (default: the bundled weights), sorted by name; shard files
    (``name.part2.pt`` …, read with their checkpoint) are passed over, unreadable files logged and skipped."""
    folder = BUNDLED_WEIGHTS_DIR if folder is None else folder
    found = []
    for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        if is_shard_file(path):
            continue
        try:
            found.append(ModelInfo(path, read_meta(path)))
        except CheckpointError as exc:
            log.warning("skipping bundled weights: %s", exc)
    return found


@dataclass(frozen=True)
class ModelPreset:
    """A one-click choice of bundled files: the model and, optionally, its ensemble partner (file names in the
    bundled weights folder). ``trained_on`` is said when the checkpoint's own metadata does not tell."""

    name: str
    weights: str
    partner: str | None = None
    trained_on: str = ""
    demo: bool = False

    def paths(self, folder: Path | None = None) -> tuple[Path, Path | None]:
        folder = BUNDLED_WEIGHTS_DIR if folder is None else folder
        return folder / self.weights, folder / self.partner if self.partner else None

    def available(self, folder: Path | None = None) -> bool:
        return all(p is None or p.is_file() for p in self.paths(folder))


CAMVID = "CamVid road scenes"
PRESETS: tuple[ModelPreset, ...] = (
    ModelPreset("CamVid EDeconvNet (DeconvNet + FCN-8s partner)", "camvid_deconvnet.pt", "camvid_fcn8s.pt", CAMVID),
    ModelPreset("CamVid DeconvNet", "camvid_deconvnet.pt", None, CAMVID),
    ModelPreset("CamVid FCN-8s", "camvid_fcn8s.pt", None, CAMVID),
    ModelPreset("Demo (synthetic)", "demo_synthetic.pt", None, "synthetic shapes", demo=True),
)
"""Best first: an image opened without ``--weights`` gets the first available non-demo preset."""


def available_presets(folder: Path | None = None) -> list[ModelPreset]:
    return [p for p in PRESETS if p.available(folder)]


def default_preset(*, demo: bool, folder: Path | None = None) -> ModelPreset | None:
    """What to load when the user named no weights: the demo model for the bundled demo scene, else the best
    available pair (falling back to whatever is bundled)."""
    found = available_presets(folder)
    preferred = [p for p in found if p.demo == demo] + [p for p in found if p.demo != demo]
    return preferred[0] if preferred else None


def preset_for(weights: Path | None, partner: Path | None, folder: Path | None = None) -> ModelPreset | None:
    """The preset whose files are exactly ``weights`` + ``partner`` (None when the user loaded other files)."""
    if weights is None:
        return None
    loaded = (Path(weights).resolve(), Path(partner).resolve() if partner is not None else None)
    for preset in PRESETS:
        w, p = preset.paths(folder)
        if (w.resolve(), p.resolve() if p is not None else None) == loaded:
            return preset
    return None


def trained_on(meta: ModelMeta) -> str | None:
    """What the checkpoint says it was trained on (from its training config), e.g. "CamVid road scenes"; None
    when it does not say."""
    config = meta.train_config or {}
    fmt, data = str(config.get("format", "")), str(config.get("data", ""))
    if "camvid" in f"{fmt} {data}".lower():
        return CAMVID
    if "synthetic" in data.lower() or meta.class_names[:2] == ["background", "disc"]:
        return "synthetic shapes"
    if data:
        return f"{Path(data).name} ({fmt})" if fmt else Path(data).name
    return None


def describe_loaded(weights: Path | None, meta: ModelMeta | None, partner: Path | None = None,
                    partner_meta: ModelMeta | None = None, folder: Path | None = None) -> str:
    """The status line's account of the loaded model(s): the preset's name (or the files'), and what they were
    trained on, e.g. "CamVid EDeconvNet (DeconvNet + FCN-8s partner) — trained on CamVid road scenes"."""
    if weights is None or meta is None:
        return "no model loaded: Model → Bundled models, or File → Load weights…"
    preset = preset_for(weights, partner, folder)
    name = preset.name if preset is not None else Path(weights).name + (f" + partner {Path(partner).name}"
                                                                          if partner is not None else "")
    data = trained_on(meta) or (preset.trained_on if preset is not None else None)
    if partner_meta is not None and preset is None:
        partner_data = trained_on(partner_meta)
        if partner_data and partner_data != data:
            data = f"{data or 'unknown data'} (partner: {partner_data})"
    return f"{name} — trained on {data}" if data else f"{name} — training data unknown"
