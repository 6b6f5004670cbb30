"""torchvision segmentation state dicts (random init, built here; nothing downloaded) import as ordinary
checkpoints: recognised from their keys, scores equal torchvision's own model, usable as ensemble partners."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import segmentation as tvseg

from deconv_gui.cli import main
from deconv_gui.core.errors import CheckpointError
from deconv_gui.core.palette import VOC_CLASSES
from deconv_gui.core.synthetic import make_scene
from deconv_gui.inference.runner import ModelRunner, RunnerOptions
from deconv_gui.models.caffe_import import import_caffe
from deconv_gui.models.torchvision_seg import import_torchvision
from tests.models.caffe_nets import deconvnet_layers, write_caffemodel

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _save_tv(path: Path, name: str, **kwargs: object) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = getattr(tvseg, name)(weights=None, weights_backbone=None, num_classes=21, **kwargs).eval()
    for m in model.modules():  # trained-like BN statistics so the scores are not all ~0 or ~1e4
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    torch.save(model.state_dict(), path)
    return path, model


@pytest.mark.parametrize(("name", "kwargs"), [("lraspp_mobilenet_v3_large", {}),
                                              ("deconvnet_partner_fcn_resnet50", {"aux_loss": True})])
def test_recognised_and_equal_to_torchvision(tmp_path: Path, name: str, kwargs: dict,
                                             capsys: pytest.CaptureFixture) -> None:
    tv_name = name.removeprefix("deconvnet_partner_")
    src, model = _save_tv(tmp_path / f"{tv_name}_coco.pth", tv_name, **kwargs)
    out = tmp_path / "tv.pt"
    assert main(["import-torchvision", str(src), "--out", str(out)]) == 0
    assert f"torchvision {tv_name}, 21 classes (VOC)" in capsys.readouterr().out
    runner = ModelRunner.from_checkpoint(str(out), RunnerOptions(device="cpu", precision="fp32"))
    assert runner.meta.class_names == list(VOC_CLASSES) and runner.architecture == tv_name
    image = np.random.default_rng(0).integers(0, 256, (75, 100, 3), dtype=np.uint8)  # any size: no padding
    ours = runner.whole_image_scores(image)
    x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
    x = x / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = model(x)["out"][0].numpy()
    assert ours.shape == ref.shape == (21, 75, 100)
    assert np.abs(ours - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_partner_of_an_imported_caffe_deconvnet(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The paper's DeconvNet (Caffe import, BGR) with a torchvision partner (RGB): each runner normalises its own."""
    caffe = write_caffemodel(tmp_path / "d.caffemodel", deconvnet_layers(1 / 16))
    import_caffe(caffe, tmp_path / "deconvnet.pt")
    src, _ = _save_tv(tmp_path / "lraspp.pth", "lraspp_mobilenet_v3_large")
    import_torchvision(src, tmp_path / "lraspp.pt")
    scene = tmp_path / "scene.png"
    Image.fromarray(make_scene(3, height=120, width=160).image).save(scene)
    args = ["segment", str(scene), "--weights", str(tmp_path / "deconvnet.pt"), "--partner",
            str(tmp_path / "lraspp.pt"), "--mode", "whole", "--device", "cpu", "--out", str(tmp_path / "out")]
    assert main(args) == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "scene.png").exists()


def test_bad_files(tmp_path: Path) -> None:
    classification = tmp_path / "resnet18.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)}, classification)
    with pytest.raises(CheckpointError, match="not a torchvision segmentation state dict"):
        import_torchvision(classification, tmp_path / "x.pt")
    src, _ = _save_tv(tmp_path / "lraspp.pth", "lraspp_mobilenet_v3_large")
    with pytest.raises(CheckpointError, match="do not fit torchvision's fcn_resnet50"):
        import_torchvision(src, tmp_path / "x.pt", "fcn_resnet50")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(CheckpointError, match="text.pth: not a readable torch weights file"):
        import_torchvision(tmp_path / "text.pth", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
