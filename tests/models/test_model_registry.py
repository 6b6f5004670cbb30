"""Registry: names, KeyError text, and building models from checkpoint files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deconv_gui.core.errors import CheckpointError
from deconv_gui.io.checkpoints import KNOWN_ARCHITECTURES, ModelMeta, save_checkpoint
from deconv_gui.models import (
    INSTANCE_MODELS,
    MODEL_BUILDERS,
    WHOLE_IMAGE_MODELS,
    build_model,
    input_multiple,
    model_from_checkpoint,
)

CLASSES = ["background", "cat", "dog"]


def _meta(architecture: str, width: float, classes: list[str] = CLASSES) -> ModelMeta:
    return ModelMeta(
        architecture=architecture,
        width=width,
        num_classes=len(classes),
        class_names=list(classes),
        palette=[[i, 2 * i, 3 * i] for i in range(len(classes))],
    )


def test_names() -> None:
    assert set(MODEL_BUILDERS) == {"deconvnet", "fcn8s", "pspnet", "linknet"}
    assert set(MODEL_BUILDERS) == set(KNOWN_ARCHITECTURES)  # io's copy of the list must not drift
    assert set(WHOLE_IMAGE_MODELS) == set(MODEL_BUILDERS)
    assert INSTANCE_MODELS == ("deconvnet",)
    assert all(input_multiple(name) == 32 for name in MODEL_BUILDERS)


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(KeyError, match="deconvnet, fcn8s, pspnet, linknet"):
        build_model("segnet", num_classes=3)
    with pytest.raises(KeyError, match="valid names"):
        input_multiple("segnet")


@pytest.mark.parametrize("name", ["linknet", "fcn8s"])
def test_model_from_checkpoint_reproduces_the_model(tmp_path: Path, name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, width=0.125).eval()
    path = tmp_path / f"{name}.pt"
    save_checkpoint(path, model.state_dict(), _meta(name, 0.125))
    loaded, meta = model_from_checkpoint(path, expect_architecture=name, expect_classes=CLASSES)
    assert not loaded.training
    assert meta.class_names == CLASSES
    assert all(t.device.type == "cpu" for t in [*loaded.parameters(), *loaded.buffers()])
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(loaded(x)["out"], model(x)["out"])


def test_fc_padding_travels_in_the_checkpoint(tmp_path: Path) -> None:
    """A DeconvNet trained with ``fc_padding="same"`` is rebuilt so from its metadata (same outputs); a meta
    asking it of another architecture is refused."""
    torch.manual_seed(0)
    model = build_model("deconvnet", num_classes=3, width=0.0625, fc_padding="same").eval()
    path = tmp_path / "same.pt"
    meta = _meta("deconvnet", 0.0625)
    meta.fc_padding = "same"
    save_checkpoint(path, model.state_dict(), meta)
    loaded, read = model_from_checkpoint(path)
    assert read.fc_padding == "same" and loaded.fc_padding == "same"
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(loaded(x)["out"], model(x)["out"])
    bad = _meta("linknet", 0.125)
    bad.fc_padding = "same"
    with pytest.raises(ValueError, match="fc_padding 'same' exists for deconvnet only"):
        save_checkpoint(tmp_path / "bad.pt", {}, bad)


@pytest.fixture()
def linknet_ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "linknet.pt"
    save_checkpoint(
        path, build_model("linknet", num_classes=3, width=0.125).state_dict(), _meta("linknet", 0.125)
    )
    return path


def test_wrong_architecture_is_refused(linknet_ckpt: Path) -> None:
    with pytest.raises(CheckpointError, match="architecture is linknet, expected deconvnet") as info:
        model_from_checkpoint(linknet_ckpt, expect_architecture="deconvnet")
    assert str(linknet_ckpt) in str(info.value)


def test_wrong_classes_are_refused(linknet_ckpt: Path) -> None:
    with pytest.raises(CheckpointError, match="classes differ") as info:
        model_from_checkpoint(linknet_ckpt, expect_classes=["background", "dog", "cat"])
    assert str(linknet_ckpt) in str(info.value)


def test_weights_that_do_not_fit_the_architecture_are_named(tmp_path: Path) -> None:
    state = build_model("linknet", num_classes=3, width=0.125).state_dict()
    path = tmp_path / "mislabelled.pt"
    save_checkpoint(path, state, _meta("linknet", 0.25))  # metadata claims another width
    with pytest.raises(
        CheckpointError, match=r"weights do not fit linknet.*encoder\.conv1\.weight has shape"
    ) as info:
        model_from_checkpoint(path)
    assert str(path) in str(info.value)
    assert "more)" in str(info.value)

    del state["classifier.bias"]
    state["extra.weight"] = torch.zeros(1)
    save_checkpoint(path, state, _meta("linknet", 0.125))
    with pytest.raises(CheckpointError, match="missing classifier.bias; unexpected extra.weight"):
        model_from_checkpoint(path)


def test_whole_image_size_pads_to_multiples_and_deconvnet_minimum() -> None:
    from deconv_gui.models.registry import whole_image_size

    assert whole_image_size("fcn8s", 360, 480) == (384, 480)
    assert whole_image_size("linknet", 100, 65) == (128, 96)
    assert whole_image_size("deconvnet", 100, 480) == (224, 480)  # fc6 needs a 7×7 map: ≥ 224
    assert whole_image_size("deconvnet", 360, 481) == (384, 512)
