"""Atomic writes: no temp files left, previous content survives failures, user errors → OutputError."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deconv_gui.core.errors import OutputError
from deconv_gui.io.atomic import atomic_path, atomic_write_bytes


def test_write_bytes_creates_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"hello")
    assert target.read_bytes() == b"hello"
    atomic_write_bytes(target, b"again")
    assert target.read_bytes() == b"again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_temp_path_is_in_same_folder_with_same_suffix(tmp_path: Path) -> None:
    target = tmp_path / "label.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.suffix == ".png"
        assert tmp != target
        tmp.write_bytes(b"x")
        assert not target.exists()  # nothing visible before the body finishes
    assert target.read_bytes() == b"x"


def test_new_file_gets_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_bytes(target, b"1")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    os.chmod(target, 0o600)
    atomic_write_bytes(target, b"2")
    assert target.stat().st_mode & 0o777 == 0o600  # the replaced file's mode is kept


def test_failure_inside_body_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "result.png"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half-writ")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]


def test_oserror_inside_body_becomes_output_error(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    with pytest.raises(OutputError, match="No space left"):
        with atomic_path(target):
            raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_parent_is_a_file_raises_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("file")
    target = blocker / "out.png"
    with pytest.raises(OutputError) as info:
        atomic_write_bytes(target, b"data")
    assert "cannot write" in str(info.value)
    assert "out.png" in str(info.value)


def test_missing_folder_raises_output_error(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "out.png"
    with pytest.raises(OutputError, match="does not exist") as info:
        atomic_write_bytes(target, b"data")
    assert info.value.path == str(target)


def test_target_is_a_folder_raises(tmp_path: Path) -> None:
    (tmp_path / "d.png").mkdir()
    with pytest.raises(OutputError, match="folder"):
        atomic_write_bytes(tmp_path / "d.png", b"data")


def test_no_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    atomic_write_bytes(target, b"first", overwrite=False)
    with pytest.raises(OutputError, match="exists"):
        atomic_write_bytes(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
