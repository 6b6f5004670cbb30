"""The shared up-front checks: readable input files and writable output folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from deconv_gui.core.errors import CheckpointError, DeconvGuiError, ImageReadError, OutputError
from deconv_gui.io import files
from deconv_gui.io.files import require_readable_file, require_writable_folder


@pytest.mark.parametrize("error", [ImageReadError, CheckpointError])
def test_readable_file_problems_raise_the_callers_error(tmp_path: Path, error: type[DeconvGuiError]) -> None:
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "ok.bin").write_bytes(b"x")
    cases = {
        tmp_path / "absent.bin": "file not found",
        tmp_path / "empty.bin": "empty file (0 bytes)",
        tmp_path: "is a folder, not a thing file",
    }
    for path, reason in cases.items():
        with pytest.raises(error) as info:
            require_readable_file(path, "a thing file", error)
        assert info.value.reason == reason and info.value.path == str(path)
    assert require_readable_file(str(tmp_path / "ok.bin"), "a thing file", error) == tmp_path / "ok.bin"


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "locked.bin").write_bytes(b"x")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)  # root could read a chmod 000 file: simulate the refusal
    with pytest.raises(ImageReadError, match="cannot read: permission denied"):
        require_readable_file(tmp_path / "locked.bin", "an image file", ImageReadError)


def test_writable_folder_is_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    assert require_writable_folder(target) == target and target.is_dir()
    assert list(target.iterdir()) == []  # the probe file is gone


def test_folder_under_a_file_or_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "plain_file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot create the output folder") as info:
        require_writable_folder(blocker / "out")
    assert info.value.path == str(blocker / "out")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        require_writable_folder(blocker)


def test_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files, "make_temp_file", refuse)  # root ignores chmod: simulate a read-only folder
    with pytest.raises(OutputError, match="folder is not writable: Permission denied") as info:
        require_writable_folder(tmp_path)
    assert info.value.path == str(tmp_path)


def test_links_loops_and_pipes_are_named_not_followed_forever(tmp_path: Path) -> None:
    import os

    (tmp_path / "loop.png").symlink_to("loop.png")
    (tmp_path / "gone.png").symlink_to("nowhere.png")
    os.mkfifo(tmp_path / "pipe.png")  # opening it would block until a writer comes: it must be refused unopened
    expected = {
        "loop.png": "symbolic link loop",
        "gone.png": "broken symbolic link (its target 'nowhere.png' does not exist)",
        "pipe.png": "not a regular file (a named pipe)",
    }
    for name, reason in expected.items():
        with pytest.raises(ImageReadError) as info:
            require_readable_file(tmp_path / name, "an image file", ImageReadError)
        assert info.value.reason == reason and info.value.path == str(tmp_path / name)


def test_resolved_survives_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "loop.png").symlink_to("loop.png")
    assert files.resolved(tmp_path / "loop.png") == tmp_path / "loop.png"
