"""Atomic writes: no temp files left, previous content survives failures, user errors → OutputError."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from deconv_gui.core.errors import OutputError
from deconv_gui.io.atomic import (
    COMMIT_MARK,
    atomic_path,
    atomic_write_bytes,
    clean_stale_temps,
    temp_name,
    temp_owner,
)


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


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_names_are_recognisable_and_keep_the_suffix(tmp_path: Path) -> None:
    seen = []
    real_replace = os.replace

    def spy(src, dst):  # noqa: ANN001, ANN202
        seen.append(Path(src).name)
        return real_replace(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", spy)
        atomic_write_bytes(tmp_path / "label.png", b"x")
    assert len(seen) == 1 and temp_owner(seen[0]) == os.getpid()
    assert seen[0].startswith(".label.png.deconv-tmp-") and seen[0].endswith(".png")
    assert temp_owner(temp_name("x" * 300, suffix=".pt")) == os.getpid()  # long names are cut, not refused
    assert len(temp_name("x" * 300, suffix=".pt")) < 140


def test_clean_stale_temps_removes_only_ours_of_dead_or_ancient_processes(tmp_path: Path) -> None:
    dead = _dead_pid()
    ours_dead = [f".a.png.deconv-tmp-{dead}-0123abcd.png", f".state.pt.deconv-tmp-{dead}-89abcdef.pt",
                 f".b_instances.deconv-old-{dead}-00000000"]
    for name in ours_dead[:2]:
        (tmp_path / name).write_bytes(b"partial")
    (tmp_path / ours_dead[2]).mkdir()
    (tmp_path / ours_dead[2] / "000.png").write_bytes(b"old mask")
    alive = [f".c.png.deconv-tmp-{os.getpid()}-0123abcd.png", ".d.png.deconv-tmp-1-0123abcd.png"]
    ancient = f".e.json.deconv-tmp-{os.getpid()}-fedcba98.json"  # a reused id: the age tells
    foreign = [".a.png.tmpk3j_x9q1.png", "a.png.deconv-tmp-123-0123abcd.png", ".a.deconv-tmp-x1-0123abcd.png",
               f".a.png.deconv-tmp-{dead}-0123abcd.png.bak", f".f.deconv-tmp-{dead}-0123ABCD", "notes.txt",
               f".g.deconv-tmp-{dead}-012345678"]
    for name in alive + [ancient] + foreign:
        (tmp_path / name).write_bytes(b"keep?")
    two_days_ago = time.time() - 2 * 86400
    os.utime(tmp_path / ancient, (two_days_ago, two_days_ago))
    link = tmp_path / f".h.deconv-tmp-{dead}-0123abcd"
    link.symlink_to(tmp_path / "notes.txt")
    staged = tmp_path / f".i_instances.deconv-tmp-{dead}-0123abcd"  # complete: left for its owner's recovery
    staged.mkdir()
    (staged / COMMIT_MARK).write_text("{}")

    removed = clean_stale_temps(tmp_path)

    assert sorted(p.name for p in removed) == sorted([*ours_dead, ancient])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*alive, *foreign, link.name, staged.name])
    assert clean_stale_temps(tmp_path / "missing") == []
