"""``deconv-gui train`` argument handling: config layering, user errors as one line, resume rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deconv_gui.cli import main


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deconv_gui.training.synthetic_tree import write_synthetic_tree

    return write_synthetic_tree(tmp_path_factory.mktemp("tree") / "data", "camvid", n_train=2, n_val=1,
                                height=96, width=128, seed=5)


def test_print_config_layers_file_flags_and_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("arch: pspnet\nlr: 0.5\nbatch_size: 4\n")
    code = main(["train", "--config", str(cfg_file), "--data", "d", "--lr", "0.1", "--set", "rotate=5",
                 "--print-config"])
    assert code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["arch"] == "pspnet" and printed["aux_weight"] == 0.4  # PSPNet defaults
    assert (printed["lr"], printed["batch_size"], printed["rotate"]) == (0.1, 4, 5.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--data", "/nonexistent/x", "--format", "camvid", "--arch", "fcn8s", "--iterations", "1"],
         "/nonexistent/x"),
        (["train", "--data", "d", "--set", "nonsense=1"], "unknown config key"),
        (["train", "--data", "d", "--config", "/nonexistent.yaml"], "cannot read the config file"),
        (["train", "--resume", "/nonexistent/run"], "nothing to resume"),
        (["train", "--data", "d", "--arch", "fcn8s", "--stage", "stage1"], "stage1"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err


def test_run_dir_reuse_and_resume_rules(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    argv = ["train", "--data", str(tree), "--format", "camvid", "--arch", "fcn8s", "--width", "0.0625",
            "--iterations", "1", "--batch-size", "1", "--run-dir", str(run), "--val-limit", "1",
            "--set", "crop=[64,64]"]
    assert main(argv) == 0
    assert "finished 1 iterations" in capsys.readouterr().out
    assert yaml.safe_load((run / "config.yaml").read_text())["crop"] == [64, 64]
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--lr", "1.0"]) == 2
    assert "cannot change lr" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--iterations", "2"]) == 0
    assert "finished 2 iterations" in capsys.readouterr().out


def test_instance_wise_validation_leaves_the_trained_model_alone(tmp_path: Path) -> None:
    """val_mode=instances runs the real pipeline on a copy of the model: the run's layers stay trainable and its
    checkpoints keep the architecture's keys (the runner's in-place GEMM rewrite once froze fc7/fc6-deconv and
    renamed their keys in best.pt, final.pt and state.pt)."""
    import numpy as np
    import torch

    from deconv_gui.cli import _instance_labeler
    from deconv_gui.io.checkpoints import ModelMeta
    from deconv_gui.models.registry import build_model, model_from_checkpoint
    from deconv_gui.training.synthetic_tree import write_synthetic_tree

    model = build_model("deconvnet", num_classes=3, width=0.0625)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    meta = ModelMeta(architecture="deconvnet", width=0.0625, num_classes=3, class_names=["background", "a", "b"],
                     palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]], mean=[0.5] * 3, std=[0.25] * 3)
    label = _instance_labeler(model, meta, torch.device("cpu"))(np.zeros((120, 160, 3), np.uint8))
    assert label.shape == (120, 160)
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters()) and model.fc7 is not None

    data = write_synthetic_tree(tmp_path / "data", "folder", n_train=3, n_val=1, height=120, width=160, seed=2)
    run = tmp_path / "run"
    code = main(["train", "--data", str(data), "--format", "folder", "--arch", "deconvnet", "--width", "0.0625",
                 "--stage", "stage1", "--iterations", "2", "--batch-size", "2", "--val-every", "1",
                 "--checkpoint-every", "2", "--run-dir", str(run), "--set", "val_mode=instances"])
    assert code == 0
    for name in ("best.pt", "final.pt"):
        model_from_checkpoint(str(run / name))  # loads: the architecture's own keys
    keys = set(torch.load(run / "state.pt", weights_only=True)["model"])
    assert keys == set(build_model("deconvnet", num_classes=6, width=0.0625).state_dict())
