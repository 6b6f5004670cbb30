"""Fixtures shared by the window tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QSettings


@pytest.fixture()
def isolated_config(tmp_path_factory, monkeypatch):
    """Preferences, QSettings and the default output folder in a fresh folder; torch on one thread (the app
    leaves a core to the GUI)."""
    cfg = tmp_path_factory.mktemp("cfg")
    monkeypatch.setenv("DECONV_GUI_CONFIG_DIR", str(cfg))
    monkeypatch.setenv("DECONV_GUI_OUTPUT_DIR", str(cfg / "output"))  # default exports and autosaves go here
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(cfg))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield cfg
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def disc_ckpt(tiny_deconvnet_ckpt, tmp_path_factory) -> Path:
    """The tiny DeconvNet with its class-1 ("disc") score raised, so proposals paint visible labels and have
    object masks."""
    from deconv_gui.io.checkpoints import load_checkpoint, save_checkpoint

    state, meta = load_checkpoint(tiny_deconvnet_ckpt)
    bias = [k for k, v in state.items() if k.endswith("bias") and v.shape == (meta.num_classes,)][-1]
    state[bias][1] += 5.0
    path = tmp_path_factory.mktemp("ckpt") / "disc.pt"
    save_checkpoint(path, state, meta)
    return path
