"""The controller's look-ahead: while the user looks, the CRF of what is shown and the next image are computed
as quiet jobs that any request cancels; D and the CRF switch then answer from the cache."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from deconv_gui.core.cancel import Cancelled
from deconv_gui.ui.controller_ahead import AHEAD_LANE
from tests.ui.test_main_window import WAIT_MS, make_window

pytestmark = pytest.mark.usefixtures("isolated_config")


def test_crf_and_next_image_are_ready_before_they_are_asked_for(qtbot, disc_ckpt, scene_folder):
    window = make_window(qtbot, disc_ckpt)
    c = window.controller
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        c.open_paths([scene_folder])
    first, second = c.folder.files[0], c.folder.files[1]
    qtbot.waitUntil(lambda: second in c._sessions and c._sessions[second].shown is not None, timeout=WAIT_MS)
    assert not c.tasks.busy and c.session.path == first
    assert c.folder.state(second) == "segmented"
    # the CRF was refined ahead for what is shown: switching it on only draws
    key = c._refined_for
    assert key is not None and key[0] == first
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        window.controls.crf.setChecked(True)
    assert c.session.shown.timings["crf"] < 0.05
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        window.controls.crf.setChecked(False)
    # D shows the prefetched image at once: result_shown is emitted inside the key press
    shown: list[object] = []
    c.result_shown.connect(shown.append)
    QTest.keyClick(window, Qt.Key.Key_D)
    assert shown and c.session.path == second and c.session.shown is not None
    window.close()


def test_a_request_cancels_the_look_ahead_and_is_answered_first(qtbot, disc_ckpt, scene_folder):
    window = make_window(qtbot, disc_ckpt)
    c = window.controller
    c.look_ahead = False
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        c.open_paths([scene_folder])
    started, cancelled = [], []

    def slow(progress, cancel):  # a look-ahead job that only stops when cancelled
        started.append(1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                cancel.raise_if_cancelled()
            except Cancelled:
                cancelled.append(1)
                raise
            time.sleep(0.005)

    busy: list[bool] = []
    c.busy_changed.connect(busy.append)
    c._submit(AHEAD_LANE, slow, lambda _: None, quiet=True)
    qtbot.waitUntil(lambda: bool(started), timeout=WAIT_MS)
    assert not c.tasks.busy and busy == []  # quiet work shows no busy state
    t0 = time.monotonic()
    with qtbot.waitSignal(c.result_shown, timeout=WAIT_MS):
        c.set_included(0, False)
    assert cancelled and time.monotonic() - t0 < 30
    qtbot.waitUntil(lambda: not c.tasks.lane_busy(AHEAD_LANE), timeout=WAIT_MS)
    window.close()


def test_a_model_with_tuned_crf_settings_brings_them_unless_the_user_chose_others(qtbot, disc_ckpt, tmp_path):
    from deconv_gui.inference.tuning import crf_record, store_choice
    from deconv_gui.postprocess.crf import CRFParams

    tuned_path = tmp_path / "tuned.pt"
    tuned_path.write_bytes(disc_ckpt.read_bytes())
    tuned = CRFParams(bilateral_sxy=80.0, bilateral_srgb=10.0, iterations=5, normalization="symmetric")
    store_choice(tuned_path, "crf", crf_record(tuned, "val", 0.5, 0.02))
    window = make_window(qtbot, tuned_path)
    c = window.controller
    assert c.choices.crf_params == tuned
    with qtbot.waitSignal(c.model_changed, timeout=WAIT_MS):
        c.load_weights(disc_ckpt)  # no tuned settings: back to the default
    assert c.choices.crf_params == CRFParams()
    mine = CRFParams(iterations=3)
    c.set_choices(crf_params=mine)
    with qtbot.waitSignal(c.model_changed, timeout=WAIT_MS):
        c.load_weights(tuned_path)
    assert c.choices.crf_params == mine  # the user's own choice wins
    window.close()
