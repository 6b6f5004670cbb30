"""Annotation in the real window, offscreen: mouse strokes with each tool, then the exported PNG's pixels;
accept instance and box → mask; autosave → reopen; a corrupt autosave is a message and is kept aside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from deconv_gui.core.synthetic import make_scene
from deconv_gui.document.annotation import flood_region
from deconv_gui.document.autosave import autosave_path
from deconv_gui.document.output_folders import default_edits_folder
from deconv_gui.document.preferences import Preferences
from deconv_gui.io.label_maps import read_label_png

WAIT_MS = 120_000
LEFT, NO_MOD = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier


pytestmark = pytest.mark.usefixtures("isolated_config")


@pytest.fixture()
def scene_png(tmp_path) -> Path:
    path = tmp_path / "img" / "scene.png"
    path.parent.mkdir()
    Image.fromarray(make_scene(5, height=120, width=160, min_size=40, max_size=90).image).save(path)
    return path


def open_window(qtbot, weights: Path, image: Path):
    from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer
    from deconv_gui.ui.main_window import MainWindow

    window = MainWindow(Preferences(num_proposals=6, device="cpu"))
    qtbot.addWidget(window)
    window.show()
    c = window.controller
    c.engine.set_proposals(6, None)
    c.engine._proposer = EdgeBoxProposer(EdgeBoxConfig(top_n=6, min_side=24, min_box_area=200))
    with qtbot.waitSignal(c.model_changed, timeout=WAIT_MS):
        c.load_weights(weights)
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        c.open_paths([image])
    return window


def stroke(window, points: list[tuple[float, float]]) -> None:
    """Press at the first image point, move through the others, release at the last (like a user's drag)."""
    canvas = window.canvas
    vp = canvas.viewport()
    pos = [canvas.mapFromScene(x, y) for x, y in points]
    QTest.mousePress(vp, LEFT, NO_MOD, pos[0])
    for p in pos[1:]:
        QTest.mouseMove(vp, p)
    QTest.mouseRelease(vp, LEFT, NO_MOD, pos[-1])


def click(window, x: float, y: float) -> None:
    QTest.mouseClick(window.canvas.viewport(), LEFT, NO_MOD, window.canvas.mapFromScene(x, y))


def export_palette(qtbot, window, out: Path, monkeypatch) -> np.ndarray:
    from deconv_gui.ui import main_window

    monkeypatch.setattr(main_window, "confirm_overwrite", lambda *_: True)
    with qtbot.waitSignal(window.controller.exported, timeout=WAIT_MS):
        window.export(out, {"palette"})
    return read_label_png(out / "scene.png")


def read_mask(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im) == 255


def share(label: np.ndarray, class_id: int) -> str:
    """The legend's text for ``class_id``'s area in ``label`` (void pixels not counted)."""
    count = int((label == class_id).sum())
    return f"({100.0 * count / int((label != 255).sum()):.1f} %)" if count else ""


def legend_share(window, class_id: int) -> str:
    text = window.legend.item(class_id).text()
    return text[text.index("("):] if "(" in text else ""


def test_every_paint_tool_by_mouse_then_export_and_undo(qtbot, disc_ckpt, scene_png, tmp_path, monkeypatch):
    window = open_window(qtbot, disc_ckpt, scene_png)
    s, ann, canvas = window.controller.session, window.annotator, window.canvas
    prediction = s.shown.label.copy()
    window.activateWindow()
    canvas.setFocus()
    # brush (P), class 2 (number key), radius 2 (slider)
    QTest.keyClick(window, Qt.Key.Key_P)
    assert ann.state.tool == "brush" and canvas.paint_mode
    QTest.keyClick(window, Qt.Key.Key_2)
    QTest.keyClick(window, Qt.Key.Key_BracketRight)
    assert ann.state.radius == 10 and window.annotate.size.value() == 10
    QTest.keyClick(window, Qt.Key.Key_BracketLeft)
    assert ann.state.radius == 8
    window.annotate.size.setValue(2)
    assert ann.state.class_id == 2 and ann.state.radius == 2 and window.legend.active == 2
    painted: list = []
    ann.painted.connect(painted.append)
    stroke(window, [(20.5, 20.5), (40.5, 20.5), (60.5, 20.5)])
    assert painted and all(r[2] - r[0] < 60 for r in painted)  # each update repainted only its rectangle
    # eraser (E) over the middle: the prediction shows again there
    QTest.keyClick(window, Qt.Key.Key_E)
    window.annotate.size.setValue(1)
    stroke(window, [(38.5, 20.5), (42.5, 20.5)])
    # void (N): one dab
    QTest.keyClick(window, Qt.Key.Key_N)
    click(window, 100.5, 30.5)
    # flood fill (G) with class 3 at (5, 100)
    QTest.keyClick(window, Qt.Key.Key_G)
    QTest.keyClick(window, Qt.Key.Key_3)
    before_fill = s.annotation.composite(prediction)
    click(window, 5.5, 100.5)
    # polygon (O) with class 4: four clicks, Enter closes it
    QTest.keyClick(window, Qt.Key.Key_O)
    QTest.keyClick(window, Qt.Key.Key_4)
    for x, y in [(120, 60), (150, 60), (150, 90), (120, 90)]:
        click(window, x, y)
    QTest.keyClick(canvas, Qt.Key.Key_Return)
    label = export_palette(qtbot, window, tmp_path / "out", monkeypatch)
    assert (label[20, 20:36] == 2).all() and (label[20, 45:61] == 2).all()  # brush (outside the erased part)
    assert (label[19:22, 22:37] == 2).all()  # radius 2 around the row (±2 px is at the mouse's precision)
    assert (label[20, 39:42] == prediction[20, 39:42]).all()  # erased: the prediction again
    void = label == 255  # one dab of radius 1: the pixel under the mouse and up to 4 neighbours, nothing else
    assert label[30, 100] == 255 and 3 <= void[29:32, 99:102].sum() <= 5 and void.sum() == void[29:32, 99:102].sum()
    rect, mask = flood_region(before_fill, 5.5, 100.5)
    region = np.zeros_like(mask, shape=label.shape)
    region[rect[1]:rect[3], rect[0]:rect[2]] = mask
    assert region.sum() > 1 and (label[region] == 3).all()
    assert (label[60:90, 120:150] == 4).all()  # polygon: the pixel centres inside the four clicks
    assert (label[90, 120:150] == prediction[90, 120:150]).all() and (label[60:90, 150] == prediction[60:90, 150]).all()
    # unedited pixels are the prediction
    untouched = ~s.annotation.edited
    assert (label[untouched] == prediction[untouched]).all()
    # the instance export follows the edits too: the painted square belongs to an instance of class 4
    with qtbot.waitSignal(window.controller.exported, timeout=WAIT_MS):
        window.export(tmp_path / "out", {"instances"})
    entries = json.loads((tmp_path / "out" / "scene_instances.json").read_text())["instances"]
    owners = [e for e in entries if e["class_id"] == 4 and read_mask(tmp_path / "out" / e["mask"])[60:90, 120:150].all()]
    assert len(owners) == 1
    # Ctrl+Z undoes the polygon; Ctrl+Shift+Z redoes it
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    label = export_palette(qtbot, window, tmp_path / "out", monkeypatch)
    assert (label[60:90, 120:150] == prediction[60:90, 120:150]).all() and label[30, 100] == 255
    assert window.annotate.redo.isEnabled()
    undone = share(s.annotation.composite(prediction), 4)
    assert legend_share(window, 4) == undone  # the legend's areas follow the edits
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert (s.annotation.composite(prediction)[60:90, 120:150] == 4).all()
    assert legend_share(window, 4) == share(s.annotation.composite(prediction), 4) != undone
    # re-running the model keeps the edits on top
    with qtbot.waitSignal(window.controller.result_shown, timeout=WAIT_MS):
        window.controller.segment()
    assert (s.edited_label()[60:90, 120:150] == 4).all() and s.annotation.history.can_undo
    window.close()


def test_accept_instance_box_to_mask_and_autosave_restore(qtbot, disc_ckpt, scene_png, tmp_path):
    window = open_window(qtbot, disc_ckpt, scene_png)
    c, ann = window.controller, window.annotator
    s = c.session
    index = next(i for i, row in enumerate(s.summaries) if row.area)
    row = s.summaries[index]
    c.select(index)
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Return)  # accept the selected instance
    mask = np.zeros(s.image.shape[:2], bool)
    x0, y0 = row.offset
    mask[y0:y0 + row.mask.shape[0], x0:x0 + row.mask.shape[1]] = row.mask
    assert s.annotation.edited[mask].all() and (s.annotation.label[mask] == row.class_id).all()
    assert s.annotation.edited.sum() == mask.sum()
    # box → mask (M): draw a box, the model segments that crop, its mask is accepted
    QTest.keyClick(window, Qt.Key.Key_M)
    assert ann.state.tool == "box_mask" and window.canvas.draw_mode
    n = s.raw.num_proposals
    a, b = window.canvas.mapFromScene(10, 10), window.canvas.mapFromScene(90, 80)
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        QTest.mousePress(window.canvas.viewport(), LEFT, NO_MOD, a)
        QTest.mouseMove(window.canvas.viewport(), b)
        QTest.mouseRelease(window.canvas.viewport(), LEFT, NO_MOD, b)
    assert s.raw.num_proposals == n + 1 and s.raw.from_user[-1]
    new = s.summaries[-1]
    assert new.area > 0, "the objects model should find something in the box"
    nx, ny = new.offset
    box_mask = np.zeros_like(mask)
    box_mask[ny:ny + new.mask.shape[0], nx:nx + new.mask.shape[1]] = new.mask
    assert (s.annotation.label[box_mask] == new.class_id).all() and s.annotation.edited[box_mask].all()
    assert s.annotation.history.can_undo and len(s.annotation.history) == 2
    QTest.keyClick(window, Qt.Key.Key_Escape)
    assert ann.state.tool == "pan" and not window.canvas.draw_mode
    # autosave: within the debounce, written off the GUI thread; the file list says "edited"
    qtbot.waitUntil(lambda: c.edits.has_edits(scene_png), timeout=WAIT_MS)
    assert ann.writer.flush(30)
    assert "edited" in window.files.list.item(0).text()
    edits = (s.annotation.label.copy(), s.annotation.edited.copy())
    window.close()
    assert autosave_path(scene_png, default_edits_folder()).exists()  # outside the image folder
    assert not (scene_png.parent / ".deconv_gui").exists()
    # reopening the image in a new window restores the edits
    again = open_window(qtbot, disc_ckpt, scene_png)
    restored = again.controller.session.annotation
    assert restored is not None and np.array_equal(restored.label, edits[0]) and np.array_equal(restored.edited,
                                                                                                 edits[1])
    assert "edited" in again.files.list.item(0).text()
    assert again.canvas.overlays.edits.image.width() == 160
    # the folder export uses the edited map too
    with qtbot.waitSignal(again.controller.exported, timeout=WAIT_MS):
        again.export(tmp_path / "folder_out", {"palette", "index"}, whole_folder=True)
    exported = read_label_png(tmp_path / "folder_out" / "scene.png")
    assert np.array_equal(exported, again.controller.session.edited_label())
    assert (exported[edits[1]] == edits[0][edits[1]]).all()
    again.close()


