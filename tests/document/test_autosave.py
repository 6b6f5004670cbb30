"""Autosave of hand edits: round trip, locations, corrupt/changed files kept aside, kill -9 during a save."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from deconv_gui.document.annotation import AnnotationLayer
from deconv_gui.document.autosave import (
    AutosaveCorrupt,
    AutosaveWriter,
    EditsStore,
    Snapshot,
    autosave_path,
    image_digest,
    load_edits,
    save_edits,
)


def _layer() -> AnnotationLayer:
    layer = AnnotationLayer((30, 40))
    layer.stroke("brush", [(5.5, 5.5), (30.5, 20.5)], 2, 3)
    layer.stroke("void", [(35.5, 3.5)], 1, 255)
    layer.stroke("brush", [(2.5, 25.5)], 1, 0)  # class 0 painted is an edit, not "unedited"
    return layer


def test_locations(tmp_path):
    img = tmp_path / "photos" / "a.jpg"
    assert autosave_path(img) == tmp_path / "photos" / ".deconv_gui" / "a.jpg.edits.png"
    p1, p2 = autosave_path(img, tmp_path / "proj"), autosave_path(tmp_path / "other" / "a.jpg", tmp_path / "proj")
    assert p1.parent == tmp_path / "proj" and p1.name.startswith("a-") and p1 != p2


def test_round_trip_and_writer(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    layer = _layer()
    store = EditsStore()
    img_path = tmp_path / "scene.png"
    assert store.load(img_path, image) is None and not store.has_edits(img_path)
    saved: list[tuple[Path, str | None]] = []
    writer = AutosaveWriter(lambda p, err: saved.append((p, err)))
    writer.submit(Snapshot(store.path_for(img_path), layer.label.copy(), layer.edited.copy(), "scene.png", image))
    assert writer.flush(30)
    assert saved == [(store.path_for(img_path), None)] and store.has_edits(img_path)
    label, edited = store.load(img_path, image)
    assert np.array_equal(edited, layer.edited) and np.array_equal(label, layer.label)
    assert edited[25, 2] and label[25, 2] == 0 and (label == 255).any()
    # all edits undone: the autosave goes away (the file list no longer shows "edited")
    writer.submit(Snapshot(store.path_for(img_path), layer.label, np.zeros_like(layer.edited), "scene.png", image))
    assert writer.close(30)
    assert not store.has_edits(img_path)


def test_project_folder(tmp_path):
    image = np.zeros((30, 40, 3), np.uint8)
    store = EditsStore(tmp_path / "project")
    layer = _layer()
    save_edits(store.path_for(tmp_path / "x.png"), layer.label, layer.edited, image_name="x.png",
               digest=image_digest(image))
    assert list((tmp_path / "project").glob("x-*.edits.png"))
    assert np.array_equal(store.load(tmp_path / "x.png", image)[1], layer.edited)


def test_corrupt_autosave_is_reported_and_kept_aside(tmp_path):
    path = tmp_path / ".deconv_gui" / "scene.png.edits.png"
    path.parent.mkdir()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"half a file")
    with pytest.raises(AutosaveCorrupt) as info:
        load_edits(path, image_hw=(30, 40), digest=None)
    message = str(info.value)
    assert "scene.png.edits.png" in message and "corrupt" in message
    kept = info.value.kept
    assert kept is not None and kept.exists() and ".corrupt-" in kept.name and not path.exists()
    assert kept.read_bytes().endswith(b"half a file")  # the user's file is kept as it was
    # a new autosave does not touch the kept file
    layer = _layer()
    save_edits(path, layer.label, layer.edited, image_name="scene.png", digest="x")
    assert kept.read_bytes().endswith(b"half a file")


def test_edits_of_a_changed_image_are_kept_aside(tmp_path):
    image = np.zeros((30, 40, 3), np.uint8)
    layer = _layer()
    path = tmp_path / "e.edits.png"
    save_edits(path, layer.label, layer.edited, image_name="scene.png", digest=image_digest(image))
    changed = image.copy()
    changed[0, 0] = 1
    with pytest.raises(AutosaveCorrupt, match="image changed"):
        load_edits(path, image_hw=(30, 40), digest=image_digest(changed))
    assert not path.exists() and len(list(tmp_path.glob("e.edits.png.changed-*"))) == 1
    # a wrong-sized autosave, read without setting aside (exports): ignored, left in place
    save_edits(path, layer.label, layer.edited, image_name="scene.png", digest=image_digest(image))
    store = EditsStore()
    bigger = np.zeros((31, 40, 3), np.uint8)
    assert store.load(tmp_path / "e", bigger, set_aside=False) is None


CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from deconv_gui.document.autosave import save_edits
    path = sys.argv[1]
    label = np.zeros((900, 1200), np.uint8)
    edited = np.ones((900, 1200), bool)
    noise = np.random.default_rng(0).integers(0, 2, (900, 1200), dtype=np.uint8)  # slows the encoder down
    for k in range(1, 100000):
        label[:] = noise + 2 * (k % 100)  # one k everywhere: a torn file would mix two
        save_edits(path, label, edited, image_name="big.png", digest="d")
        print(k, flush=True)
""")


