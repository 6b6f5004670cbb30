"""Checkpoint files: round trips, half precision, and every way a file can be wrong."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from deconv_gui.core.errors import CheckpointError, OutputError
from deconv_gui.io.checkpoints import (
    FORMAT,
    ModelMeta,
    copy_checkpoint,
    load_checkpoint,
    save_checkpoint,
    update_checkpoint_meta,
)


def _meta(**changes: object) -> ModelMeta:
    meta = ModelMeta(
        architecture="linknet",
        width=0.125,
        num_classes=2,
        class_names=["background", "car"],
        palette=[[0, 0, 0], [64, 0, 128]],
        train_config={"lr": 0.01, "stage": 2},
        metrics={"miou": 0.5},
    )
    for key, value in changes.items():
        setattr(meta, key, value)
    return meta


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "conv.weight": torch.randn(8, 3, 3, 3),
        "bn.running_var": torch.rand(8) + 0.5,
        "bn.num_batches_tracked": torch.tensor(7),
    }


def _assert_refused(path: Path, match: str) -> None:
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(str(path))


def test_round_trip_float32(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    state, meta = _state(), _meta()
    save_checkpoint(path, state, meta)
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta == meta
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) and loaded[k].dtype == state[k].dtype for k in state)
    assert os.listdir(tmp_path) == ["model.pt"]  # no temporary file left behind


def test_round_trip_half(tmp_path: Path) -> None:
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    state = {"w": torch.randn(256, 256), "n": torch.tensor(3)}
    save_checkpoint(full, state, _meta())
    save_checkpoint(half, state, _meta(), half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    assert torch.load(half, weights_only=True)["state_dict"]["w"].dtype == torch.float16
    loaded, _ = load_checkpoint(half)
    assert loaded["w"].dtype == torch.float32
    assert torch.allclose(loaded["w"], state["w"], rtol=1e-3, atol=1e-4)
    assert loaded["n"].dtype == torch.int64 and loaded["n"].item() == 3


def test_metadata_is_stored_as_plain_data(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(
        path,
        _state(),
        _meta(
            metrics={"miou": np.float32(0.25), "iou": np.array([0.5, 0.0])},
            train_config={"data": tmp_path, "crop": (224, 224)},
        ),
    )
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["format_version"] == 1
    assert raw["meta"]["metrics"] == {"miou": 0.25, "iou": [0.5, 0.0]}
    assert raw["meta"]["train_config"] == {"data": str(tmp_path), "crop": [224, 224]}
    assert load_checkpoint(path)[1].mean == [0.485, 0.456, 0.406]  # ImageNet by default


def test_failed_save_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, _state(), _meta())
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_checkpoint(path, _state(), _meta(train_config={"callback": print}))
    with pytest.raises(ValueError, match="class names"):
        save_checkpoint(path, _state(), _meta(class_names=["only one"]))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pt"]
    with pytest.raises(OutputError):
        save_checkpoint(tmp_path / "no" / "such" / "folder.pt", _state(), _meta())


def test_missing_empty_and_folder(tmp_path: Path) -> None:
    _assert_refused(tmp_path / "absent.pt", "file not found")
    (tmp_path / "empty.pt").write_bytes(b"")
    _assert_refused(tmp_path / "empty.pt", "empty file")
    _assert_refused(tmp_path, "is a folder")


def test_foreign_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "random.pt").write_bytes(b"\x01" + rng.bytes(999))
    _assert_refused(tmp_path / "random.pt", "not a PyTorch checkpoint")
    (tmp_path / "image.pt").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(100))
    _assert_refused(tmp_path / "image.pt", "PNG image")
    (tmp_path / "noise_with_pickle_header.pt").write_bytes(b"\x80\x02" + rng.bytes(500))
    _assert_refused(tmp_path / "noise_with_pickle_header.pt", "refused|not a readable")


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    save_checkpoint(path, _state(), _meta())
    path.write_bytes(path.read_bytes()[:300])
    _assert_refused(path, "truncated or corrupt")


class _RunsCode:
    """Unpickling this calls a function: what a malicious checkpoint does (here a harmless one)."""

    def __reduce__(self) -> tuple:
        return (print, ("this must never run",))


def test_code_carrying_pickles_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch_file = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "state_dict": {}, "meta": _RunsCode()}, torch_file)
    _assert_refused(torch_file, "refused: the file contains Python code")
    plain_pickle = tmp_path / "evil.pkl"
    plain_pickle.write_bytes(pickle.dumps({"x": _RunsCode()}, protocol=4))
    _assert_refused(plain_pickle, "refused")
    assert "must never run" not in capsys.readouterr().out


def test_other_torch_files(tmp_path: Path) -> None:
    bare = tmp_path / "bare.pt"
    torch.save(_state(), bare)
    _assert_refused(bare, "not a deconv_gui checkpoint: a bare state dict")
    other = tmp_path / "other.pt"
    torch.save({"model": _state(), "epoch": 3}, other)
    _assert_refused(other, "not a deconv_gui checkpoint")
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    _assert_refused(tensor, "not a deconv_gui checkpoint")


def _save_raw(path: Path, **changes: object) -> Path:
    payload = {"format": FORMAT, "format_version": 1, "meta": _meta().to_plain(), "state_dict": _state()}
    payload.update(changes)
    torch.save(payload, path)
    return path


def test_bad_contents(tmp_path: Path) -> None:
    _assert_refused(_save_raw(tmp_path / "new.pt", format_version=3), "format version 3 is newer")
    meta = _meta().to_plain()
    _assert_refused(
        _save_raw(tmp_path / "arch.pt", meta={**meta, "architecture": "segnet"}),
        "unknown architecture 'segnet'",
    )
    del meta["class_names"]
    _assert_refused(_save_raw(tmp_path / "incomplete.pt", meta=meta), "missing class_names")
    meta = {**_meta().to_plain(), "palette": [[0, 0, 0]]}
    _assert_refused(_save_raw(tmp_path / "palette.pt", meta=meta), "palette is not 2×3")
    meta = {**_meta().to_plain(), "num_classes": "two"}
    _assert_refused(_save_raw(tmp_path / "typed.pt", meta=meta), "malformed")
    _assert_refused(_save_raw(tmp_path / "nostate.pt", state_dict=[1, 2]), "state_dict")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("half", [False, True])
def test_weights_with_nan_or_inf_are_refused_naming_the_tensor(tmp_path: Path, bad: float, half: bool) -> None:
    state = _state()
    state["bn.running_var"][3] = bad
    path = tmp_path / "diverged.pt"
    save_checkpoint(path, state, _meta(), half=half)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert info.value.path == str(path)
    assert info.value.reason.startswith("refused: weight 'bn.running_var' holds 1 NaN/infinite value of 8")


def test_huge_finite_weights_are_not_mistaken_for_inf(tmp_path: Path) -> None:
    state = _state()
    state["conv.weight"][:] = 3e38  # the sum overflows to inf; every value is finite
    save_checkpoint(tmp_path / "big.pt", state, _meta())
    assert torch.equal(load_checkpoint(tmp_path / "big.pt")[0]["conv.weight"], state["conv.weight"])


def test_channel_order_and_geometry_default_for_older_files(tmp_path: Path) -> None:
    """Files written before channel_order/geometry/crop_fill/fc_padding existed load as RGB, aligned, zero-padded
    crops, the paper's valid fc6; bad values are refused."""
    meta = _meta().to_plain()
    del meta["channel_order"], meta["geometry"], meta["crop_fill"], meta["fc_padding"]
    _, loaded = load_checkpoint(_save_raw(tmp_path / "old.pt", meta=meta))
    assert (loaded.channel_order, loaded.geometry, loaded.crop_fill, loaded.fc_padding) == \
        ("rgb", "aligned", "zeros", "valid")
    meta = {**_meta().to_plain(), "fc_padding": "full"}
    _assert_refused(_save_raw(tmp_path / "pad.pt", meta=meta), "fc_padding is 'full'")
    meta = {**_meta().to_plain(), "crop_fill": "mirror"}
    _assert_refused(_save_raw(tmp_path / "fill.pt", meta=meta), "crop_fill is 'mirror'")
    meta = {**_meta().to_plain(), "channel_order": "grb"}
    _assert_refused(_save_raw(tmp_path / "order.pt", meta=meta), "channel_order is 'grb'")
    meta = {**_meta().to_plain(), "geometry": "caffe"}
    _assert_refused(_save_raw(tmp_path / "geom.pt", meta=meta), "geometry 'caffe' exists for fcn8s only")


