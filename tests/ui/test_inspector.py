"""Issue 14's inspector in the real window, offscreen: the winner layer (W), the hover explanation (I), Ctrl-click
selects the pixel's winner (and neither paints nor draws), the proposals table sorts and filters through its
proxy with the include checkboxes and the selection still naming the right proposals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from deconv_gui.core.synthetic import make_scene
from deconv_gui.core.winners import WINNER_NONE
from deconv_gui.document.preferences import Preferences
from deconv_gui.inference.explain import compute_winners, explain_pixel

WAIT_MS = 120_000
LEFT, NO_MOD, CTRL = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ControlModifier

pytestmark = pytest.mark.usefixtures("isolated_config")


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(make_scene(5, height=120, width=160, min_size=40, max_size=90).image).save(path)
    return path


@pytest.fixture()
def window(qtbot, disc_ckpt, scene_png):
    """The window with the scene segmented by 6 proposals and its winner map computed."""
    from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer
    from deconv_gui.ui.main_window import MainWindow

    w = MainWindow(Preferences(num_proposals=6, device="cpu"))
    qtbot.addWidget(w)
    w.show()
    c = w.controller
    c.engine.set_proposals(6, None)
    c.engine._proposer = EdgeBoxProposer(EdgeBoxConfig(top_n=6, min_side=24, min_box_area=200))
    with qtbot.waitSignal(c.model_changed, timeout=WAIT_MS):
        c.load_weights(disc_ckpt)
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        c.open_paths([scene_png])
    wait_winners(qtbot, w)
    yield w
    w.close()


def wait_winners(qtbot, window) -> None:
    """Until the inspector's winner map is the one of the shown result."""
    insp, c = window.inspector, window.controller
    qtbot.waitUntil(lambda: insp.winners is not None and insp.winners.result is c.session.shown, timeout=WAIT_MS)


def view_point(window, x: int, y: int):
    """Image pixel (x, y) → its centre in canvas viewport coordinates."""
    return window.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))


def won_pixel(window, index: int) -> tuple[int, int]:
    ys, xs = np.nonzero(window.inspector.winners.winner == index)
    k = len(ys) // 2
    return int(xs[k]), int(ys[k])


def test_winner_layer_follows_the_include_ticks(qtbot, window) -> None:
    c, insp, overlays = window.controller, window.inspector, window.canvas.overlays
    s = c.session
    n = s.shown.num_proposals
    assert n >= 2
    expected = compute_winners(s.shown)
    np.testing.assert_array_equal(insp.winners.winner, expected.winner)
    assert overlays.winner.image.width() == 160 and overlays.winner.image.height() == 120
    assert not overlays.winner.isVisible()  # off until asked for
    QTest.keyClick(window, Qt.Key.Key_W)
    assert overlays.winner.isVisible() and window.layers.checks["winner"].isChecked()
    # the picture is the winner map: a pixel won by proposal k has k's colour, the 0 floor is transparent
    from deconv_gui.core.winners import winner_colours

    top = int(np.argmax(expected.won))
    x, y = won_pixel(window, top)
    colour = overlays.winner.image.pixelColor(x, y)
    assert (colour.red(), colour.green(), colour.blue()) == tuple(int(v) for v in winner_colours(n)[top])
    none = np.argwhere(expected.winner == WINNER_NONE)
    if len(none):
        assert overlays.winner.image.pixelColor(int(none[0][1]), int(none[0][0])).alpha() == 0
    # the "won" column counts them
    from deconv_gui.ui.proposals_panel import WON_COLUMN

    model = window.proposals.model
    assert [model.index(i, WON_COLUMN).data() for i in range(n)] == [str(v) for v in expected.won]
    # untick the proposal that won most: recombined, and the new winner map gives it nothing
    with qtbot.waitSignal(insp.winners_ready, timeout=WAIT_MS):
        window.proposals.set_include(top, False)
    assert insp.winners.result is s.shown and not s.shown.include[top]
    assert insp.winners.won[top] == 0 and not (insp.winners.winner == top).any()
    assert model.index(top, WON_COLUMN).data() == "0"
    QTest.keyClick(window, Qt.Key.Key_W)
    assert not overlays.winner.isVisible()


