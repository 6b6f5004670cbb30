"""TrainConfig: per-architecture defaults, YAML/TOML files, flag and --set overrides, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.training.config import (
    TrainConfig,
    apply_values,
    build_config,
    config_from_dict,
    config_yaml,
    defaults_for,
    parse_set_items,
    read_config_file,
)


def test_stage_defaults_follow_the_paper() -> None:
    s1 = build_config({}, {"arch": "deconvnet", "stage": "stage1"})
    assert (s1.optimizer, s1.lr, s1.momentum, s1.weight_decay) == ("sgd", 0.01, 0.9, 5e-4)
    assert (s1.batch_size * s1.grad_accum, s1.iterations, s1.step_size, s1.gamma) == (64, 20000, 9000, 0.1)
    s2 = build_config({}, {"stage": "stage2"})
    assert (s2.iterations, s2.step_size) == (40000, 10000)
    psp = build_config({}, {"arch": "pspnet"})
    assert (psp.schedule, psp.poly_power, psp.aux_weight, psp.weight_decay) == ("poly", 0.9, 0.4, 1e-4)
    link = build_config({}, {"arch": "linknet"})
    assert (link.optimizer, link.lr, link.class_weighting) == ("rmsprop", 5e-4, "linknet")
    with pytest.raises(DeconvGuiError, match="unknown architecture"):
        defaults_for("resnet", "whole")


def test_yaml_file_then_flags_then_set(tmp_path: Path) -> None:
    f = tmp_path / "run.yaml"
    f.write_text("arch: fcn8s\nlr: 0.5\nbatch-size: 3\ncrop: [224, 256]\nflip: false\n")
    values = read_config_file(f)
    cfg = build_config(values, {"lr": 0.25, **parse_set_items(["batch_size=5", "scale=[0.75, 1.5]"])})
    assert cfg.arch == "fcn8s" and cfg.schedule == "poly"  # fcn8s whole-image defaults, then the file
    assert cfg.lr == 0.25 and cfg.batch_size == 5 and cfg.flip is False
    assert cfg.crop == (224, 256) and cfg.scale == (0.75, 1.5)
    assert config_from_dict(cfg.to_dict()) == cfg
    assert config_from_dict(__import__("yaml").safe_load(config_yaml(cfg))) == cfg


def test_toml_file_with_a_train_table(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_text('[train]\narch = "linknet"\niterations = 7\nscale = [1.0, 1.0]\n')
    cfg = build_config(read_config_file(f), {})
    assert (cfg.arch, cfg.iterations, cfg.scale, cfg.optimizer) == ("linknet", 7, (1.0, 1.0), "rmsprop")


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"lrr": 1}, "unknown config key"),
        ({"iterations": "many"}, "iterations='many' is invalid"),
        ({"crop": [1, 2, 3]}, "crop"),
        ({"flip": "maybe"}, "flip"),
    ],
)
def test_bad_values_are_user_errors(values: dict, match: str) -> None:
    with pytest.raises(DeconvGuiError, match=match):
        apply_values(TrainConfig(), values, "test")


def test_check_rejects_impossible_settings() -> None:
    with pytest.raises(DeconvGuiError, match="optimizer"):
        TrainConfig(data="x", optimizer="lbfgs").check()
    with pytest.raises(DeconvGuiError, match="224"):
        TrainConfig(data="x", crop=(128, 128)).check()
    with pytest.raises(DeconvGuiError, match="stage1"):
        TrainConfig(data="x", arch="fcn8s", stage="stage1").check()
    with pytest.raises(DeconvGuiError, match="min_window"):
        TrainConfig(data="x", min_window=-1).check()
    with pytest.raises(DeconvGuiError, match="fc_padding must be one of valid, same"):
        TrainConfig(data="x", fc_padding="full").check()
    with pytest.raises(DeconvGuiError, match="fc_padding is DeconvNet's"):
        TrainConfig(data="x", arch="fcn8s", fc_padding="same").check()
    with pytest.raises(DeconvGuiError, match="--data"):
        TrainConfig().check()


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DeconvGuiError, match="cannot read"):
        read_config_file(tmp_path / "missing.yaml")
    (tmp_path / "bad.toml").write_text("arch = [")
    with pytest.raises(DeconvGuiError, match="not valid TOML"):
        read_config_file(tmp_path / "bad.toml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(DeconvGuiError, match="mapping"):
        read_config_file(tmp_path / "list.yaml")
    with pytest.raises(DeconvGuiError, match="key=value"):
        parse_set_items(["lr"])
