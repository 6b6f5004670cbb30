"""--init-encoder: HED / torchvision / checkpoint convs land in the right layers; mismatches are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deconv_gui.core.errors import CheckpointError
from deconv_gui.io.checkpoints import IMAGENET_MEAN, IMAGENET_STD
from deconv_gui.io.hed_weights import CAFFE_BGR_MEAN, read_hed_weights
from deconv_gui.models.deconvnet import deconvnet
from deconv_gui.models.encoder_init import encoder_parameters, fold_caffe_input, load_vgg16_encoder
from deconv_gui.models.fcn import fcn8s
from deconv_gui.proposals.hed_edges import HED, caffe_input
from tests.models.hed_files import write_hed_file

pytest.importorskip("h5py")
SMALL = 1 / 8  # the small HED files' widths are VGG16's / 8


@pytest.fixture()
def hed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "hed.h5"
    write_hed_file(path, seed=3)
    monkeypatch.setenv("DECONV_GUI_HED_FILE", str(path))
    return path


def test_hed_forward_equals_a_functional_reference(hed_file: Path) -> None:
    arrays = read_hed_weights(hed_file)
    model = HED.from_weights(arrays)
    rgb = np.random.default_rng(0).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    x = caffe_input(rgb)
    np.testing.assert_allclose(x[0, 0].numpy(), rgb[..., 2] - CAFFE_BGR_MEAN[0], atol=1e-4)  # blue first
    ref, sides, k = x.double(), [], 0
    for block, count in enumerate((2, 2, 3, 3, 3)):
        if block:
            ref = F.max_pool2d(ref, 2, 2, ceil_mode=True)
        for _ in range(count):
            w, b = arrays.convs[k]
            ref = F.relu(F.conv2d(ref, torch.from_numpy(w).double(), torch.from_numpy(b).double(), padding=1))
            k += 1
        w, b = arrays.sides[block]
        side = F.conv2d(ref, torch.from_numpy(w).double(), torch.from_numpy(b).double())
        sides.append(F.interpolate(side, size=(37, 50), mode="bilinear", align_corners=False))
    w, b = arrays.fuse
    expected = torch.sigmoid(F.conv2d(torch.cat(sides, 1), torch.from_numpy(w).double(), torch.from_numpy(b).double()))
    with torch.no_grad():
        got = model.double()(x.double())  # float64 both sides: random weights on 0..255 input amplify rounding
    assert got.shape == (1, 1, 37, 50)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-9)


def test_folded_conv1_sees_what_caffe_input_gives() -> None:
    torch.manual_seed(0)
    w, b = torch.randn(4, 3, 3, 3), torch.randn(4)
    rgb = torch.rand(1, 3, 9, 9)
    caffe = rgb[:, [2, 1, 0]] * 255 - torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1)
    ours = (rgb - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    w2, b2 = fold_caffe_input(w, b, list(IMAGENET_MEAN), list(IMAGENET_STD))
    expected = F.conv2d(caffe.double(), w.double(), b.double())  # no padding: the border differs by design
    got = F.conv2d(ours.double(), w2.double(), b2.double())
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("builder", [deconvnet, fcn8s])
def test_hed_convs_land_in_the_encoder(hed_file: Path, builder) -> None:  # noqa: ANN001
    model = builder(num_classes=3, width=0.25, encoder_width=SMALL, fc_width=SMALL)
    described = load_vgg16_encoder(model, "hed")
    assert described.startswith("HED")
    hed = read_hed_weights(hed_file)
    for conv, (w, b) in list(zip(model.encoder_convs, hed.convs, strict=True))[1:]:
        np.testing.assert_array_equal(conv.weight.detach().numpy(), w)
        if conv.bias is not None:
            np.testing.assert_array_equal(conv.bias.detach().numpy(), b)
    folded, _ = fold_caffe_input(torch.from_numpy(hed.convs[0][0]), torch.from_numpy(hed.convs[0][1]),
                                 list(IMAGENET_MEAN), list(IMAGENET_STD))
    np.testing.assert_allclose(model.encoder_convs[0].weight.detach().numpy(), folded.numpy(), rtol=1e-6)


def test_a_mismatched_encoder_is_refused_naming_the_layer(hed_file: Path) -> None:
    model = deconvnet(num_classes=3, width=0.25)  # encoder at 0.25, the file at 1/8
    before = [c.weight.clone() for c in model.encoder_convs]
    with pytest.raises(CheckpointError, match=r"conv1_1 of HED .* has shape \(8, 3, 3, 3\).*\(16, 3, 3, 3\)"):
        load_vgg16_encoder(model, "hed")
    assert all(torch.equal(a, c.weight) for a, c in zip(before, model.encoder_convs, strict=True))


def _torchvision_vgg16_bn_state(width: float) -> dict[str, torch.Tensor]:
    """A random state dict with torchvision vgg16_bn's keys (features.N conv/BN), at a width multiplier."""
    state, i, cin = {}, 0, 3
    torch.manual_seed(1)
    for cout in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if cout == "M":
            i += 1
            continue
        c = int(cout * width)
        state[f"features.{i}.weight"] = torch.randn(c, cin, 3, 3)
        state[f"features.{i}.bias"] = torch.randn(c)
        state[f"features.{i + 1}.weight"] = torch.rand(c) + 0.5
        state[f"features.{i + 1}.bias"] = torch.randn(c)
        state[f"features.{i + 1}.running_mean"] = torch.randn(c)
        state[f"features.{i + 1}.running_var"] = torch.rand(c) + 0.5
        state[f"features.{i + 1}.num_batches_tracked"] = torch.tensor(0)
        i, cin = i + 3, c
    state["classifier.0.weight"] = torch.randn(8, cin * 49)
    return state


