"""What a new user tripped over (issue 14, "Defects found"), each in the real window offscreen; waits on signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from deconv_gui.core.synthetic import make_scene
from deconv_gui.document.preferences import Preferences

WAIT_MS = 120_000
LEFT, NO_MOD = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier

pytestmark = pytest.mark.usefixtures("isolated_config")


@pytest.fixture()
def scene_png(tmp_path) -> Path:
    path = tmp_path / "img" / "scene.png"
    path.parent.mkdir()
    Image.fromarray(make_scene(5, height=120, width=160, min_size=40, max_size=90).image).save(path)
    return path


def make_window(qtbot, weights: Path | None, proposals: int = 6):
    from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer
    from deconv_gui.ui.main_window import MainWindow

    window = MainWindow(Preferences(num_proposals=proposals, device="cpu"))
    qtbot.addWidget(window)
    window.show()
    c = window.controller
    c.engine.set_proposals(proposals, None)
    c.engine._proposer = EdgeBoxProposer(EdgeBoxConfig(top_n=proposals, min_side=24, min_box_area=200))
    if weights is not None:
        with qtbot.waitSignal(c.model_changed, timeout=WAIT_MS):
            c.load_weights(weights)
    return window


def open_and_wait(qtbot, window, *paths: Path):
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.controller.open_paths(list(paths))
    return window.controller.session


def drag(window, a: tuple[float, float], b: tuple[float, float]) -> None:
    canvas, vp = window.canvas, window.canvas.viewport()
    pa, pb = canvas.mapFromScene(*a), canvas.mapFromScene(*b)
    QTest.mousePress(vp, LEFT, NO_MOD, pa)
    QTest.mouseMove(vp, pb)
    QTest.mouseRelease(vp, LEFT, NO_MOD, pb)


# --- 1. box mode ends when a tool is chosen; the mode is always shown ------------------------------------------------


def test_choosing_a_tool_leaves_box_mode_and_the_mode_is_shown(qtbot, disc_ckpt, scene_png):
    window = make_window(qtbot, disc_ckpt)
    s = open_and_wait(qtbot, window, scene_png)
    assert window.mode_label.text() == "Mode: Select / pan"
    QTest.keyClick(window, Qt.Key.Key_P)  # brush
    assert window.mode_label.text() == "Mode: Brush"
    QTest.keyClick(window, Qt.Key.Key_B)  # draw a box while the brush is the tool
    assert window.canvas.draw_mode and "Draw a box" in window.mode_label.text()
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        drag(window, (20, 15), (100, 90))
    QTest.keyClick(window, Qt.Key.Key_P)  # the brush again: box mode must end, the brush must paint
    assert not window.canvas.draw_mode and not window.actions_["draw_box"].isChecked()
    assert window.mode_label.text() == "Mode: Brush"
    drag(window, (30, 30), (60, 40))
    assert s.annotation is not None and s.annotation.edited[35, 45]
    # a toolbar button leaves box mode too
    QTest.keyClick(window, Qt.Key.Key_B)
    window.annotate.buttons["eraser"].click()
    assert not window.canvas.draw_mode and window.mode_label.text() == "Mode: Eraser"
    window.close()


# --- 2. a failed load shows as failed; export refuses it; opening files adds to the list ------------------------------


def test_a_failed_file_is_marked_nothing_of_the_previous_image_stays_and_export_refuses(
        qtbot, disc_ckpt, scene_folder, tmp_path):
    window = make_window(qtbot, disc_ckpt)
    c = window.controller
    s = open_and_wait(qtbot, window, scene_folder)
    assert window.files.list.count() == 3 and window.proposals.model.rowCount() > 0
    bad = tmp_path / "elsewhere" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with qtbot.waitSignal(c.image_failed, timeout=WAIT_MS):
        c.open_paths([bad])  # File → Open image (Ctrl+O) with a file that cannot be read
    # the list grew by the opened file instead of being replaced; the file is marked failed, with the reason
    assert window.files.list.count() == 4
    row = window.files.list.item(3)
    assert row.text().startswith("✗") and "broken.png" in row.text() and "broken.png" in row.toolTip()
    assert c.folder.state(bad) == "failed"
    # nothing of the previous image is on screen
    assert "broken.png" in window.canvas.failure_text and window.canvas.image_hw == (0, 0)
    assert "broken.png" in window.windowTitle() and "scene" not in window.windowTitle()
    assert window.proposals.model.rowCount() == 0 and window.legend.count() == 0
    assert window.canvas.overlays.label.image.isNull()
    # Export → This image refuses (it would have written the previous image under the old code)
    out = tmp_path / "out"
    with qtbot.waitSignal(c.error, timeout=WAIT_MS) as blocker:
        assert window.export(out, {"palette"}) is None
    assert "broken.png" in blocker.args[0] and not out.exists()
    # the previous image's work is kept: going back shows it from the cache
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        c.open_image(s.path)
    assert c.session is s and window.canvas.failure_text == "" and window.canvas.image_hw == (240, 320)
    window.close()


# --- 3. the proposals table fits its panel ------------------------------------------------------------------------


def table_fits(table) -> bool:
    """No horizontal scrolling, and every column but the (eliding) class column as wide as its contents."""
    from deconv_gui.ui.proposals_panel import CLASS_COLUMN

    header = table.horizontalHeader()
    cols = range(table.model().columnCount())
    total = sum(table.columnWidth(c) for c in cols)
    wide_enough = all(table.columnWidth(c) >= max(table.sizeHintForColumn(c), header.sectionSizeHint(c))
                      for c in cols if c != CLASS_COLUMN)
    return total <= table.viewport().width() and table.horizontalScrollBar().maximum() == 0 and wide_enough


def test_proposals_table_fits_its_panel_at_its_narrowest(qtbot, disc_ckpt, scene_png):
    window = make_window(qtbot, disc_ckpt)
    open_and_wait(qtbot, window, scene_png)
    table = window.proposals.table
    assert table.model().rowCount() > 0
    qtbot.waitUntil(lambda: table.viewport().width() > 0, timeout=WAIT_MS)
    assert table_fits(table)
    dock = window.docks["Proposals"]
    window.resizeDocks([dock], [window.proposals.minimumWidth()], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: dock.width() <= window.proposals.minimumWidth() + 30, timeout=5000)
    assert table_fits(table)
    assert "box x0, y0, x1, y1" in table.model().index(0, 0).data(Qt.ItemDataRole.ToolTipRole)
    window.close()


# --- 4. the status line counts the proposals used; a re-run keeps unticked rows unticked and greyed -----------------


def test_status_says_how_many_proposals_are_used_and_a_rerun_keeps_exclusions(qtbot, disc_ckpt, scene_png):
    window = make_window(qtbot, disc_ckpt)
    c = window.controller
    s = open_and_wait(qtbot, window, scene_png)
    n = s.shown.num_proposals
    assert n >= 4
    assert f"{n} of {n} proposals used" in window.result_label.text()
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        window.proposals.set_include(0, False)
    assert f"{n - 1} of {n} proposals used" in window.result_label.text()
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        window.proposals.slider.setValue(3)  # top 3: rows 1 and 2 (row 0 is unticked)
    assert f"2 of {n} proposals used" in window.result_label.text()
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        QTest.keyClick(window, Qt.Key.Key_R)  # segment again
    model = window.proposals.model
    assert not s.user_include[0] and not s.shown.include[0]
    assert model.data(model.index(0, 2), Qt.ItemDataRole.ForegroundRole) is not None  # greyed
    assert model.data(model.index(1, 2), Qt.ItemDataRole.ForegroundRole) is None
    assert s.shown.include.tolist() == [False, True, True] + [False] * (n - 3)
    assert f"2 of {n} proposals used" in window.result_label.text()
    window.close()


# --- 5. one numbering: table row #k is "proposal": k and k.png; COCO category ids ≥ 1 --------------------------------


def test_table_numbers_match_the_exports_and_coco_categories_start_at_one(qtbot, disc_ckpt, scene_png, tmp_path):
    import json

    window = make_window(qtbot, disc_ckpt)
    s = open_and_wait(qtbot, window, scene_png)
    out = tmp_path / "out"
    with qtbot.waitSignal(window.controller.exported, timeout=WAIT_MS):
        window.export(out, {"instances", "coco"})
    entries = json.loads((out / "scene_instances.json").read_text())["instances"]
    coco = json.loads((out / "scene_coco.json").read_text())
    assert entries and len(coco["annotations"]) == len(entries)
    model = window.proposals.model
    table = {model.index(r, 0).data(): model.index(r, 2).data() for r in range(model.rowCount())}  # "#" → class
    for entry, ann in zip(entries, coco["annotations"], strict=True):
        number = entry["proposal"]
        assert table[str(number)] == entry["class_name"]  # the table's row "#number" is this instance
        assert entry["mask"].endswith(f"/{number:03d}.png") and ann["proposal"] == number
        assert s.summaries[number - 1].rank == number
    assert [e["id"] for e in entries] == list(range(1, len(entries) + 1))
    categories = {c["id"]: c for c in coco["categories"]}
    assert min(categories) >= 1
    for ann, entry in zip(coco["annotations"], entries, strict=True):
        assert categories[ann["category_id"]]["class_index"] == entry["class_id"]
        assert categories[ann["category_id"]]["name"] == entry["class_name"]
    window.close()


# --- 6. bundled presets; an image opened without --weights gets the best bundled pair; "off" without a partner -------


def run_app_spying(monkeypatch, argv: list[str]):
    """``run_app(argv)`` without its event loop; returns the window it made."""
    import sys

    from PySide6.QtWidgets import QApplication

    from deconv_gui.ui import app as app_module
    from deconv_gui.ui import main_window

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(app_module, "_leave_a_core_for_the_gui", lambda: None)
    monkeypatch.setattr(QApplication, "exec", lambda *_: 0)
    created: list = []
    original = main_window.MainWindow.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(main_window.MainWindow, "__init__", spy)
    assert app_module.run_app(argv) == 0
    return created[0]


def camvid_like(src: Path, dst: Path) -> Path:
    """A copy of a tiny checkpoint whose metadata says it was trained on CamVid (as the bundled files do)."""
    from dataclasses import replace

    from deconv_gui.io.checkpoints import load_checkpoint, save_checkpoint

    state, meta = load_checkpoint(src)
    save_checkpoint(dst, state, replace(meta, train_config={"format": "camvid", "data": "/data/camvid"}))
    return dst


def test_opening_an_image_without_weights_loads_the_bundled_pair_and_says_so(
        qtbot, monkeypatch, tmp_path, scene_png, disc_ckpt, tiny_fcn_ckpt):
    bundled = tmp_path / "weights"
    bundled.mkdir()
    camvid_like(disc_ckpt, bundled / "camvid_deconvnet.pt")
    camvid_like(tiny_fcn_ckpt, bundled / "camvid_fcn8s.pt")
    monkeypatch.setattr("deconv_gui.document.models.BUNDLED_WEIGHTS_DIR", bundled)
    window = run_app_spying(monkeypatch, [str(scene_png), "--device", "cpu"])
    qtbot.addWidget(window)
    c = window.controller
    expected = "CamVid EDeconvNet (DeconvNet + FCN-8s partner) — trained on CamVid road scenes"
    qtbot.waitUntil(lambda: c.session is not None and c.session.shown is not None and c.engine.partner is not None,
                    timeout=WAIT_MS)
    assert c.engine.weights.name == "camvid_deconvnet.pt" and c.engine.partner_weights.name == "camvid_fcn8s.pt"
    assert window.model_label.text() == expected
    assert "no bundled model" not in window.statusBar().currentMessage()
    assert window.controls.ensemble.isEnabled() and window.controls.ensemble.currentText() == "mean"
    # the menu offers the presets; the one without a partner drops it and the Ensemble box reads "off"
    names = [a.text() for a in window.menus["bundled"].actions()]
    assert names[:3] == ["CamVid EDeconvNet (DeconvNet + FCN-8s partner)", "CamVid DeconvNet", "CamVid FCN-8s"]
    with qtbot.waitSignal(c.models_described, timeout=WAIT_MS,
                          check_params_cb=lambda text: text.startswith("CamVid DeconvNet —")):
        next(a for a in window.menus["bundled"].actions() if a.text() == "CamVid DeconvNet").trigger()
    assert c.engine.partner is None and window.model_label.text() == "CamVid DeconvNet — trained on CamVid road scenes"
    assert not window.controls.ensemble.isEnabled() and window.controls.ensemble.currentText() == "off"
    assert "partner" in window.controls.ensemble.toolTip()
    window.close()


def test_the_ensemble_box_reads_off_without_a_partner(qtbot, disc_ckpt, tiny_fcn_ckpt, scene_png):
    window = make_window(qtbot, disc_ckpt)
    open_and_wait(qtbot, window, scene_png)
    box = window.controls.ensemble
    assert not box.isEnabled() and box.currentText() == "off" and "partner" in box.toolTip()
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.controller.load_partner(tiny_fcn_ckpt)
    assert box.isEnabled() and box.currentText() == "mean" == window.controller.choices.ensemble
    window.close()


# --- 8. the export dialog remembers; defaults go outside the image folder and it says where ---------------------------


def test_export_dialog_remembers_and_defaults_outside_the_image_folder(qtbot, monkeypatch, disc_ckpt, scene_png,
                                                                       tmp_path):
    from deconv_gui.document.output_folders import output_root
    from deconv_gui.ui import main_window
    from deconv_gui.ui.export_dialog import ExportDialog

    seen: list[tuple[Path, set[str], str]] = []
    script: list = []

    class ScriptedDialog(ExportDialog):
        def exec(self) -> int:
            seen.append((*self.choice()[:2], self.where.text()))
            return script.pop(0)(self)

    monkeypatch.setattr(main_window, "ExportDialog", ScriptedDialog)
    window = make_window(qtbot, disc_ckpt)
    open_and_wait(qtbot, window, scene_png)

    def choose(dialog) -> int:
        for fmt, check in dialog.checks.items():
            check.setChecked(fmt in ("index", "coco"))
        assert "scene_index.png" in dialog.where.text() and "scene_coco.json" in dialog.where.text()
        assert "scene_overlay.png" not in dialog.where.text()
        return 1

    script.append(choose)
    with qtbot.waitSignal(window.controller.exported, timeout=WAIT_MS) as blocker:
        window.ask_export()
    default_dir, default_formats, where = seen[0]
    image_dir = scene_png.parent.resolve()
    assert default_dir == output_root() / "img" and image_dir not in default_dir.resolve().parents
    assert default_formats == {"palette", "overlay"} and "scene.png" in where and "img" in where
    assert all(image_dir not in Path(p).resolve().parents for p in blocker.args[0])  # nothing into the data
    assert (default_dir / "scene_index.png").exists() and not list(image_dir.glob("*index*"))
    # the next export (also in a new window, after a restart) starts from the same formats and folder
    script.append(lambda dialog: 0)
    window.ask_export()
    assert seen[1][:2] == (default_dir, {"index", "coco"})
    window.close()
    again = make_window(qtbot, disc_ckpt)
    from deconv_gui.document.preferences import load_preferences

    again.controller.prefs = load_preferences()
    open_and_wait(qtbot, again, scene_png)
    script.append(lambda dialog: 0)
    again.ask_export()
    assert seen[2][:2] == (default_dir, {"index", "coco"})
    # a folder inside the image folder is called out
    inside = ExportDialog(scene_png.parent / "out", False, image_path=scene_png)
    qtbot.addWidget(inside)
    assert "inside the image folder" in inside.where.text()
    again.close()


# --- 9. progress text elided, the timing stays, an ETA for Run on all images ------------------------------------------


def test_progress_text_is_elided_on_one_line_and_the_run_summary_stays(qtbot, disc_ckpt, scene_png):
    window = make_window(qtbot, disc_ckpt)
    open_and_wait(qtbot, window, scene_png)
    summary = window.result_label.text()
    assert "proposals used" in summary and "ms" in summary
    window.statusBar().showMessage("something else", 10)  # other messages come and go …
    qtbot.waitUntil(lambda: window.statusBar().currentMessage() == "", timeout=5000)
    assert window.result_label.text() == summary and window.result_label.isVisible()  # … the timing stays
    long = "image 5/233: 0001TP_006690_a_very_long_camvid_file_name_indeed.png — about 3 min 20 s left"
    window._show_busy(True)
    window._show_progress(4, 233, long)
    qtbot.waitUntil(lambda: window.progress_text.isVisible(), timeout=5000)
    shown = window.progress_text.displayed_text()
    metrics = window.progress_text.fontMetrics()
    assert shown.endswith("…") and shown[:-1] in long  # elided, not clipped mid-glyph …
    assert metrics.horizontalAdvance(shown) <= window.progress_text.width()
    assert window.progress_text.toolTip() == long  # … the whole text is the tooltip
    window._show_progress(0, 1, "summarising\n0/1")
    assert "\n" not in window.progress_text.text()  # never wraps
    window._show_busy(False)
    window.close()


def test_run_on_all_images_shows_time_left(qtbot, disc_ckpt, scene_folder):
    window = make_window(qtbot, disc_ckpt)
    c = window.controller
    open_and_wait(qtbot, window, scene_folder)
    texts: list[str] = []
    c.progress.connect(lambda d, t, s: texts.append(window.files.progress_text.text()))
    with qtbot.waitSignal(c.folder_run_finished, timeout=WAIT_MS):
        window.files.run_all.click()
    assert any(t.startswith("image 2/3") and t.endswith(" left") and "about" in t for t in texts), texts
    assert texts[0].startswith("image 1/3") and "estimating" in texts[0]
    window.close()


def test_eta_from_the_pace_so_far():
    from deconv_gui.document.eta import Eta, format_duration

    now = [100.0]
    eta = Eta(clock=lambda: now[0])
    assert eta.seconds_left(0, 10) is None and eta.text(0, 10) == "estimating time left…"
    now[0] += 40.0  # 2 images in 40 s → 8 left take 160 s
    assert eta.seconds_left(2, 10) == 160.0 and eta.text(2, 10) == "about 2 min 40 s left"
    assert format_duration(7300) == "2 h 01 min" and format_duration(9.6) == "10 s"


def test_quitting_ends_the_process_without_pythons_slow_teardown(monkeypatch):
    """After the window closed (everything saved in closeEvent), ``main.py`` ends the process with ``os._exit``:
    Python's teardown of torch/Qt kept it alive 2.6–3.3 s more (measured under load; now 0.1 s)."""
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location("app_main", Path(__file__).resolve().parents[2] / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Exited(Exception):
        pass

    def fake_exit(code: int) -> None:
        raise Exited(code)

    ran: list[list[str]] = []
    monkeypatch.setattr("deconv_gui.ui.app.run_app", lambda argv: ran.append(argv) or 3)
    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setattr("logging.shutdown", lambda: None)  # keep pytest's log handlers open
    monkeypatch.setattr("sys.argv", ["main.py", "photo.png"])
    with pytest.raises(Exited) as exited:
        module.launch()
    assert ran == [["photo.png"]] and exited.value.args == (3,)


# --- 9. drawn boxes and unticked proposals come back when the image is reopened (a new session too) -----------------


def test_drawn_boxes_and_exclusions_are_kept_on_reopen(qtbot, disc_ckpt, scene_png):
    window = make_window(qtbot, disc_ckpt)
    c = window.controller
    s = open_and_wait(qtbot, window, scene_png)
    n = s.shown.num_proposals
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        window.proposals.set_include(1, False)
    for box in ((20, 15, 100, 90), (60, 40, 150, 110)):
        with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
            c.add_box(box)
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        window.proposals.set_include(n + 1, False)  # the second drawn box, unticked
    expected_include = s.user_include.copy()
    expected_boxes = s.raw.boxes[s.raw.from_user].copy()
    window.close()
    # a new session: the image comes back with its drawn boxes and both exclusions
    again = make_window(qtbot, disc_ckpt)
    c2 = again.controller
    with qtbot.waitSignal(c2.status, timeout=WAIT_MS, check_params_cb=lambda text: "restored your 2 drawn" in text):
        c2.open_paths([scene_png])
    qtbot.waitUntil(lambda: not c2.tasks.busy, timeout=WAIT_MS)
    s2 = c2.session
    assert s2.raw.num_proposals == n + 2 and s2.raw.from_user.tolist() == [False] * n + [True, True]
    np.testing.assert_allclose(s2.raw.boxes[s2.raw.from_user], expected_boxes)
    assert s2.user_include.tolist() == expected_include.tolist()
    assert s2.shown.include.tolist() == expected_include.tolist()  # the map is made without them
    model = again.proposals.model
    assert model.rowCount() == n + 2 and model.index(n, 0).data() == f"{n + 1} ✎"
    assert model.data(model.index(1, 2), Qt.ItemDataRole.ForegroundRole) is not None  # greyed
    again.close()


# --- 7. the window stays on the screen; docked training shows its curves and log --------------------------------------


def test_docking_the_training_panel_keeps_the_window_on_the_screen(qtbot, disc_ckpt, scene_png):
    window = make_window(qtbot, disc_ckpt)
    open_and_wait(qtbot, window, scene_png)
    screen = window.screen().availableGeometry()
    QTest.keyClick(window, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)  # Model → Training panel
    dock = window.docks["Training"]
    qtbot.waitUntil(lambda: dock.isVisible() and window.training.curves.height() > 0, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: screen.contains(window.frameGeometry()), timeout=5000)
    assert window.minimumSizeHint().height() <= screen.height() and not dock.isFloating()
    # the docked panel shows its curves and log, and the proposals table keeps several rows
    panel, table = window.training, window.proposals.table
    assert panel.curves.isVisible() and panel.curves.height() >= 100 and panel.log_view.height() >= 50
    assert table.viewport().height() >= 4 * table.verticalHeader().defaultSectionSize()
    # no two visible docks overlap
    def overlaps() -> bool:
        shown = [d.geometry() for d in window.docks.values() if d.isVisible()]
        return any(a.intersects(b) for i, a in enumerate(shown) for b in shown[i + 1:])

    qtbot.waitUntil(lambda: not overlaps(), timeout=5000)
    # a window made bigger than the screen (a restored geometry, a dock's size) comes back onto it
    window.resize(screen.width() + 400, screen.height() + 300)
    qtbot.waitUntil(lambda: screen.contains(window.frameGeometry()), timeout=5000)
    window.close()


def test_use_this_checkpoint_keeps_the_ensemble_partner(qtbot, disc_ckpt, tiny_fcn_ckpt, scene_png, tmp_path):
    from dataclasses import replace

    from deconv_gui.io.checkpoints import load_checkpoint, save_checkpoint

    window = make_window(qtbot, disc_ckpt)
    c = window.controller
    open_and_wait(qtbot, window, scene_png)
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        c.load_partner(tiny_fcn_ckpt)
    # a run's checkpoint with the same classes: the partner stays
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        window.training.use_checkpoint.emit(str(disc_ckpt))
    assert c.engine.partner_weights == tiny_fcn_ckpt and window.controls.ensemble.isEnabled()
    assert c.session.shown.partner_scores is not None
    # a checkpoint with other classes: the partner is set aside, and the user is told
    state, meta = load_checkpoint(disc_ckpt)
    other = tmp_path / "other_classes.pt"
    save_checkpoint(other, state, replace(meta, class_names=[f"c{i}" for i in range(meta.num_classes)]))
    with qtbot.waitSignal(c.status, timeout=WAIT_MS, check_params_cb=lambda t: "set aside" in t) as told:
        window.training.use_checkpoint.emit(str(other))
    assert tiny_fcn_ckpt.name in told.args[0] and c.engine.partner is None
    assert not window.controls.ensemble.isEnabled()
    # back to a model of the partner's classes: the partner comes back
    with qtbot.waitSignal(c.status, timeout=WAIT_MS, check_params_cb=lambda t: "back" in t):
        window.training.use_checkpoint.emit(str(disc_ckpt))
    assert c.engine.partner_weights == tiny_fcn_ckpt and window.controls.ensemble.isEnabled()
    window.close()


def test_make_a_synthetic_dataset_fills_the_training_form(qtbot, tmp_path):
    from deconv_gui.training.datasets import open_dataset
    from deconv_gui.ui.training_panel import SYNTHETIC_TRAIN, TrainingPanel

    panel = TrainingPanel()
    qtbot.addWidget(panel)
    (tmp_path / "notes.txt").write_text("a folder that is not empty")
    folder = panel.make_synthetic_dataset(tmp_path)
    assert folder == tmp_path / "synthetic_shapes"
    assert panel.form.dataset.path() == folder and panel.form.format.currentText() == "folder"
    assert len(open_dataset(folder, "folder", "train")) == SYNTHETIC_TRAIN
    assert "press Start" in panel.log_view.toPlainText() and panel.synthetic_button.text().startswith("Make a synth")


def test_run_on_all_images_marks_the_files_it_could_not_read(qtbot, disc_ckpt, scene_folder, tmp_path):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(scene_folder, folder)
    (folder / "scene_9.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    window = make_window(qtbot, disc_ckpt)
    c = window.controller
    open_and_wait(qtbot, window, folder)
    with qtbot.waitSignal(c.folder_run_finished, timeout=WAIT_MS) as blocker:
        window.files.run_all.click()
    assert blocker.args == [3, 1]
    row = window.files.list.item(3)
    assert row.text().startswith("✗") and "scene_9.png" in row.toolTip()
    assert c.folder.state(folder / "scene_9.png") == "failed"
    window.close()


def test_the_docked_training_form_needs_no_sideways_scrolling(qtbot, disc_ckpt):
    window = make_window(qtbot, disc_ckpt)
    window.resize(1500, 920)
    QTest.keyClick(window, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    dock = window.docks["Training"]
    qtbot.waitUntil(lambda: dock.isVisible() and window.training.curves.height() > 0, timeout=WAIT_MS)
    left = window.training.splitter.widget(0)
    qtbot.waitUntil(lambda: left.width() > 0, timeout=WAIT_MS)
    assert left.width() >= left.widget().sizeHint().width(), (left.width(), left.widget().sizeHint().width())
    window.close()


def test_the_proposal_count_says_it_is_the_models_own_until_changed(qtbot, tiny_deconvnet_ckpt: Path) -> None:
    """A new user's count is the loaded model's (the CamVid model asks for 100, not the VOC 50), and says so."""
    from deconv_gui.ui.main_window import MainWindow

    window = MainWindow(Preferences(device="cpu"))
    qtbot.addWidget(window)
    c = window.controller
    with qtbot.waitSignal(c.model_changed, timeout=WAIT_MS):
        c.load_weights(tiny_deconvnet_ckpt)
    box = window.controls.proposals
    assert box.value() == 0 and box.text() == f"model's ({c.engine.model_top_n()})"
    assert c.engine.proposer().config.top_n == c.engine.model_top_n()
    box.setValue(9)
    box.editingFinished.emit()
    assert c.prefs.num_proposals == 9 and c.engine.proposer().config.top_n == 9