def test_hover_explains_the_pixel(qtbot, window) -> None:
    insp, s = window.inspector, window.controller.session
    top = int(np.argmax(insp.winners.won))
    x, y = won_pixel(window, top)
    QTest.mouseMove(window.canvas.viewport(), view_point(window, x, y))
    assert not insp.hud.isVisible()  # only when asked for (I)
    QTest.keyClick(window, Qt.Key.Key_I)
    assert window.actions_["explain"].isChecked()
    QTest.mouseMove(window.canvas.viewport(), view_point(window, x, y + 1))
    QTest.mouseMove(window.canvas.viewport(), view_point(window, x, y))
    qtbot.waitUntil(lambda: insp.hud.isVisible() and insp.last_explanation is not None
                    and (insp.last_explanation.x, insp.last_explanation.y) == (x, y), timeout=5000)
    e = insp.last_explanation
    assert e == explain_pixel(s.shown, x, y)
    assert e.winner == top and e.classes[0].class_id == s.shown.label[y, x]
    assert len(e.classes[0].contributions) <= 3 and e.classes[0].contributions[0].source == top
    text = insp.hud.text()
    assert "won by <b>" in text and f"#{top + 1}" in text and s.shown.class_names[e.label] in text
    area, box = window.canvas.viewport().rect(), insp.hud.geometry()
    assert box.left() >= 0 and box.top() >= 0  # kept inside the canvas (as far as it fits)
    assert box.right() <= area.right() or box.width() > area.width()
    assert box.bottom() <= area.bottom() or box.height() > area.height()
    window.canvas.leaveEvent(None)
    assert not insp.hud.isVisible()
    QTest.keyClick(window, Qt.Key.Key_I)
    QTest.mouseMove(window.canvas.viewport(), view_point(window, x + 1, y))
    qtbot.wait(60)
    assert not insp.hud.isVisible()


def test_ctrl_click_selects_the_winner_without_painting_or_drawing(qtbot, window) -> None:
    c, insp = window.controller, window.inspector
    s = c.session
    won = insp.winners.won
    ranked = [int(i) for i in np.argsort(-won) if won[i] > 0]
    assert ranked, "some proposal must win pixels"
    vp = window.canvas.viewport()
    for tool in ("pan", "brush", "fill"):
        window.annotator.set_tool(tool)
        for k in ranked[:2]:
            x, y = won_pixel(window, k)
            QTest.mouseClick(vp, LEFT, CTRL, view_point(window, x, y))
            assert s.selected == k, tool
            assert window.proposals.current_row() == k and window.canvas.overlays.boxes.selected == k
    assert s.annotation is None or not s.annotation.has_edits  # the brush and the fill did nothing
    # box mode: a Ctrl-drag neither draws a box nor adds a proposal
    window.annotator.set_tool("pan")
    QTest.keyClick(window, Qt.Key.Key_B)
    assert window.canvas.draw_mode
    drawn = []
    window.canvas.box_drawn.connect(drawn.append)
    x, y = won_pixel(window, ranked[0])
    QTest.mousePress(vp, LEFT, CTRL, view_point(window, 2, 2))
    QTest.mouseMove(vp, view_point(window, 60, 60))
    QTest.mouseRelease(vp, LEFT, CTRL, view_point(window, 60, 60))
    assert drawn == [] and s.raw.num_proposals == s.shown.num_proposals
    QTest.keyClick(window, Qt.Key.Key_Escape)
    # a pixel nothing won says so and keeps the selection
    none = np.argwhere(insp.winners.winner < 0)
    if len(none):
        before = s.selected
        with qtbot.waitSignal(insp.message, timeout=5000) as blocker:
            QTest.mouseClick(vp, LEFT, CTRL, view_point(window, int(none[0][1]), int(none[0][0])))
        assert "won by" in blocker.args[0] and s.selected == before