def test_torchvision_vgg16_bn_file_gives_the_same_stage_output(tmp_path: Path) -> None:
    state = _torchvision_vgg16_bn_state(SMALL)
    torch.save(state, tmp_path / "vgg16_bn.pth")
    model = deconvnet(num_classes=3, width=0.25, encoder_width=SMALL).eval()
    assert load_vgg16_encoder(model, str(tmp_path / "vgg16_bn.pth")).startswith("torchvision vgg16_bn")
    x = torch.randn(1, 3, 16, 16)
    ref = x
    for n in (0, 3):  # conv1_1 + BN + ReLU, conv1_2 + BN + ReLU as torchvision computes them
        ref = F.conv2d(ref, state[f"features.{n}.weight"], state[f"features.{n}.bias"], padding=1)
        ref = F.batch_norm(ref, state[f"features.{n + 1}.running_mean"], state[f"features.{n + 1}.running_var"],
                           state[f"features.{n + 1}.weight"], state[f"features.{n + 1}.bias"], eps=1e-5)
        ref = F.relu(ref)
    with torch.no_grad():
        got = model.encoder[0](x)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-4)


def test_checkpoint_source_and_freezing(tmp_path: Path) -> None:
    from tests.conftest import save_tiny_checkpoint

    ckpt = save_tiny_checkpoint(tmp_path / "fcn.pt", "fcn8s", width=0.125)
    model = deconvnet(num_classes=3, width=0.25, encoder_width=0.125)
    load_vgg16_encoder(model, str(ckpt))
    from deconv_gui.models.registry import model_from_checkpoint

    source, _ = model_from_checkpoint(ckpt)
    assert torch.equal(model.encoder_convs[7].weight, source.encoder_convs[7].weight)
    frozen = encoder_parameters(model, 2)
    assert len(frozen) == 4 * 3  # 4 convs (no bias) + their BN weight and bias
    with pytest.raises(CheckpointError, match="no such file"):
        load_vgg16_encoder(model, str(tmp_path / "missing.pth"))