def test_corrupt_autosave_is_a_message_and_kept_aside(qtbot, disc_ckpt, scene_png):
    saved = autosave_path(scene_png, default_edits_folder())
    saved.parent.mkdir(parents=True)
    saved.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    window = open_window(qtbot, disc_ckpt, scene_png)
    assert "corrupt autosave" in window.last_error and saved.name in window.last_error
    kept = list(saved.parent.glob(f"{saved.name}.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes().endswith(b"not really")
    assert window.controller.session.annotation is None
    # painting again autosaves a fresh file; the kept one stays as it was
    window.annotator.set_tool("brush")
    stroke(window, [(30.5, 30.5), (35.5, 30.5)])
    window.annotator.save_now()
    assert window.annotator.writer.flush(30) and saved.exists()
    assert kept[0].read_bytes().endswith(b"not really")
    window.close()


def test_a_failing_autosave_is_reported_once(qtbot, disc_ckpt, scene_png):
    default_edits_folder().parent.mkdir(parents=True)
    default_edits_folder().write_text("a file where the autosave folder should go")
    window = open_window(qtbot, disc_ckpt, scene_png)
    ann = window.annotator
    messages: list[str] = []
    ann.message.connect(messages.append)
    ann.set_tool("brush")
    for y in (30.5, 50.5):
        stroke(window, [(30.5, y), (35.5, y)])
        with qtbot.waitSignal(ann._saved, timeout=WAIT_MS):  # the writer thread's report
            ann.save_now()
    assert len(messages) == 1 and "autosave of your edits failed" in messages[0] and "edits" in messages[0]
    assert window.last_error == messages[0]
    window.close()
