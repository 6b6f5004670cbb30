"""Training-state files (``state.pt``) and the inference checkpoints a run exports (``best.pt``, ``final.pt``).

``state.pt`` is a plain dict readable with ``torch.load(weights_only=True)``::

    {"format": "deconv_gui.train_state", "format_version": 1,
     "model": state_dict, "optimizer": optimizer.state_dict(), "scaler": GradScaler state or {},
     "iteration": optimizer steps done, "epoch": int, "best_miou": float (nan = none yet),
     "config": TrainConfig.to_dict(), "rng": {"torch": uint8 tensor, "cuda": [uint8 tensors],
     "numpy": {...}, "python": {...}}}

RNG states are stored as tensors and plain numbers (not pickled objects) so the safe loader accepts them.
All writes are atomic: a kill during a save leaves the previous file intact.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deconv_gui.core.errors import CheckpointError
from deconv_gui.io.checkpoints import (
    ModelMeta,
    load_checkpoint,
    read_meta,
    read_torch_file,
    save_checkpoint,
    save_torch_file,
)

STATE_FORMAT = "deconv_gui.train_state"
STATE_VERSION = 1
STATE_FILE = "state.pt"
BEST_FILE = "best.pt"
FINAL_FILE = "final.pt"


def capture_rng() -> dict[str, Any]:
    """The torch, CUDA, NumPy-global and Python ``random`` states as tensors/plain data."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"name": str(np_state[0]), "key": torch.from_numpy(np.asarray(np_state[1], np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": {"version": int(py_version), "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss": py_gauss},
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))


def save_state(run_dir: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, scaler_state: dict,
               iteration: int, epoch: int, best_miou: float, config: dict) -> Path:
    """Write ``run_dir/state.pt`` atomically; returns its path. A full disk raises OutputError naming it."""
    path = Path(run_dir) / STATE_FILE
    payload = {
        "format": STATE_FORMAT,
        "format_version": STATE_VERSION,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler_state,
        "iteration": int(iteration),
        "epoch": int(epoch),
        "best_miou": float(best_miou),
        "config": config,
        "rng": capture_rng(),
    }
    save_torch_file(path, payload)
    return path


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a ``state.pt`` (or the ``state.pt`` inside a run folder); CheckpointError names the file and why."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.exists():
        raise CheckpointError("no training state here (state.pt missing): nothing to resume", path)
    payload = read_torch_file(path)
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise CheckpointError("not a deconv_gui training state file", path)
    version = payload.get("format_version", 0)
    if not isinstance(version, int) or version > STATE_VERSION:
        raise CheckpointError("training state written by a newer deconv_gui", path)
    missing = [k for k in _STATE_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"incomplete training state: no {', '.join(missing)}", path)
    if not isinstance(payload["model"], dict) or not isinstance(payload["config"], dict):
        raise CheckpointError("training state is malformed: 'model' and 'config' must be dicts", path)
    return payload


_STATE_KEYS = ("model", "optimizer", "iteration", "best_miou", "config", "rng")


def check_fits(state_dict: dict, model: nn.Module, path: str | Path) -> None:
    """CheckpointError naming ``path`` and the first key that ``state_dict`` lacks, has extra or holds in
    another shape (or as a non-tensor) than ``model``'s; nothing when it loads exactly."""
    want = model.state_dict()
    for key, tensor in want.items():
        have = state_dict.get(key)
        if have is None:
            raise CheckpointError(f"does not fit the model: {key} is missing", path)
        if not isinstance(have, torch.Tensor):
            raise CheckpointError(f"does not fit the model: {key} is a {type(have).__name__}, not a tensor", path)
        if tuple(have.shape) != tuple(tensor.shape):
            raise CheckpointError(f"does not fit the model: {key} has shape {tuple(have.shape)}, the model's "
                                  f"is {tuple(tensor.shape)}", path)
    extra = [k for k in state_dict if k not in want]
    if extra:
        raise CheckpointError(f"does not fit the model: unexpected {extra[0]}"
                              + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""), path)


def is_state_file(path: str | Path) -> bool:
    """Whether ``path`` looks like a training state (by name or by a run folder holding one)."""
    path = Path(path)
    return (path.is_dir() and (path / STATE_FILE).exists()) or path.name == STATE_FILE


def init_weights(path: str | Path, *, architecture: str, width: float, class_names: list[str]) -> dict:
    """State dict to start from: an inference checkpoint (e.g. stage 1's ``final.pt``) or a training state.

    The architecture, width and classes must match the run (CheckpointError otherwise).
    """
    path = Path(path)
    if is_state_file(path):
        payload = load_state(path)
        cfg = payload["config"]
        have = (cfg.get("arch"), float(cfg.get("width", 0)))
        if have != (architecture, float(width)):
            raise CheckpointError(f"holds {have[0]} width {have[1]}, this run trains {architecture} width {width}", path)
        return payload["model"]
    state_dict, meta = load_checkpoint(path)
    if meta.architecture != architecture or not math.isclose(meta.width, width):
        raise CheckpointError(
            f"holds {meta.architecture} width {meta.width}, this run trains {architecture} width {width}", path)
    if meta.class_names != list(class_names):
        raise CheckpointError(f"its classes {meta.class_names} differ from the dataset's {list(class_names)}", path)
    return state_dict


def inherited_proposals(path: str | Path) -> dict:
    """The Edge Box settings (``meta.proposals``) of the inference checkpoint a run starts from with ``--init``:
    they describe the data (object sizes), not the weights, so the run's exports carry them on. ``{}`` for a
    training state, a checkpoint without them, or a file that is gone (a run resumed after its init was moved)."""
    path = Path(path)
    if is_state_file(path) or not path.is_file():
        return {}
    return dict(read_meta(path).proposals)  # the metadata only: the weights are init_weights' to read


def export_inference(path: Path, model: nn.Module, meta: ModelMeta, *, half: bool) -> Path:
    """Write an inference checkpoint (``io.checkpoints`` format) of ``model`` with ``meta``; returns ``path``."""
    save_checkpoint(path, model.state_dict(), meta, half=half)
    return path