def test_fc6_fc7_come_along_from_a_checkpoint_where_their_shapes_match(tmp_path: Path) -> None:
    """An FCN-8s trained here hands DeconvNet its fc6/fc7 too (same kernel shapes); other widths keep theirs."""
    from deconv_gui.models.registry import model_from_checkpoint
    from tests.conftest import save_tiny_checkpoint

    ckpt = save_tiny_checkpoint(tmp_path / "fcn.pt", "fcn8s", width=0.125)
    source, _ = model_from_checkpoint(ckpt)
    model = deconvnet(num_classes=3, width=0.25, encoder_width=0.125, fc_width=0.125)
    described = load_vgg16_encoder(model, str(ckpt))
    assert described.endswith("(with fc6/fc7)")
    assert torch.equal(model.fc6[0].weight, source.fc6.weight)
    assert torch.equal(model.fc7[0].weight, source.fc7.weight)
    other = deconvnet(num_classes=3, width=0.25, encoder_width=0.125, fc_width=0.25)
    before = other.fc6[0].weight.clone()
    assert not load_vgg16_encoder(other, str(ckpt)).endswith("(with fc6/fc7)")
    assert torch.equal(other.fc6[0].weight, before)


def test_frozen_stages_from_a_bn_free_source_compute_what_it_computed(tmp_path: Path) -> None:
    """DeconvNet's convs are bias-free and followed by BN; from FCN-8s (no BN) the BN carries the bias: in eval
    mode a "same"-padded DeconvNet's fc7 equals FCN-8s' relu(fc7). Frozen stages keep their BN in eval mode
    while the model trains, so the frozen encoder still gives FCN-8s' pool5 batch after batch, and precise BN
    leaves those layers alone."""
    from deconv_gui.io.checkpoints import load_checkpoint, save_checkpoint
    from deconv_gui.models.encoder_init import freeze_encoder_stages
    from deconv_gui.models.registry import model_from_checkpoint
    from deconv_gui.training.precise_bn import bn_layers
    from tests.conftest import save_tiny_checkpoint

    torch.manual_seed(3)
    tiny = save_tiny_checkpoint(tmp_path / "fcn.pt", "fcn8s", width=0.125)
    source, _ = model_from_checkpoint(tiny)
    with torch.no_grad():  # biases that matter (a ReLU after a dropped bias would cut elsewhere)
        for conv in (*source.encoder_convs, source.fc6, source.fc7):
            conv.bias.normal_(0.0, 0.5)
    ckpt = tmp_path / "fcn_biased.pt"
    save_checkpoint(ckpt, source.state_dict(), load_checkpoint(tiny)[1])
    model = deconvnet(num_classes=3, width=0.25, encoder_width=0.125, fc_width=0.125, fc_padding="same")
    load_vgg16_encoder(model, str(ckpt))
    captured: dict[str, list[torch.Tensor]] = {"fcn_pool5": [], "fcn_fc7": [], "pool5": [], "fc7": []}
    source.stages[4].register_forward_hook(lambda m, inp, out: captured["fcn_pool5"].append(out))
    source.fc7.register_forward_hook(lambda m, inp, out: captured["fcn_fc7"].append(torch.relu(out)))
    model.encoder[4].register_forward_hook(lambda m, inp, out: captured["pool5"].append(F.max_pool2d(out, 2)))
    model.fc7.register_forward_hook(lambda m, inp, out: captured["fc7"].append(out))
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        source(x)
        model.eval()(x)
    np.testing.assert_allclose(captured["fc7"][0].numpy(), captured["fcn_fc7"][0].numpy(), atol=1e-4)

    freeze_encoder_stages(model, 5)
    frozen_bns = [m for stage in model.encoder_stages for m in stage.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(frozen_bns) == 13 and not any(bn in bn_layers(model) for bn in frozen_bns)
    stats_before = frozen_bns[0].running_mean.clone()
    model.train()
    with torch.no_grad():
        model(x * 2)
        model(x)
    assert torch.equal(frozen_bns[0].running_mean, stats_before)
    np.testing.assert_allclose(captured["pool5"][-1].numpy(), captured["fcn_pool5"][0].numpy(), atol=1e-4)
    assert model.fc7[1].training  # fc6/fc7 are not encoder stages: they train
