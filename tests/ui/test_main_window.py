"""The real MainWindow, offscreen, driven through its widgets and controller; waits on signals, not sleeps."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest

from deconv_gui.core.synthetic import make_scene
from deconv_gui.document.preferences import Preferences
from deconv_gui.inference.result_files import FORMATS
from deconv_gui.io.label_maps import read_label_png

WAIT_MS = 120_000  # generous: the CI machine may be loaded; nothing here is a timing assertion


pytestmark = pytest.mark.usefixtures("isolated_config")


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(make_scene(5, height=120, width=160, min_size=40, max_size=90).image).save(path)
    return path


def make_window(qtbot, weights: Path | None, proposals: int = 6):
    from deconv_gui.ui.main_window import MainWindow

    window = MainWindow(Preferences(num_proposals=proposals, device="cpu"))
    qtbot.addWidget(window)
    window.show()
    # small scenes: let Edge Boxes keep boxes down to 24 px so a 160×120 image has proposals
    window.controller.engine.set_proposals(proposals, None)
    from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer

    window.controller.engine._proposer = EdgeBoxProposer(EdgeBoxConfig(top_n=proposals, min_side=24, min_box_area=200))
    if weights is not None:
        with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
            window.controller.load_weights(weights)
    return window


def open_and_wait(qtbot, window, path: Path):
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.controller.open_paths([path])
    return window.controller.session


@pytest.fixture()
def window(qtbot, disc_ckpt):
    w = make_window(qtbot, disc_ckpt)
    yield w
    w.close()


def test_open_select_exclude_and_top_n(qtbot, window, scene_png):
    s = open_and_wait(qtbot, window, scene_png)
    n = s.shown.num_proposals
    assert n >= 2 and s.state == "segmented"
    assert window.proposals.model.rowCount() == n
    assert window.canvas.overlays.label.image.width() == 160
    assert window.legend.count() == len(s.shown.class_names)
    # select a proposal in the table → the canvas shows its box selected and its mask
    window.proposals.table.selectRow(0)
    assert s.selected == 0 and window.canvas.overlays.boxes.selected == 0
    # clicking inside a box on the canvas selects a proposal too
    x0, y0, x1, y1 = s.summaries[1].box
    window.controller.select(None)
    window._pick((max(x0, 0) + min(x1, 160)) / 2, (max(y0, 0) + min(y1, 120)) / 2)
    assert s.selected is not None
    # exclude one proposal with its checkbox → recombined from the cache
    before = s.shown.label.copy()
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.proposals.set_include(0, False)
    assert not s.shown.include[0] and s.shown.include[1:].all()
    # exclude all → nothing aggregated, the label map changes to all class 0
    for row in range(1, n):
        window.proposals.set_include(row, False)
    qtbot.waitUntil(lambda: not s.shown.include.any(), timeout=WAIT_MS)
    assert (s.shown.label == 0).all() and s.shown.aggregated.max() == 0.0
    assert (before == 1).any()  # the label map did change: the proposals' "disc" pixels are gone
    # top-N slider
    for row in range(n):
        window.proposals.set_include(row, True)
    qtbot.waitUntil(lambda: s.shown.include.all(), timeout=WAIT_MS)
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.proposals.slider.setValue(1)
    assert s.shown.include.tolist() == [True] + [False] * (n - 1)


def test_ensemble_and_crf_toggles(qtbot, window, scene_png, tiny_fcn_ckpt):
    s = open_and_wait(qtbot, window, scene_png)
    assert not window.controls.ensemble.isEnabled()
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.controller.load_partner(tiny_fcn_ckpt)
    assert window.controls.ensemble.isEnabled() and s.raw.partner_scores is not None
    mean = s.shown.probabilities.copy()
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.controls.ensemble.setCurrentText("product")
    assert window.controller.choices.ensemble == "product"
    assert not np.allclose(mean, s.shown.probabilities)
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.controls.ensemble.setCurrentText("off")
    assert s.shown.partner_scores is not None and "ensemble" in s.shown.timings
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.controls.ensemble.setCurrentText("mean")
    assert np.allclose(mean, s.shown.probabilities)  # back to the first result, from cached maps
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.controls.crf.setChecked(True)
    assert "crf" in s.shown.timings
    assert not np.allclose(mean, s.shown.probabilities)
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.controls.crf.setChecked(False)
    assert np.allclose(mean, s.shown.probabilities)


def test_draw_a_box_adds_a_proposal(qtbot, window, scene_png):
    s = open_and_wait(qtbot, window, scene_png)
    n = s.shown.num_proposals
    canvas = window.canvas
    QTest.keyClick(window, Qt.Key.Key_B)
    assert canvas.draw_mode
    a = canvas.mapFromScene(20, 15)
    b = canvas.mapFromScene(100, 90)
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        QTest.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
        QTest.mouseMove(canvas.viewport(), b)
        QTest.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    assert s.shown.num_proposals == n + 1 and s.shown.from_user[-1] and s.shown.include[-1]
    x0, y0, x1, y1 = s.shown.boxes[-1]
    assert abs(x0 - 20) <= 2 and abs(y0 - 15) <= 2 and abs(x1 - 100) <= 2 and abs(y1 - 90) <= 2
    assert window.proposals.model.rowCount() == n + 1
    QTest.keyClick(canvas, Qt.Key.Key_Escape)
    assert not canvas.draw_mode


def test_export_every_format_and_ask_before_overwriting(qtbot, window, scene_png, tmp_path, monkeypatch):
    from deconv_gui.ui import main_window

    s = open_and_wait(qtbot, window, scene_png)
    out = tmp_path / "out"
    asked: list[int] = []
    monkeypatch.setattr(main_window, "confirm_overwrite", lambda _parent, existing: asked.append(len(existing)) or False)
    with qtbot.waitSignal(window.controller.exported, timeout=WAIT_MS) as blocker:
        window.export(out, set(FORMATS))
    written = blocker.args[0]
    assert asked == [] and written and all(Path(p).exists() for p in written)
    assert window.files.list.item(0).text().startswith("✓") and s.state == "exported"
    assert np.array_equal(read_label_png(out / "scene.png"), s.shown.label)
    assert np.array_equal(np.asarray(Image.open(out / "scene_index.png")), s.shown.label)
    assert np.asarray(Image.open(out / "scene_overlay.png").convert("RGB")).shape == (120, 160, 3)
    instances = json.loads((out / "scene_instances.json").read_text())
    coco = json.loads((out / "scene_coco.json").read_text())
    assert {"images", "annotations", "categories"} <= set(coco)
    assert isinstance(instances, dict)
    # exporting again: the user is asked; "No" writes nothing
    stamp = (out / "scene.png").stat().st_mtime_ns
    assert window.export(out, {"palette"}) is None
    assert asked == [1] and (out / "scene.png").stat().st_mtime_ns == stamp


def test_run_folder_then_navigate_and_export_the_folder(qtbot, window, scene_folder, tmp_path):
    c = window.controller
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        c.open_paths([scene_folder])
    assert window.files.list.count() == 3
    with qtbot.waitSignal(c.folder_run_finished, timeout=WAIT_MS) as blocker:
        window.files.run_all.click()
    assert blocker.args == [3, 0]
    assert all(c.folder.state(p) == "segmented" for p in c.folder.files)
    # D shows the next image from the cache: its result arrives without a new network run
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        QTest.keyClick(window, Qt.Key.Key_D)
    assert c.session.path.name == "scene_1.png" and c.session.shown is not None and c.pictures[c.session.path].display is not None
    with qtbot.waitSignal(c.image_opened, timeout=WAIT_MS):
        QTest.keyClick(window, Qt.Key.Key_PageUp)
    assert c.session.path.name == "scene_0.png"
    out = tmp_path / "folder_out"
    with qtbot.waitSignal(c.exported, timeout=WAIT_MS):
        window.export(out, {"palette", "coco"}, whole_folder=True)
    assert sorted(p.name for p in out.iterdir()) == ["coco.json", "scene_0.png", "scene_1.png", "scene_2.png"]
    assert len(json.loads((out / "coco.json").read_text())["images"]) == 3
    assert all(c.folder.state(p) == "exported" for p in c.folder.files)


def test_cancel_mid_run_and_stale_results_never_land(qtbot, tiny_deconvnet_ckpt, scene_folder):
    window = make_window(qtbot, tiny_deconvnet_ckpt, proposals=40)
    c = window.controller
    window.controller.engine._proposer = None  # the default Edge Boxes (many proposals on 240×320)
    with qtbot.waitSignal(c.image_opened, timeout=WAIT_MS):
        c.open_paths([scene_folder])
    with qtbot.waitSignal(c.progress, timeout=WAIT_MS, check_params_cb=lambda d, t, st: st == "crops" and d > 0):
        pass
    with qtbot.waitSignal(c.run_cancelled, timeout=WAIT_MS):
        window.cancel_button.click()
    assert c.session.shown is None and c.folder.state(c.session.path) == "not run"
    c.engine.set_proposals(6, None)  # few proposals from here on: the rest only needs quick runs
    # a run for scene_0 superseded by opening scene_1: scene_0's result must never show on scene_1
    c.segment()
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS) as blocker:
        c.open_image(scene_folder / "scene_1.png")
    assert blocker.args[0].path.name == "scene_1.png" and c.session.path.name == "scene_1.png"
    assert c.session.shown.image_hw == (240, 320)
    # closing mid-run cancels and waits for the worker
    c.segment()
    window.close()
    assert c.tasks._thread.isFinished()


def test_corrupt_image_is_a_message_not_a_crash(qtbot, window, scene_png, tmp_path):
    s = open_and_wait(qtbot, window, scene_png)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with qtbot.waitSignal(window.controller.error, timeout=WAIT_MS) as blocker:
        window.controller.open_image(bad)
    assert "broken.png" in blocker.args[0]
    assert window.controller.session is None and window.canvas.failure_text  # the failure shows, not the old image
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.controller.open_image(scene_png)
    assert window.controller.session is s and s.shown is not None  # the work in progress is kept
    bad_weights = tmp_path / "weights.pt"
    bad_weights.write_text("not a checkpoint")
    with qtbot.waitSignal(window.controller.error, timeout=WAIT_MS) as blocker:
        window.controller.load_weights(bad_weights)
    assert "weights.pt" in blocker.args[0] and window.controller.engine.ready
    window.controller.set_edge_model_file(str(tmp_path / "missing_edges.yml.gz"))
    with qtbot.waitSignal(window.controller.error, timeout=WAIT_MS) as blocker:
        window.controller.segment()
    assert "missing_edges.yml.gz" in blocker.args[0] and s.shown is not None


def test_gui_thread_keeps_ticking_during_a_run(qtbot, tiny_deconvnet_ckpt, scene_folder):
    window = make_window(qtbot, tiny_deconvnet_ckpt, proposals=30)
    c = window.controller
    c.engine._proposer = None
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()) if c.tasks.busy else None)
    timer.start()
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        c.open_paths([scene_folder / "scene_2.png"])
    timer.stop()
    gaps = np.diff(ticks)
    assert len(gaps) > 10
    assert gaps.max() < 0.2, f"longest gap {gaps.max() * 1000:.0f} ms"
    window.close()


def test_no_model_keeps_the_app_usable(qtbot, scene_png):
    window = make_window(qtbot, None)
    with qtbot.waitSignal(window.controller.image_opened, timeout=WAIT_MS):
        window.controller.open_paths([scene_png])
    assert window.controller.segment() is None and window.canvas.image_hw == (120, 160)
    window.canvas.zoom_in()
    assert window.canvas.zoom > 0
    window._show_hover(3, 4)
    assert window.hover_label.text() == "(3, 4)"
    window.close()


def test_no_display_prints_one_line(monkeypatch, capsys):
    from deconv_gui.ui.app import run_app

    monkeypatch.setattr("sys.platform", "linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert run_app([]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "QT_QPA_PLATFORM=offscreen" in out[0]


def test_hover_reports_class_and_probability(qtbot, window, scene_png):
    s = open_and_wait(qtbot, window, scene_png)
    window._show_hover(10, 20)
    name = s.shown.class_names[s.shown.label[20, 10]]
    assert window.hover_label.text().startswith(f"{name}, p=") and window.hover_label.text().endswith("at (10, 20)")
    canvas = window.canvas
    with qtbot.waitSignal(canvas.hovered, timeout=5000):
        QTest.mouseMove(canvas.viewport(), canvas.mapFromScene(30.5, 40.5) + QPoint(0, 0))


def test_keys_zoom_fit_and_drop(qtbot, scene_png, scene_folder):
    from PySide6.QtCore import QMimeData, QUrl

    from deconv_gui.ui.file_list import paths_from_mime

    window = make_window(qtbot, None)
    with qtbot.waitSignal(window.controller.image_opened, timeout=WAIT_MS):
        window.controller.open_paths([scene_png])
    canvas = window.canvas
    fitted = canvas.zoom
    QTest.keyClick(window, Qt.Key.Key_Plus)
    assert canvas.zoom == pytest.approx(fitted * 1.25)
    QTest.keyClick(window, Qt.Key.Key_Minus)
    QTest.keyClick(window, Qt.Key.Key_Minus)
    assert canvas.zoom == pytest.approx(fitted / 1.25)
    QTest.keyClick(window, Qt.Key.Key_1)
    assert canvas.zoom == pytest.approx(1.0 / canvas.devicePixelRatioF())
    QTest.keyClick(window, Qt.Key.Key_F)
    assert canvas.zoom == pytest.approx(fitted)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(scene_folder))])
    assert paths_from_mime(mime) == [scene_folder]
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QDropEvent

    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.controller.folder_changed, timeout=WAIT_MS):
        window.dropEvent(drop)
    assert window.files.list.count() == 3
    window.close()
    from deconv_gui.document.preferences import load_preferences

    assert load_preferences().recent_files[0] == str(scene_folder.resolve())  # saved on close


def test_excepthook_shows_the_traceback_and_keeps_the_window(qtbot, monkeypatch):
    import sys

    from deconv_gui.ui.app import install_excepthook

    window = make_window(qtbot, None)
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(window, "show_traceback", lambda msg, tb: shown.append((msg, tb)))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    install_excepthook(window)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    assert shown and shown[0][0] == "RuntimeError: boom" and "Traceback" in shown[0][1]
    assert window.isVisible()
    window.close()


def test_settings_and_export_dialogs_round_trip(qtbot, tmp_path):
    from deconv_gui.postprocess.crf import CRFParams
    from deconv_gui.ui.export_dialog import ExportDialog
    from deconv_gui.ui.settings_dialog import SettingsDialog

    params = CRFParams(gaussian_sxy=2.5, bilateral_srgb=7.0, iterations=4, normalization="symmetric")
    settings = SettingsDialog(params, "/x/model.yml.gz")
    qtbot.addWidget(settings)
    assert settings.values() == (params, "/x/model.yml.gz")
    settings.edge_model.setText("  ")
    settings.fields["bilateral_weight"].setValue(2.0)
    got, edge = settings.values()
    assert edge is None and got.bilateral_weight == 2.0 and got.iterations == 4
    export = ExportDialog(tmp_path, has_folder=False)
    qtbot.addWidget(export)
    assert not export.folder.isEnabled()
    for check in export.checks.values():
        check.setChecked(True)
    assert export.choice() == (tmp_path, set(FORMATS), False)


def test_run_app_without_a_model_opens_the_image_and_saves_a_screenshot(qtbot, scene_png, tmp_path, monkeypatch):
    import sys

    from PySide6.QtWidgets import QApplication

    from deconv_gui.ui import app as app_module

    shot = tmp_path / "shot.png"
    monkeypatch.setenv("DECONV_GUI_SCREENSHOT", str(shot))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(app_module, "_leave_a_core_for_the_gui", lambda: None)
    windows: list = []
    monkeypatch.setattr(QApplication, "exec", lambda *_: windows.append(1) or 0)  # no nested event loop
    from deconv_gui.ui import main_window

    created: list = []
    original = main_window.MainWindow.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(main_window.MainWindow, "__init__", spy)
    monkeypatch.setattr("deconv_gui.document.models.BUNDLED_WEIGHTS_DIR", tmp_path / "no_bundled_weights")
    assert app_module.run_app([str(scene_png)]) == 0
    window = created[0]
    qtbot.addWidget(window)
    qtbot.waitUntil(shot.exists, timeout=WAIT_MS)
    assert "no bundled model: File → Load weights" in window.statusBar().currentMessage()
    assert window.canvas.image_hw == (120, 160) and not window.isVisible()
    assert Image.open(shot).size[0] > 200


def test_session_cache_stays_within_its_budget(qtbot, scene_folder, monkeypatch):
    from deconv_gui.ui import controller as controller_module

    window = make_window(qtbot, None)
    c = window.controller
    with qtbot.waitSignal(c.image_opened, timeout=WAIT_MS):
        c.open_paths([scene_folder])
    with qtbot.waitSignal(c.image_opened, timeout=WAIT_MS):
        c.next_image()
    assert len(c._sessions) == 2
    monkeypatch.setattr(controller_module, "MAX_CACHE_BYTES", 1)
    with qtbot.waitSignal(c.image_opened, timeout=WAIT_MS):
        c.next_image()
    assert c.session.path.name == "scene_2.png" and list(c._sessions) == [c.session.path]
    window.close()


def test_import_caffe_model_from_the_file_menu(qtbot, scene_png, tmp_path, monkeypatch):
    """File → Import Caffe model…: a synthetic DeconvNet caffemodel is converted, loaded, shows the 21 VOC classes
    in the legend and segments; a bad file is a message and leaves the loaded model in place."""
    from PySide6.QtWidgets import QFileDialog

    from deconv_gui.core.palette import VOC_CLASSES
    from tests.models.caffe_nets import deconvnet_layers, write_caffemodel

    source = write_caffemodel(tmp_path / "DeconvNet_small.caffemodel", deconvnet_layers(1 / 16, seed=5))
    out = tmp_path / "imported.pt"
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(source), ""))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    window = make_window(qtbot, None)
    file_menu = window.menuBar().actions()[0].menu()
    action = next(a for a in file_menu.actions() if a.text() == "&Import Caffe model…")
    with qtbot.waitSignal(window.controller.status, timeout=WAIT_MS) as status:
        action.trigger()
    assert status.args[0].startswith("imported.pt: DeconvNet, width 0.0625, 21 classes (VOC), ")
    assert out.exists() and window.controller.engine.runner.meta.channel_order == "bgr"
    s = open_and_wait(qtbot, window, scene_png)
    assert s.shown.label.shape == (120, 160)
    names = [window.legend.item(i).text().split("  (")[0] for i in range(window.legend.count())]
    assert names == list(VOC_CLASSES)
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(source.read_bytes()[:5000])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(bad), ""))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "bad.pt"), ""))
    with qtbot.waitSignal(window.controller.error, timeout=WAIT_MS) as blocker:
        action.trigger()
    assert blocker.args[0].startswith(f"{bad}: truncated")
    assert not (tmp_path / "bad.pt").exists() and window.controller.engine.weights == out
    window.close()
