"""The inspector's answer times in the real window, next to the issue's targets (``bench/ui_latency.py --inspector``).

Each figure is wall-clock from the user's action (the controller call a click or key makes) until the window has
shown the new label map (``Controller.result_shown``), on the GUI thread's own event loop:

- *re-combinations* (untick a proposal, top-N, aggregation, ensemble rule): the cached per-proposal maps are
  re-aggregated, no network; target ≤ 100 ms.
- *CRF on*: the dense CRF on the recombined map; target ≤ 500 ms. Measured after the look-ahead has refined
  what is shown while the user looked (``ui/controller_ahead.py``), and *(cold)* with the look-ahead off (the
  CRF runs when asked, its kernels kept per image).
- *drawn box*: the network on that one crop, appended and recombined; target ≤ 300 ms (compact model).
- *next image*: D in a folder; target ≤ 2 s. After the look-ahead has segmented it, and *(cold)* without: read,
  proposals, crops, base pass, partner, recombine when asked.
- *window visible* / *first label map* after ``python main.py`` (a fresh process each time; the app writes the
  moments to ``DECONV_GUI_TIMING_LOG``); targets ≤ 2 s / ≤ 4 s.

Images: ``--images FOLDER`` (e.g. ``../shared/data/camvid/val``; the first ``--count`` files), else synthetic
480×360 scenes. Model: the bundled *CamVid EDeconvNet* pair (DeconvNet + FCN-8s partner) with 50 proposals, as
the issue measured. torch runs on all cores but one, as in the app.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGETS_MS = {"untick a proposal": 100, "top-N 7": 100, "aggregation sum": 100, "ensemble product": 100,
              "CRF on": 500, "CRF on (cold)": 500, "drawn box": 300, "next image": 2000, "next image (cold)": 2000,
              "window visible": 2000, "first label map": 4000}


def _wait_shown(app, controller, start: Callable[[], object], timeout_s: float = 120.0) -> float:
    """Call ``start()``; seconds until ``result_shown`` (nan on an error or a timeout)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    outcome: list[str] = []
    on_shown = lambda *_: (outcome.append("shown"), loop.quit())  # noqa: E731
    on_error = lambda message: (outcome.append(f"error: {message}"), loop.quit())  # noqa: E731
    controller.result_shown.connect(on_shown)
    controller.error.connect(on_error)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    t0 = time.perf_counter()
    start()
    if not outcome:  # a cached answer is shown inside start()
        loop.exec()
    seconds = time.perf_counter() - t0
    controller.result_shown.disconnect(on_shown)
    controller.error.disconnect(on_error)
    if outcome != ["shown"]:
        print(f"  ({outcome[0] if outcome else 'timed out'})")
        return float("nan")
    return seconds


