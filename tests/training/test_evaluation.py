"""Training's whole-image validation sees what ``deconv-gui evaluate --mode whole`` sees: the same padding (black
pixels, before normalisation, as the training crops), the same crop-back, so the same scores."""

from __future__ import annotations

import pytest
import torch

from deconv_gui.core.synthetic import make_scene
from deconv_gui.inference.runner import ModelRunner, RunnerOptions
from deconv_gui.models.registry import model_from_checkpoint
from deconv_gui.training.evaluation import Normalizer, padded_forward


@pytest.mark.parametrize(("arch", "whole_scale"), [("fcn8s", 1.0), ("deconvnet", 1.0), ("fcn8s", 0.5),
                                                   ("deconvnet", 0.6)])
def test_validation_forward_matches_the_runners_whole_image_pass(arch, whole_scale, tmp_path):
    """Also for a model run on resized images (``meta.whole_scale``): both resize the same way, both resize
    the scores back to the image."""
    from deconv_gui.io.checkpoints import load_checkpoint, save_checkpoint
    from tests.conftest import save_tiny_checkpoint

    ckpt = save_tiny_checkpoint(tmp_path / f"{arch}.pt", arch, seed=4)
    if whole_scale != 1.0:
        state, meta = load_checkpoint(ckpt)
        meta.whole_scale = whole_scale
        save_checkpoint(ckpt, state, meta)
    image = make_scene(1, height=110, width=140).image  # needs padding: not multiples of 32, DeconvNet ≥ 224
    model, meta = model_from_checkpoint(str(ckpt))
    assert meta.whole_scale == whole_scale
    model.eval()
    normalize = Normalizer(meta.mean, meta.std, torch.device("cpu"), channels_last=False)
    with torch.no_grad():
        ours = padded_forward(model, torch.from_numpy(image).permute(2, 0, 1)[None], arch, normalize,
                              meta.whole_scale)[0]
    runner = ModelRunner.from_checkpoint(str(ckpt), RunnerOptions(device="cpu", precision="fp32", fuse_bn=False,
                                                                 channels_last=False))
    theirs = torch.from_numpy(runner.whole_image_scores(image))
    assert ours.shape == theirs.shape == (meta.num_classes, 110, 140)
    scale = theirs.abs().max()
    torch.testing.assert_close(ours / scale, theirs / scale, atol=1e-4, rtol=0)


def test_a_half_scale_pass_sees_the_image_at_half_size() -> None:
    """The network gets a 55×70 image for a 110×140 one at scale 0.5, and its scores come back at 110×140."""
    seen: list[tuple[int, int]] = []

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            seen.append(tuple(x.shape[-2:]))
            return {"out": x[:, :2]}

    normalize = Normalizer([0.0] * 3, [1.0] * 3, torch.device("cpu"), channels_last=False)
    images = torch.randint(0, 256, (1, 3, 110, 140), dtype=torch.uint8)
    out = padded_forward(Probe(), images, "fcn8s", normalize, 0.5)
    assert seen == [(64, 96)]  # 55×70 padded to multiples of 32
    assert out.shape == (1, 2, 110, 140)


def test_normalizer_honours_bgr_channel_order() -> None:
    """Caffe checkpoints (channel_order "bgr"): channels flipped before the B, G, R mean/std."""
    images = torch.randint(0, 256, (1, 3, 4, 5), dtype=torch.uint8)
    mean, std = [104 / 255, 117 / 255, 123 / 255], [1 / 255] * 3
    x = Normalizer(mean, std, torch.device("cpu"), False, "bgr")(images)
    expected = images.flip(1).double() - torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)
    assert torch.allclose(x.double(), expected, atol=1e-3)
