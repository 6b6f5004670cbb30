"""DeconvNet: size figures, switch wiring, larger inputs, autocast, ImageNet weight mapping and fallback."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from deconv_gui.models import backbones, count_macs, deconvnet
from deconv_gui.models.deconvnet import DeconvNet

TINY = 0.0625


def test_full_width_parameter_count_and_macs() -> None:
    with torch.device("meta"):
        model = deconvnet(num_classes=21)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(251.8, abs=0.1)
    assert count_macs(model, 224, 224) / 1e9 == pytest.approx(32.7, abs=0.1)


def test_layer_inventory() -> None:
    model = deconvnet(num_classes=21, width=TINY)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    deconvs = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(model.encoder_convs) == 13
    assert len(convs) == 13 + 2 + 1  # VGG, fc6/fc7, score
    assert len(deconvs) == 1 + 13  # fc6-deconv + the mirrored decoder
    assert len(bns) == 29  # after every conv/deconv except the score layer
    assert not any(isinstance(m, nn.Dropout | nn.Dropout2d) for m in model.modules())
    assert model.fc6[0].kernel_size == (7, 7) and model.fc6[0].padding == (0, 0)
    assert model.score.out_channels == 21


def test_decoder_init_is_gaussian_001() -> None:
    torch.manual_seed(0)
    model = deconvnet(num_classes=21, width=0.25)
    weights = torch.cat(
        [m.weight.flatten() for m in model.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    )
    assert weights.std().item() == pytest.approx(0.01, rel=0.05)
    assert weights.mean().abs().item() < 1e-3


def test_unpooling_uses_the_matching_pool_switches() -> None:
    """unpool5 gets pool5's indices and pre-pool size, ..., unpool1 gets pool1's: the decoder mirrors the encoder."""
    model = deconvnet(num_classes=3, width=TINY).eval()
    pooled: list[tuple[torch.Tensor, torch.Size]] = []
    unpooled: list[tuple[torch.Tensor, torch.Size]] = []
    model.pool.register_forward_hook(lambda m, inp, out: pooled.append((out[1], inp[0].shape[-2:])))
    model.unpool.register_forward_pre_hook(
        lambda m, args, kwargs: unpooled.append((args[1], torch.Size(kwargs["output_size"]))),
        with_kwargs=True,
    )
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 256))
    assert len(pooled) == len(unpooled) == 5
    for (pool_idx, pool_size), (unpool_idx, unpool_size) in zip(reversed(pooled), unpooled, strict=True):
        assert unpool_idx is pool_idx
        assert unpool_size == pool_size


def test_unpool_puts_values_at_the_argmax() -> None:
    pool, unpool = nn.MaxPool2d(2, 2, return_indices=True), nn.MaxUnpool2d(2, 2)
    x = torch.tensor([[[[1.0, 5.0, 0.0, 2.0], [3.0, 4.0, 7.0, 1.0]]]])
    y, idx = pool(x)
    restored = unpool(y, idx, output_size=x.shape[-2:])
    assert restored.tolist() == [[[[0.0, 5.0, 0.0, 0.0], [0.0, 0.0, 7.0, 0.0]]]]


@pytest.mark.parametrize("size", [(256, 288), (230, 240)])
def test_larger_and_non_multiple_inputs(size: tuple[int, int]) -> None:
    model = deconvnet(num_classes=4, width=TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))["out"]
    assert out.shape == (1, 4, *size)


def test_too_small_input_is_refused() -> None:
    model = deconvnet(num_classes=4, width=TINY)
    with pytest.raises(ValueError, match="224"):
        model(torch.randn(2, 3, 192, 224))


def test_same_fc_padding_keeps_pool5_size() -> None:
    """``fc_padding="same"``: fc6 and fc6-deconv pad 3, so fc7's map is pool5's (7×9 for 224×288, not 1×3) and
    inputs down to 32² pass; the weights have the valid model's shapes (an encoder or fc carries over)."""
    same = deconvnet(num_classes=4, width=TINY, fc_padding="same").eval()
    valid = deconvnet(num_classes=4, width=TINY)
    assert same.fc6[0].padding == (3, 3) and same.fc6_deconv[0].padding == (3, 3)
    assert {k: v.shape for k, v in same.state_dict().items()} == {k: v.shape for k, v in valid.state_dict().items()}
    seen: list[torch.Size] = []
    same.fc7.register_forward_hook(lambda m, inp, out: seen.append(out.shape[-2:]))
    with torch.no_grad():
        assert same(torch.randn(1, 3, 224, 288))["out"].shape == (1, 4, 224, 288)
        assert same(torch.randn(1, 3, 32, 70))["out"].shape == (1, 4, 32, 70)
    assert seen[0] == (7, 9)
    with pytest.raises(ValueError, match="32×32"):
        same(torch.randn(1, 3, 16, 64))
    with pytest.raises(ValueError, match="fc_padding must be one of valid, same"):
        deconvnet(num_classes=4, width=TINY, fc_padding="full")


