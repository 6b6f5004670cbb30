"""One shared base test run for every architecture: shape, finiteness, backward, eval/train outputs."""

from __future__ import annotations

import pytest
import torch

from deconv_gui.models import MODEL_BUILDERS, build_model, count_macs

NUM_CLASSES = 5
# (width, input (B, 3, H, W)); DeconvNet needs sides >= 224, so it gets the tiniest width instead.
CASES = {
    "deconvnet": (0.0625, (2, 3, 224, 224)),
    "fcn8s": (0.125, (2, 3, 64, 96)),
    "pspnet": (0.125, (2, 3, 64, 96)),
    "linknet": (0.125, (2, 3, 64, 96)),
}


def test_every_registered_model_has_a_case() -> None:
    assert set(CASES) == set(MODEL_BUILDERS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    width, shape = CASES[name]
    model = build_model(name, num_classes=NUM_CLASSES, width=width).train()
    x = torch.randn(shape)
    result = model(x)
    out = result["out"]
    assert out.shape == (shape[0], NUM_CLASSES, *shape[2:])
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.std() > 0  # not a constant map
    loss = torch.nn.functional.cross_entropy(out, torch.randint(0, NUM_CLASSES, (shape[0], *shape[2:])))
    if "aux" in result:
        loss = loss + 0.4 * torch.nn.functional.cross_entropy(
            result["aux"], torch.zeros_like(out[:, 0], dtype=torch.long)
        )
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(int(g.abs().sum() > 0) for g in grads) > 0.9 * len(
        grads
    )  # gradient reaches (nearly) every layer


@pytest.mark.parametrize("name", ["fcn8s", "pspnet", "linknet"])
def test_eval_output_only_out_and_channels_last_bf16(name: str) -> None:
    width, shape = CASES[name]
    model = (
        build_model(name, num_classes=NUM_CLASSES, width=width).eval().to(memory_format=torch.channels_last)
    )
    x = torch.randn(1, *shape[1:]).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        result = model(x)
    assert set(result) == {"out"}
    assert result["out"].shape == (1, NUM_CLASSES, *shape[2:])
    assert torch.isfinite(result["out"].float()).all()


def test_pspnet_aux_only_in_training() -> None:
    model = build_model("pspnet", num_classes=3, width=0.125)
    x = torch.randn(2, 3, 32, 32)
    assert set(model.train()(x)) == {"out", "aux"}
    with torch.no_grad():
        assert set(model.eval()(x)) == {"out"}


@pytest.mark.parametrize(
    ("name", "classes", "params_m", "macs_g", "size"),
    [
        ("fcn8s", 21, 134.5, None, None),
        ("pspnet", 21, 49.0, None, None),
        ("linknet", 11, 11.5, 10.1, (360, 640)),  # the paper: 11.5M params, 21.2 GFLOPs at 640x360
    ],
)
def test_full_size_figures(
    name: str, classes: int, params_m: float, macs_g: float | None, size: tuple[int, int] | None
) -> None:
    with torch.device("meta"):  # no memory, no init work
        model = build_model(name, num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params_m, abs=0.1)
    if macs_g is not None:
        assert count_macs(model, *size) / 1e9 == pytest.approx(macs_g, abs=0.1)


@pytest.mark.parametrize("name", sorted(CASES))
def test_width_scales_channels_but_not_below_eight(name: str) -> None:
    with torch.device("meta"):
        full = build_model(name, num_classes=3)
        small = build_model(name, num_classes=3, width=0.01)
    n_full = sum(p.numel() for p in full.parameters())
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small < n_full / 50
    convs = [m for m in small.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert min(min(c.in_channels, c.out_channels) for c in convs) >= 3  # 3 = RGB in, 3 = classes out
    hidden = [c.out_channels for c in convs if c.out_channels != 3]
    assert min(hidden) >= 8