def test_kill_9_during_autosave_leaves_the_previous_one_intact(tmp_path):
    path = tmp_path / ".deconv_gui" / "big.png.edits.png"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        done = 0
        assert child.stdout is not None
        while done < 3:
            line = child.stdout.readline()
            assert line, "the autosaving child stopped early"
            done = int(line)
        os.kill(child.pid, signal.SIGKILL)  # most likely in the middle of writing save done + 1
    finally:
        child.kill()
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    label, edited = load_edits(path, image_hw=(900, 1200), digest="d")
    noise = np.random.default_rng(0).integers(0, 2, (900, 1200), dtype=np.uint8)
    k = (label - noise) // 2
    assert (k == k[0, 0]).all() and edited.all()
    assert int(k[0, 0]) in (done % 100, (done + 1) % 100)  # the last completed save (or the next, complete)
    # the next start (opening that image) removes the temporary the kill left, and nothing else
    EditsStore().load(tmp_path / "big.png", np.zeros((900, 1200, 3), np.uint8), set_aside=False)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A small real LA autosave whose IHDR is rewritten (CRC fixed) to claim ``width`` × ``height``."""
    import struct
    import zlib

    layer = _layer()
    save_edits(path, layer.label, layer.edited, image_name="scene.png", digest="d")
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("side", [100_000, 10_000])  # above 2× Pillow's limit (its error), and under it (warning)
def test_decompression_bomb_autosave_is_kept_aside_like_any_corrupt_one(tmp_path, side):
    path = _png_claiming(tmp_path / ".deconv_gui" / "scene.png.edits.png", side, side)
    original = path.read_bytes()
    with pytest.raises(AutosaveCorrupt, match="claims") as info:
        load_edits(path, image_hw=(30, 40), digest=None)
    kept = info.value.kept
    assert kept is not None and ".corrupt-" in kept.name and kept.read_bytes() == original and not path.exists()
    store = EditsStore()  # read for an export (no setting aside): ignored, not raised
    _png_claiming(path, side, side)
    assert store.load(tmp_path / "scene.png", np.zeros((30, 40, 3), np.uint8), set_aside=False) is None


def test_opening_an_image_removes_only_our_stale_autosave_temporaries(tmp_path):
    folder = tmp_path / ".deconv_gui"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = folder / f".a.png.edits.png.deconv-tmp-{proc.pid}-0123abcd.png"
    running = folder / f".b.png.edits.png.deconv-tmp-{os.getpid()}-0123abcd.png"
    foreign = [folder / ".a.png.edits.tmpx8k2_q1z.png", folder / "a.png.edits.png.deconv-tmp-1-0123abcd.png"]
    for path in (stale, running, *foreign):
        path.write_bytes(b"partial")
    assert EditsStore().load(tmp_path / "a.png", np.zeros((30, 40, 3), np.uint8)) is None
    assert sorted(folder.iterdir()) == sorted([running, *foreign])
