"""Bad inputs met in the real window: each is one clear message naming the file, never a traceback dialog."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from deconv_gui.core.synthetic import make_scene

from .test_main_window import WAIT_MS, make_window

pytestmark = pytest.mark.usefixtures("isolated_config")

NON_UTF8 = os.fsdecode(b"caf\xe9.png")  # 'caf\udce9.png': the name as Python sees a Latin-1 file name


@pytest.fixture()
def odd_folder(tmp_path: Path) -> Path:
    """Two good images (one named in Latin-1, not UTF-8), a symlink loop, a broken link and a sub-folder."""
    folder = tmp_path / "odd"
    folder.mkdir()
    for seed, name in ((5, "good.png"), (6, NON_UTF8)):
        Image.fromarray(make_scene(seed, height=120, width=160, min_size=40, max_size=90).image).save(folder / name)
    (folder / "loop.png").symlink_to("loop.png")
    (folder / "gone.png").symlink_to("nothing-here.png")
    (folder / "sub").mkdir()
    return folder


def _no_traceback(window, qtbot) -> list:
    seen: list = []
    window.controller.unexpected.connect(lambda msg, tb: seen.append(msg))
    return seen


def test_folder_with_odd_entries_says_what_it_skipped_and_exports_the_rest(qtbot, disc_ckpt, odd_folder, tmp_path):
    window = make_window(qtbot, disc_ckpt)
    c = window.controller
    tracebacks = _no_traceback(window, qtbot)
    statuses: list[str] = []
    c.status.connect(statuses.append)
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        c.open_paths([odd_folder])
    assert sorted(p.name for p in c.folder.files) == sorted(["good.png", NON_UTF8])
    skipped = next(s for s in statuses if s.startswith("skipped"))
    assert "skipped 3 folder entries" in skipped
    assert "loop.png (symbolic link loop)" in skipped and "gone.png (broken symbolic link" in skipped
    assert "sub (folder" in skipped
    out = tmp_path / "out"
    with qtbot.waitSignal(c.exported, timeout=WAIT_MS):
        window.export(out, {"palette", "instances", "coco"}, whole_folder=True)
    coco = json.loads((out / "coco.json").read_bytes().decode("utf-8"))
    names = [os.fsencode(i["file_name"]) for i in coco["images"]]
    assert sorted(names) == [b"caf\xe9.png", b"good.png"]
    inst = json.loads((out / os.fsdecode(b"caf\xe9_instances.json")).read_text(encoding="utf-8"))
    assert os.fsencode(inst["image"]) == b"caf\xe9.png"
    assert tracebacks == []
    window.close()


@pytest.mark.parametrize("kind", ["loop", "dangling"])
def test_opening_a_bad_link_is_one_message(qtbot, disc_ckpt, tmp_path, kind):
    window = make_window(qtbot, disc_ckpt)
    tracebacks = _no_traceback(window, qtbot)
    link = tmp_path / "a.png"
    link.symlink_to("a.png" if kind == "loop" else "missing.png")
    with qtbot.waitSignal(window.controller.error, timeout=WAIT_MS) as blocker:
        window.controller.open_paths([link])
    message = blocker.args[0]
    assert str(link) in message
    assert ("symbolic link loop" if kind == "loop" else "broken symbolic link") in message
    assert tracebacks == [] and window.last_error == message
    window.close()


def test_bad_preferences_start_the_app_and_an_unwritable_config_still_closes(qtbot, isolated_config, disc_ckpt,
                                                                             tmp_path):
    from deconv_gui.document.preferences import load_preferences
    from deconv_gui.ui.main_window import MainWindow

    prefs_file = isolated_config / "preferences.json"
    prefs_file.write_text(json.dumps({"recent_files": 5, "annotation_folder": ["a"], "device": None,
                                      "edge_model_file": 42, "num_proposals": 6}))
    window = MainWindow(load_preferences())
    qtbot.addWidget(window)
    window.show()
    tracebacks = _no_traceback(window, qtbot)
    c = window.controller
    assert c.prefs.device == "auto" and c.prefs.edge_model_file is None and c.prefs.num_proposals == 6
    with qtbot.waitSignal(c.model_changed, timeout=WAIT_MS):
        c.load_weights(disc_ckpt)
    image = tmp_path / "scene.png"
    Image.fromarray(make_scene(5, height=120, width=160, min_size=40, max_size=90).image).save(image)
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        c.open_paths([image])
    assert c.session.shown is not None and tracebacks == []
    assert len(list(isolated_config.glob("preferences.json.bad-*"))) == 1
    prefs_file.unlink()
    prefs_file.mkdir()  # the preferences cannot be written now: closing must still work
    window.close()
    assert not window.isVisible()
