"""ONNX export of every architecture (DeconvNet's unpooling, PSPNet's adaptive pools, Caffe FCN-8s's geometry and
BGR preprocessing included): onnxruntime's scores equal the app's torch runner's on random images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deconv_gui.cli import main
from deconv_gui.inference.runner import ModelRunner, RunnerOptions
from deconv_gui.io.checkpoints import save_checkpoint
from deconv_gui.models.caffe_import import import_caffe
from deconv_gui.models.registry import model_from_checkpoint
from tests.conftest import save_tiny_checkpoint
from tests.models.caffe_nets import fcn8s_layers, write_caffemodel

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def _check(ckpt: Path, out: Path, size: tuple[int, int], capsys: pytest.CaptureFixture) -> None:
    args = ["export-onnx", str(ckpt), "--out", str(out), "--size", str(size[0]), str(size[1])]
    assert main(args) == 0, capsys.readouterr().err
    assert f"(N, 3, {size[0]}, {size[1]}) RGB 0-255" in capsys.readouterr().out
    runner = ModelRunner.from_checkpoint(str(ckpt), RunnerOptions(device="cpu", precision="fp32"))
    images = np.random.default_rng(1).integers(0, 256, (2, *size, 3), dtype=np.uint8)  # batch 2: dynamic axis
    expected = runner.forward_batch(images).cpu().numpy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(["scores"], {"image": images.transpose(0, 3, 1, 2).astype(np.float32)})[0]
    assert got.shape == expected.shape == (2, runner.num_classes, *size)
    assert np.abs(expected).max() > 1e-3
    # 1e-4, or twice torch's own float32 error where that is larger (PSPNet's dilated ResNet at O(10) scores:
    # torch and onnxruntime are both ~4e-4 from the float64 result, and as far from each other)
    noise = np.abs(expected - _float64_scores(ckpt, images)).max()
    assert np.abs(got - expected).max() <= max(1e-4, 2 * noise)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["class_names"]) == runner.meta.class_names


def _calibrated_checkpoint(path: Path, arch: str, size: tuple[int, int]) -> Path:
    """A tiny random model whose BN statistics are those of random images (as after training), so that its
    scores are O(1) — random init with identity BN gives scores in the thousands (or 1e-18 for DeconvNet),
    where an absolute 1e-4 says nothing."""
    save_tiny_checkpoint(path, arch, seed=3)
    model, meta = model_from_checkpoint(path)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    torch.manual_seed(0)
    model.train()(torch.randn(4, 3, *size))
    save_checkpoint(path, model.state_dict(), meta)
    return path


def _float64_scores(ckpt: Path, images: np.ndarray) -> np.ndarray:
    model, meta = model_from_checkpoint(ckpt)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float64)) / 255.0
    if meta.channel_order == "bgr":
        x = x.flip(1)
    mean = torch.tensor(meta.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(meta.std, dtype=torch.float64).view(1, 3, 1, 1)
    with torch.no_grad():
        return model.double()((x - mean) / std)["out"].numpy()


@pytest.mark.parametrize("arch", ["deconvnet", "fcn8s", "pspnet", "linknet"])
def test_export_matches_torch(tmp_path: Path, arch: str, capsys: pytest.CaptureFixture) -> None:
    size = (224, 224) if arch == "deconvnet" else (96, 128)
    ckpt = _calibrated_checkpoint(tmp_path / f"{arch}.pt", arch, size)
    _check(ckpt, tmp_path / f"{arch}.onnx", size, capsys)


def test_export_of_an_imported_caffe_fcn8s(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The original geometry (pad 100, ceil pools, crops) and BGR − mean preprocessing survive the export."""
    layers = fcn8s_layers(1 / 16, seed=4)
    for layer in layers:  # Caffe's 0–255 inputs: scale the three score layers so the output is O(1)
        if layer.name.startswith("score-"):
            layer.blobs = [b * 1e-3 for b in layer.blobs]
    src = write_caffemodel(tmp_path / "fcn.caffemodel", layers)
    import_caffe(src, tmp_path / "fcn.pt")
    _check(tmp_path / "fcn.pt", tmp_path / "fcn.onnx", (75, 101), capsys)


def test_bad_size_is_a_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = save_tiny_checkpoint(tmp_path / "d.pt", "deconvnet")
    assert main(["export-onnx", str(ckpt), "--out", str(tmp_path / "d.onnx"), "--size", "200", "200"]) == 2
    assert "try 224×224" in capsys.readouterr().err
    assert not (tmp_path / "d.onnx").exists()
