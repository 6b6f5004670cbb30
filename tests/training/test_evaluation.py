"""Training's whole-image validation sees what ``deconv-gui evaluate --mode whole`` sees: the same padding (black
pixels, before normalisation, as the training crops), the same crop-back, so the same scores."""

from __future__ import annotations

import pytest
import torch

from deconv_gui.core.synthetic import make_scene
from deconv_gui.inference.runner import ModelRunner, RunnerOptions
from deconv_gui.models.registry import model_from_checkpoint
from deconv_gui.training.evaluation import Normalizer, padded_forward


@pytest.mark.parametrize("arch", ["fcn8s", "deconvnet"])
def test_validation_forward_matches_the_runners_whole_image_pass(arch, tmp_path):
    from tests.conftest import save_tiny_checkpoint

    ckpt = save_tiny_checkpoint(tmp_path / f"{arch}.pt", arch, seed=4)
    image = make_scene(1, height=110, width=140).image  # needs padding: not multiples of 32, DeconvNet ≥ 224
    model, meta = model_from_checkpoint(str(ckpt))
    model.eval()
    normalize = Normalizer(meta.mean, meta.std, torch.device("cpu"), channels_last=False)
    with torch.no_grad():
        ours = padded_forward(model, torch.from_numpy(image).permute(2, 0, 1)[None], arch, normalize)[0]
    runner = ModelRunner.from_checkpoint(str(ckpt), RunnerOptions(device="cpu", precision="fp32", fuse_bn=False,
                                                                 channels_last=False))
    theirs = torch.from_numpy(runner.whole_image_scores(image))
    assert ours.shape == theirs.shape == (meta.num_classes, 110, 140)
    scale = theirs.abs().max()
    torch.testing.assert_close(ours / scale, theirs / scale, atol=1e-4, rtol=0)


def test_normalizer_honours_bgr_channel_order() -> None:
    """Caffe checkpoints (channel_order "bgr"): channels flipped before the B, G, R mean/std."""
    images = torch.randint(0, 256, (1, 3, 4, 5), dtype=torch.uint8)
    mean, std = [104 / 255, 117 / 255, 123 / 255], [1 / 255] * 3
    x = Normalizer(mean, std, torch.device("cpu"), False, "bgr")(images)
    expected = images.flip(1).double() - torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)
    assert torch.allclose(x.double(), expected, atol=1e-3)
