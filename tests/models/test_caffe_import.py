"""Caffe import: width-scaled DeconvNet and FCN-8s caffemodels (the release's names, random blobs) imported
into checkpoints give the same output as an independent layer-by-layer reference computed from the blobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deconv_gui.core.palette import VOC_CLASSES, voc_palette
from deconv_gui.inference.runner import ModelRunner, RunnerOptions
from deconv_gui.io.checkpoints import load_checkpoint
from deconv_gui.models.caffe_import import import_caffe
from deconv_gui.models.registry import model_from_checkpoint
from tests.models.caffe_nets import (
    caffe_preprocess,
    deconvnet_layers,
    fcn8s_layers,
    reference_forward,
    write_caffemodel,
)

WIDTH = 1 / 16


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_deconvnet_import_matches_the_reference(tmp_path: Path, version: str) -> None:
    layers = deconvnet_layers(WIDTH, seed=1)
    src = write_caffemodel(tmp_path / "deconvnet.caffemodel", layers, version)
    summary = import_caffe(src, tmp_path / "deconvnet.pt", "deconvnet")
    assert (summary.architecture, summary.width, summary.num_classes) == ("deconvnet", WIDTH, 21)
    model, meta = model_from_checkpoint(tmp_path / "deconvnet.pt")
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 50
    ours = model.double()(x)["out"]
    ref = reference_forward(layers, x)
    assert ours.shape == ref.shape == (2, 21, 224, 224)
    assert ref.abs().max() > 0.1  # not a trivially zero output
    assert (ours - ref).abs().max().item() <= 1e-5


def test_fcn8s_import_keeps_the_caffe_geometry(tmp_path: Path) -> None:
    layers = fcn8s_layers(WIDTH, seed=2)
    src = write_caffemodel(tmp_path / "fcn.caffemodel", layers)
    summary = import_caffe(src, tmp_path / "fcn.pt")  # auto-detected
    assert summary.architecture == "fcn8s"
    model, meta = model_from_checkpoint(tmp_path / "fcn.pt")
    assert meta.geometry == "caffe"
    for h, w in ((70, 90), (37, 64)):  # odd sizes: the ceil-mode pools and the 5/9/31 crops all matter
        x = torch.randn(1, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h)) * 50
        ours = model.double()(x)["out"]
        ref = reference_forward(layers, x)
        assert ours.shape == ref.shape == (1, 21, h, w)
        assert ref.abs().max() > 0.1
        assert (ours - ref).abs().max().item() <= 1e-5


def test_metadata_carries_voc_classes_and_caffe_preprocessing(tmp_path: Path) -> None:
    src = write_caffemodel(tmp_path / "d.caffemodel", deconvnet_layers(WIDTH))
    import_caffe(src, tmp_path / "d.pt")
    _, meta = load_checkpoint(tmp_path / "d.pt")
    assert meta.class_names == list(VOC_CLASSES)
    assert meta.palette == voc_palette()[:21].tolist()
    assert meta.channel_order == "bgr"
    np.testing.assert_allclose(np.asarray(meta.mean) * 255, [104.00698793, 116.66876762, 122.67891434])
    np.testing.assert_allclose(np.asarray(meta.std) * 255, [1, 1, 1])


@pytest.mark.parametrize("arch", ["deconvnet", "fcn8s"])
def test_runner_applies_caffe_preprocessing(tmp_path: Path, arch: str) -> None:
    """The runner (fp32, BN folded) on a uint8 RGB image equals the reference on Caffe's BGR − mean input."""
    layers = deconvnet_layers(WIDTH, seed=3) if arch == "deconvnet" else fcn8s_layers(WIDTH, seed=3)
    src = write_caffemodel(tmp_path / "m.caffemodel", layers)
    import_caffe(src, tmp_path / "m.pt", arch)
    runner = ModelRunner.from_checkpoint(str(tmp_path / "m.pt"), RunnerOptions(device="cpu", precision="fp32"))
    size = (224, 224) if arch == "deconvnet" else (61, 83)
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    ours = runner.whole_image_scores(image)
    ref = reference_forward(layers, caffe_preprocess(image))[0].numpy()
    assert ours.shape == ref.shape
    scale = np.abs(ref).max()
    assert np.abs(ours - ref).max() <= 1e-4 * max(1.0, scale)
    # the channel order matters: an RGB-fed reference is far off
    rgb = caffe_preprocess(image[..., ::-1].copy())
    assert np.abs(ours - reference_forward(layers, rgb)[0].numpy()).max() > 1e-2 * scale
