"""Bundled model presets and what a checkpoint was trained on (reads only the metadata of the bundled files)."""

from __future__ import annotations

import shutil
from pathlib import Path

from deconv_gui.document.models import (
    BUNDLED_WEIGHTS_DIR,
    PRESETS,
    default_preset,
    describe_loaded,
    preset_for,
    read_meta,
    trained_on,
)


def test_presets_and_the_default_for_an_image_and_for_the_demo(tmp_path: Path, tiny_deconvnet_ckpt: Path) -> None:
    assert default_preset(demo=False, folder=tmp_path) is None
    shutil.copy(tiny_deconvnet_ckpt, tmp_path / "demo_synthetic.pt")
    assert default_preset(demo=False, folder=tmp_path).name == "Demo (synthetic)"  # whatever is bundled
    shutil.copy(tiny_deconvnet_ckpt, tmp_path / "camvid_deconvnet.pt")
    assert default_preset(demo=False, folder=tmp_path).name == "CamVid DeconvNet"
    shutil.copy(tiny_deconvnet_ckpt, tmp_path / "camvid_fcn8s.pt")
    best = default_preset(demo=False, folder=tmp_path)
    assert best is PRESETS[0] and best.partner == "camvid_fcn8s.pt"
    assert default_preset(demo=True, folder=tmp_path).name == "Demo (synthetic)"
    weights, partner = best.paths(tmp_path)
    assert preset_for(weights, partner, tmp_path) is best and preset_for(weights, None, tmp_path) is PRESETS[1]
    assert preset_for(tmp_path / "other.pt", None, tmp_path) is None


def test_the_shipped_camvid_pair_says_what_it_was_trained_on() -> None:
    weights, partner = PRESETS[0].paths()
    if not (weights.is_file() and partner.is_file()):  # pragma: no cover - a checkout without the weights
        return
    assert default_preset(demo=False) is PRESETS[0]
    meta, partner_meta = read_meta(weights), read_meta(partner)
    assert trained_on(meta) == trained_on(partner_meta) == "CamVid road scenes"
    assert describe_loaded(weights, meta, partner, partner_meta) == (
        "CamVid EDeconvNet (DeconvNet + FCN-8s partner) — trained on CamVid road scenes")
    assert describe_loaded(BUNDLED_WEIGHTS_DIR / "x.pt", meta).startswith("x.pt — trained on CamVid")