def test_table_sorts_and_filters_through_the_proxy(qtbot, window) -> None:
    from deconv_gui.ui.proposals_panel import CLASS_COLUMN, WON_COLUMN

    c, panel = window.controller, window.proposals
    s = c.session
    n = s.shown.num_proposals
    table, proxy, won = panel.table, panel.proxy, window.inspector.winners.won
    # click the "won" header: sorted by pixels won (ascending, then descending on a second click)
    header = table.horizontalHeader()
    QTest.mouseClick(header.viewport(), LEFT, NO_MOD, header.rect().topLeft() + _section_centre(header, WON_COLUMN))
    order = [panel._to_source(proxy.index(r, 0)) for r in range(proxy.rowCount())]
    if header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder:
        order = order[::-1]
    assert [won[i] for i in order] == sorted(won.tolist()) and sorted(order) == list(range(n))
    # the top view row is another proposal than row 0: selecting it and ticking it go to that proposal
    top_view = panel._to_source(proxy.index(0, 0))
    table.selectRow(0)
    assert s.selected == top_view
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        proxy.setData(proxy.index(0, 0), Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    assert not s.user_include[top_view] and s.user_include.sum() == n - 1
    wait_winners(qtbot, window)
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        panel.set_include(top_view, True)
    wait_winners(qtbot, window)
    won = window.inspector.winners.won
    # filters: "wins px" keeps the proposals that won pixels; a class keeps its proposals; a minimum score
    bar = panel.filters
    bar.contributing.setChecked(True)
    listed = sorted(panel._to_source(proxy.index(r, 0)) for r in range(proxy.rowCount()))
    assert listed == [i for i in range(n) if won[i] > 0]
    bar.contributing.setChecked(False)
    assert proxy.rowCount() == n
    cls = s.summaries[0].class_id
    assert bar.classes.count() == len(s.shown.class_names) + 1
    bar.classes.setCurrentIndex(bar.classes.findData(cls))
    assert proxy.rowCount() == sum(r.class_id == cls for r in s.summaries) >= 1
    assert all(proxy.index(r, CLASS_COLUMN).data() == s.shown.class_names[cls] for r in range(proxy.rowCount()))
    absent = next(k for k in range(len(s.shown.class_names)) if all(r.class_id != k for r in s.summaries))
    bar.classes.setCurrentIndex(bar.classes.findData(absent))
    assert proxy.rowCount() == 0 and bar.count.text() == f"0/{n}"
    bar.classes.setCurrentIndex(0)
    scores = sorted(r.score for r in s.summaries)
    bar.min_score.setValue(round(scores[len(scores) // 2] + 0.005, 2))
    assert proxy.rowCount() == sum(r.score >= bar.min_score.value() for r in s.summaries) < n
    assert bar.count.text() == f"{proxy.rowCount()}/{n}"
    # a proposal the filter hides can still be Ctrl-clicked: selected, and the status says the row is hidden
    hidden = [i for i in range(n) if not panel.is_listed(i) and won[i] > 0]
    if hidden:
        x, y = won_pixel(window, hidden[0])
        with qtbot.waitSignal(window.inspector.message, timeout=5000) as blocker:
            QTest.mouseClick(window.canvas.viewport(), LEFT, CTRL, view_point(window, x, y))
        assert s.selected == hidden[0] and "filter hides" in blocker.args[0]
    bar.min_score.setValue(0.0)
    assert proxy.rowCount() == n and bar.count.text() == ""


def _section_centre(header, section: int):
    from PySide6.QtCore import QPoint

    return QPoint(header.sectionViewportPosition(section) + header.sectionSize(section) // 2, header.height() // 2)