def test_a_large_state_is_split_into_shards_and_read_back_whole(tmp_path: Path) -> None:
    torch.manual_seed(3)
    state = {f"layer{k}.weight": torch.randn(64, 64) for k in range(6)}  # 16 KiB each as float32
    files = save_checkpoint(tmp_path / "big.pt", state, _meta(), max_file_bytes=40_000)
    assert [f.name for f in files] == ["big.pt", "big.part2.pt", "big.part3.pt"]
    assert all(f.stat().st_size < 60_000 for f in files)
    loaded, meta = load_checkpoint(tmp_path / "big.pt")
    assert list(loaded) == list(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    assert meta.class_names == ["background", "car"]
    # one file, as before, when it fits
    assert save_checkpoint(tmp_path / "small.pt", state, _meta(), max_file_bytes=10**9) == [tmp_path / "small.pt"]


def test_a_missing_or_foreign_shard_is_named(tmp_path: Path) -> None:
    state = {f"layer{k}.weight": torch.full((64, 64), float(k)) for k in range(4)}
    save_checkpoint(tmp_path / "a.pt", state, _meta(), max_file_bytes=20_000)
    save_checkpoint(tmp_path / "b.pt", {k: v + 1 for k, v in state.items()}, _meta(), max_file_bytes=20_000)
    (tmp_path / "b.part2.pt").replace(tmp_path / "a.part2.pt")  # a shard of another save
    with pytest.raises(CheckpointError, match="a.part2.pt does not belong to this checkpoint"):
        load_checkpoint(tmp_path / "a.pt")
    save_checkpoint(tmp_path / "a.pt", state, _meta(), max_file_bytes=20_000)
    (tmp_path / "a.part3.pt").unlink()
    with pytest.raises(CheckpointError, match="shard file a.part3.pt is missing"):
        load_checkpoint(tmp_path / "a.pt")


def test_a_sharded_checkpoint_is_copied_with_its_shards_renamed_after_the_copy(tmp_path: Path) -> None:
    torch.manual_seed(4)
    state = {f"layer{k}.weight": torch.randn(64, 64) for k in range(4)}
    (tmp_path / "a").mkdir()
    save_checkpoint(tmp_path / "a" / "model.pt", state, _meta(), max_file_bytes=40_000)
    files = copy_checkpoint(tmp_path / "a" / "model.pt", tmp_path / "tuned.pt")
    assert [f.name for f in files] == ["tuned.pt", "tuned.part2.pt"]
    update_checkpoint_meta(tmp_path / "tuned.pt", {"crf": {"iterations": 5}})  # what tune-crf --out does next
    loaded, meta = load_checkpoint(tmp_path / "tuned.pt")
    assert meta.crf == {"iterations": 5} and all(torch.equal(loaded[k], state[k]) for k in state)
    assert load_checkpoint(tmp_path / "a" / "model.pt")[1].crf == {}  # the source is untouched