def _settle(app, seconds: float = 0.3) -> None:
    """Let the worker's follow-ups (the winner map, the table) finish so they do not count in the next figure."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.01)


def _idle(app, controller, timeout_s: float = 60.0) -> None:
    """Wait until the look-ahead has nothing left to do (the user looked long enough)."""
    from deconv_gui.ui.controller_ahead import AHEAD_LANE

    deadline = time.perf_counter() + timeout_s
    _settle(app, 0.1)
    while ((controller._idle_timer.isActive() or controller.tasks.lane_busy(AHEAD_LANE))
           and time.perf_counter() < deadline):
        _settle(app, 0.05)


def _images(folder: str | None, count: int, tmp: Path) -> tuple[list[Path], str]:
    if folder:
        files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:count]
        if len(files) < 2:
            raise SystemExit(f"{folder}: need at least 2 images")
        return files, f"{len(files)} images of {folder}"
    from PIL import Image

    from deconv_gui.core.synthetic import make_scene

    files = []
    for k in range(count):
        path = tmp / f"scene_{k}.png"
        Image.fromarray(make_scene(3000 + k, height=360, width=480).image).save(path)
        files.append(path)
    return files, f"{count} synthetic 480×360 scenes"


def in_window_timings(folder: str | None, count: int, repeats: int) -> tuple[dict[str, list[float]], str]:
    """Median-able seconds per action (``repeats`` each) in one offscreen MainWindow; and a description."""
    import torch
    from PySide6.QtCore import QEventLoop, QSettings
    from PySide6.QtWidgets import QApplication

    from deconv_gui.document.models import default_preset
    from deconv_gui.document.preferences import Preferences
    from deconv_gui.ui.main_window import MainWindow

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="inspector_timings_"))
    os.environ["DECONV_GUI_CONFIG_DIR"] = str(tmp)
    os.environ["DECONV_GUI_OUTPUT_DIR"] = str(tmp / "out")
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp))
    files, what = _images(folder, count, tmp)
    window = MainWindow(Preferences(num_proposals=50))
    window.show()
    c = window.controller
    preset = default_preset(demo=False)
    if preset is None:
        raise SystemExit("no bundled CamVid pair in resources/weights")
    loaded = QEventLoop()
    c.models_described.connect(lambda *_: loaded.quit())
    c.load_preset(preset)
    loaded.exec()
    times: dict[str, list[float]] = {name: [] for name in TARGETS_MS if name not in ("window visible",
                                                                                      "first label map")}
    first = _wait_shown(app, c, lambda: c.open_paths(files))
    print(f"  first image: {first:.2f} s ({c.loaded_summary()})")
    for k in range(repeats):
        _settle(app)
        n = c.session.raw.num_proposals
        times["untick a proposal"].append(_wait_shown(app, c, lambda k=k, n=n: c.set_included(k % n, False)))
        _settle(app)
        times["top-N 7"].append(_wait_shown(app, c, lambda: c.set_choices(top_n=7)))
        _settle(app)
        _wait_shown(app, c, lambda: c.set_choices(top_n=None))
        _settle(app)
        times["aggregation sum"].append(_wait_shown(app, c, lambda: c.set_choices(aggregation="sum")))
        _settle(app)
        _wait_shown(app, c, lambda: c.set_choices(aggregation="max"))
        _settle(app)
        times["ensemble product"].append(_wait_shown(app, c, lambda: c.set_choices(ensemble="product")))
        _settle(app)
        _wait_shown(app, c, lambda: c.set_choices(ensemble="mean"))
        _settle(app)
        c.look_ahead = False
        c.session.combine_cache(c.session.raw)._refined = None  # nothing refined ahead
        times["CRF on (cold)"].append(_wait_shown(app, c, lambda: c.set_choices(crf=True)))
        _settle(app)
        _wait_shown(app, c, lambda: c.set_choices(crf=False))
        c.look_ahead = True
        c._look_ahead()
        _idle(app, c)
        times["CRF on"].append(_wait_shown(app, c, lambda: c.set_choices(crf=True)))
        _settle(app)
        _wait_shown(app, c, lambda: c.set_choices(crf=False))
        _settle(app)
        h, w = c.session.image.shape[:2]
        box = (w * 0.3 + 7 * k, h * 0.35, w * 0.55 + 7 * k, h * 0.75)
        times["drawn box"].append(_wait_shown(app, c, lambda box=box: c.add_box(box)))
        if k % 2:
            c.look_ahead = False
            _settle(app, 1.0)
            upcoming = c.folder.files[c.folder.index_of(c.session.path) + 1]
            c._sessions.pop(upcoming, None)  # not segmented ahead
            c.pictures.pop(upcoming, None)
            times["next image (cold)"].append(_wait_shown(app, c, c.next_image))
            c.look_ahead = True
        else:
            _idle(app, c)
            times["next image"].append(_wait_shown(app, c, c.next_image))
    summary = f"{what}; {c.loaded_summary()}; {c.engine.describe()}; torch threads {torch.get_num_threads()}"
    window.close()
    return times, summary


def launch_timings(repeats: int, image: str | None) -> dict[str, list[float]]:
    """Seconds from spawning ``python main.py [image]`` to the window being visible and to the first label map."""
    times: dict[str, list[float]] = {"window visible": [], "first label map": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="launch_") as tmp:
            log = Path(tmp) / "times.txt"
            env = {**os.environ, "DECONV_GUI_TIMING_LOG": str(log), "DECONV_GUI_CONFIG_DIR": tmp,
                   "DECONV_GUI_OUTPUT_DIR": str(Path(tmp) / "out")}
            t0 = time.time()
            proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *([image] if image else [])], cwd=ROOT,
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            marks: dict[str, float] = {}
            deadline = time.monotonic() + 120
            while "first_map" not in marks and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
                if log.exists():
                    marks = {k: float(v) for k, v in (line.split() for line in log.read_text().splitlines() if line)}
            proc.kill()
            proc.wait()
            times["window visible"].append(marks.get("window_visible", float("nan")) - t0)
            times["first label map"].append(marks.get("first_map", float("nan")) - t0)
    return times


def print_table(times: dict[str, list[float]]) -> None:
    print(f"{'action':20} {'median_ms':>9} {'max_ms':>7} {'target_ms':>9} {'n':>3}  ok")
    for name, target in TARGETS_MS.items():
        values = [v * 1000 for v in times.get(name, []) if np.isfinite(v)]
        if not values:
            continue
        median = statistics.median(values)
        print(f"{name:20} {median:9.0f} {max(values):7.0f} {target:9d} {len(values):3d}  "
              f"{'yes' if median <= target else 'NO'}")


def main(folder: str | None, count: int, repeats: int, launches: int, launch_image: str | None) -> int:
    times, summary = in_window_timings(folder, count, repeats)
    if launches:
        times.update(launch_timings(launches, None))
        if launch_image:
            camvid = launch_timings(launches, launch_image)
            print(f"  `python main.py {launch_image}` (CamVid EDeconvNet): window visible "
                  f"{statistics.median(camvid['window visible']):.2f} s, first label map "
                  f"{statistics.median(camvid['first label map']):.2f} s (median of {launches})")
    print_table(times)
    print(f"{summary}; cpu_count={os.cpu_count()}; launch = `python main.py` (demo scene + demo model)")
    return 0
