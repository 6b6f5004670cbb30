"""Loading a checkpoint builds its model on the meta device without paying for torch._dynamo or torchvision
(each ~1.2 s on the 2-core machine): the app's first label map depends on it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import sys
import torch
from deconv_gui.core.palette import VOC_CLASSES, voc_palette
from deconv_gui.io.checkpoints import ModelMeta, save_checkpoint
from deconv_gui.models.registry import build_model, model_from_checkpoint
path = sys.argv[1]
for arch, geometry in (("deconvnet", "aligned"), ("fcn8s", "aligned"), ("fcn8s", "caffe")):
    extra = {"geometry": geometry} if geometry != "aligned" else {}
    model = build_model(arch, num_classes=3, width=0.0625, **extra)
    meta = ModelMeta(arch, 0.0625, 3, list(VOC_CLASSES[:3]), voc_palette()[:3].tolist(), geometry=geometry)
    save_checkpoint(path, model.state_dict(), meta)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert "torch._dynamo" not in sys.modules and "torchvision" not in sys.modules, arch
    loaded, _ = model_from_checkpoint(path)
    assert "torch._dynamo" not in sys.modules, f"{arch}: loading imported torch._dynamo"
    assert "torchvision" not in sys.modules, f"{arch}: loading imported torchvision"
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, before[k]), k
print("ok")
"""


def test_loading_a_vgg16_checkpoint_imports_neither_dynamo_nor_torchvision(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "m.pt")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


def test_pspnet_and_linknet_still_build_through_the_lazy_registry() -> None:
    from deconv_gui.models import LinkNet, PSPNet
    from deconv_gui.models.registry import build_model

    assert isinstance(build_model("pspnet", num_classes=3, width=0.125), PSPNet)
    assert isinstance(build_model("linknet", num_classes=3, width=0.125), LinkNet)