def test_channels_last_bf16_autocast() -> None:
    # Only "runs, right shape, finite": bf16 rounding may move max-pool switches, so values are not comparable
    # pixel by pixel with the float32 result.
    model = deconvnet(num_classes=4, width=TINY).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 224, 224).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)["out"]
    assert out.shape == (1, 4, 224, 224)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()


def _fake_vgg16_state(device: str) -> dict[str, torch.Tensor]:
    """torchvision vgg16's state-dict names and shapes (features convs + classifier), values irrelevant."""
    with torch.device("meta"):
        import torchvision

        state = torchvision.models.vgg16().state_dict()
    return {k: torch.empty_like(v, device=device) for k, v in state.items()}


def test_imagenet_vgg16_maps_onto_the_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names and shapes line up (fc6/fc7 reshaped from the classifier); checked on the meta device."""
    monkeypatch.setattr(backbones, "_download_state_dict", lambda arch: _fake_vgg16_state("meta"))
    with torch.device("meta"):
        model = DeconvNet(num_classes=21)
        assert model.load_imagenet_encoder()


def test_vgg16_weights_are_copied_and_reshaped() -> None:
    """Values land where they should: a small stand-in with VGG16's conv layout at width 1/16."""
    model = deconvnet(num_classes=3, width=TINY)
    convs = model.encoder_convs
    indices = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    state = {f"features.{i}.weight": torch.randn_like(c.weight) for i, c in zip(indices, convs, strict=True)}
    state |= {f"features.{i}.bias": torch.randn(c.out_channels) for i, c in zip(indices, convs, strict=True)}
    fc6, fc7 = model.fc6[0], model.fc7[0]
    state["classifier.0.weight"] = torch.randn(fc6.out_channels, fc6.weight[0].numel())
    state["classifier.3.weight"] = torch.randn(fc7.out_channels, fc7.in_channels)
    backbones.load_vgg16_convs(state, convs, fc6, fc7)
    assert torch.equal(convs[4].weight, state["features.10.weight"])
    assert torch.equal(fc6.weight.flatten(1), state["classifier.0.weight"])
    assert torch.equal(fc7.weight[:, :, 0, 0], state["classifier.3.weight"])


def test_missing_imagenet_weights_warn_once_and_keep_random_init(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def offline(arch: str) -> dict[str, torch.Tensor]:
        raise OSError("no network")

    monkeypatch.setattr(backbones, "_download_state_dict", offline)
    with caplog.at_level(logging.WARNING), torch.device("meta"):
        model = deconvnet(num_classes=21, pretrained_backbone=True)
    assert isinstance(model, DeconvNet)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "vgg16 not available offline" in warnings[0].getMessage()
    assert "no network" in warnings[0].getMessage()


def test_pretrained_at_other_widths_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        deconvnet(num_classes=3, width=TINY, pretrained_backbone=True)
    assert "only fit width 1.0" in caplog.text
