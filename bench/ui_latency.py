"""How responsive the real window stays while a segmentation runs: gaps between 5 ms GUI-thread timer ticks.

Run from the repository root (no display needed)::

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/ui_latency.py [--proposals 4] [--skip-full]
    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/ui_latency.py --cancel-only --cancel-repeats 10 --proposals 50

It opens the real :class:`~deconv_gui.ui.main_window.MainWindow` offscreen on a 480×360 synthetic scene and
segments it with (a) the bundled demo model ``resources/weights/demo_synthetic.pt`` (or, when it is missing,
a random-init DeconvNet at width 0.0625) and (b) the full-width DeconvNet (random init,
``build_model("deconvnet", num_classes=21, width=1.0)``), each with ``--proposals`` Edge Box proposals. While the
run is in flight a 5 ms QTimer on the GUI thread records its ticks; the table gives the run time, the number of
ticks and the longest and 99th-percentile gap between ticks (5 ms = perfectly smooth; the target is < 50 ms).
A second row per model measures a recombine (toggle one proposal) the same way, and a last line per model the
time from Cancel (pressed 50 ms after the first chunk of crops; with ``--cancel-repeats N``, N runs cancelled at
moments spread evenly over the next chunk's forward pass, so each layer is in flight in its share of them) until
the run has reported back as cancelled on the GUI thread: median, 90th percentile and max. ``--no-slicing`` measures the old way, where only the start of each layer checks
the token and fc6 / fc6-deconv run to their end. torch runs on all cores but one,
as in the app. Timings are wall-clock on a shared machine: rows can differ by ±30 % between runs.

Last, the time per brush-stroke update on a 4000×3000 photo (``--stroke-only`` runs just that): the window shows a
4000×3000 image with a label-map overlay, the brush (radius 20 image px) is dragged by simulated mouse moves of
12 screen pixels, and each update is timed from the mouse event until the canvas has repainted (the tool call,
the edits overlay's dirty rectangle, the viewport repaint), at the fitted zoom and at 1:1. Target: ≤ 16 ms.

``--inspector`` instead prints the inspector's answer times next to their targets (re-combinations, CRF, a drawn
box, next image, window visible and first label map after ``python main.py``; see ``bench/inspector_timings.py``)::

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/ui_latency.py --inspector --images ../shared/data/camvid/val
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _tiny_checkpoint(folder: Path) -> Path:
    import torch

    from deconv_gui.core.synthetic import SYNTHETIC_CLASSES, synthetic_palette
    from deconv_gui.io.checkpoints import ModelMeta, save_checkpoint
    from deconv_gui.models.registry import build_model

    torch.manual_seed(0)
    n = len(SYNTHETIC_CLASSES)
    meta = ModelMeta("deconvnet", 0.0625, n, list(SYNTHETIC_CLASSES), synthetic_palette()[:n].tolist())
    path = folder / "tiny_deconvnet.pt"
    save_checkpoint(path, build_model("deconvnet", num_classes=n, width=0.0625).state_dict(), meta)
    return path


def _full_runner():
    from deconv_gui.core.palette import VOC_CLASSES, voc_palette
    from deconv_gui.document.jobs import APP_CPU_CHUNK
    from deconv_gui.inference.runner import ModelRunner, RunnerOptions
    from deconv_gui.io.checkpoints import ModelMeta
    from deconv_gui.models.registry import build_model

    meta = ModelMeta("deconvnet", 1.0, 21, list(VOC_CLASSES), voc_palette(21).tolist())
    runner = ModelRunner(build_model("deconvnet", num_classes=21, width=1.0), meta, RunnerOptions())
    if runner.device.type == "cpu":
        runner.chunk_size = APP_CPU_CHUNK
    return runner


def _measure(app, controller, start) -> tuple[float, np.ndarray]:
    """Call ``start()``, tick every 5 ms while the worker is busy; (seconds, gaps in ms)."""
    from PySide6.QtCore import QEventLoop, QTimer

    ticks: list[float] = []
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    done = []
    controller.result_shown.connect(lambda *_: done.append(1) or loop.quit())
    controller.error.connect(lambda msg: (print("error:", msg), loop.quit()))
    t0 = time.perf_counter()
    timer.start()
    start()
    loop.exec()
    timer.stop()
    seconds = time.perf_counter() - t0
    controller.result_shown.disconnect()
    controller.error.disconnect()
    return seconds, np.diff(np.asarray([t0, *ticks])) * 1000.0


def _cancel_latency(controller, phase: float | None = None) -> float:
    """Start a run and cancel it once the first chunk of crops is done: 50 ms later, or, with ``phase`` in
    [0, 1), that fraction of the first chunk's duration later (so that a given layer of the next chunk is in
    flight). Returns the seconds from Cancel until the run reports cancelled (nan when it finished first)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    when: list[float] = []
    began: list[float] = []

    def on_progress(done: int, _total: int, stage: str) -> None:
        if stage == "crops" and done == 0 and not began:
            began.append(time.perf_counter())
        if stage == "crops" and done > 0 and not when:
            chunk_ms = (time.perf_counter() - began[0]) * 1000 if began else 0.0
            delay = 50 if phase is None else int(phase * chunk_ms)
            QTimer.singleShot(delay, lambda: (when.append(time.perf_counter()), controller.cancel()))

    controller.progress.connect(on_progress)
    controller.run_cancelled.connect(loop.quit)
    controller.result_shown.connect(loop.quit)  # finished before the cancel: reported as nan
    controller.segment()
    loop.exec()
    controller.progress.disconnect(on_progress)
    return time.perf_counter() - when[0] if when and controller.session.shown is None else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposals", type=int, default=4)
    parser.add_argument("--skip-full", action="store_true", help="only the small model")
    parser.add_argument("--stroke-only", action="store_true", help="only the brush-stroke timing on 4000x3000")
    parser.add_argument("--cancel-repeats", type=int, default=1, metavar="N",
                        help="cancel N runs per model, at staggered moments mid-run; report median and max")
    parser.add_argument("--cancel-only", action="store_true", help="only the cancel latency (no segment rows)")
    parser.add_argument("--no-slicing", action="store_true",
                        help="do not slice the huge fc layers (cancel checked only before each layer: the old way)")
    parser.add_argument("--check-gaps", type=int, default=0, metavar="N",
                        help="only: the longest stretch between two cancel checks in N forward passes of one app "
                             "chunk through the full DeconvNet, huge layers sliced and whole (no window)")
    parser.add_argument("--inspector", action="store_true",
                        help="only: the inspector's answer times (CamVid EDeconvNet, 50 proposals) next to targets")
    parser.add_argument("--images", help="--inspector: a folder of images (default: synthetic 480×360 scenes)")
    parser.add_argument("--count", type=int, default=6, help="--inspector: images to step through")
    parser.add_argument("--repeats", type=int, default=5, help="--inspector: times each action is measured")
    parser.add_argument("--launches", type=int, default=3, help="--inspector: fresh `python main.py` starts timed")
    args = parser.parse_args(argv)
    if args.inspector:
        from inspector_timings import main as inspector_main

        first = None
        if args.images:
            first = str(sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".png", ".jpg"))[0])
        return inspector_main(args.images, max(args.count, args.repeats + 1), args.repeats, args.launches, first)
    if args.stroke_only:
        return _print_stroke_latency()
    if args.check_gaps:
        return _print_check_gaps(args.check_gaps)
    if args.no_slicing:
        from deconv_gui.inference import cancellable

        cancellable.SLICE_WEIGHTS = 1 << 62

    import torch
    from PIL import Image
    from PySide6.QtWidgets import QApplication

    from deconv_gui.cli import DEMO_WEIGHTS
    from deconv_gui.core.synthetic import make_scene
    from deconv_gui.document.preferences import Preferences
    from deconv_gui.ui.main_window import MainWindow

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="ui_latency_"))
    os.environ["DECONV_GUI_CONFIG_DIR"] = str(tmp)
    from PySide6.QtCore import QSettings

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp))  # leave the user's alone
    scene = tmp / "scene.png"
    Image.fromarray(make_scene(2026, height=360, width=480).image).save(scene)
    small = (DEMO_WEIGHTS, "bundled demo") if DEMO_WEIGHTS.exists() else (_tiny_checkpoint(tmp), "tiny ×0.0625")
    models = [small] + ([] if args.skip_full else [(None, "full DeconvNet ×1.0")])
    rows = []
    cancels: list[tuple[str, list[float]]] = []
    for weights, name in models:
        window = MainWindow(Preferences(num_proposals=args.proposals))
        window.show()
        c = window.controller
        if args.cancel_only:  # open the image before a model is there: nothing segments it yet
            _open_without_segmenting(app, c, scene)
        if weights is None:
            c.engine.set_runner(_full_runner(), tmp / "full_random_init")
            c.model_changed.emit(c.engine.describe())
        else:
            from PySide6.QtCore import QEventLoop

            loaded = QEventLoop()
            c.model_changed.connect(loaded.quit)
            c.load_weights(weights)
            loaded.exec()
        if not args.cancel_only:
            seconds, gaps = _measure(app, c, lambda c=c: c.open_paths([scene]))
            rows.append((name, "segment", seconds, gaps, c.session.shown.num_proposals, c.engine.describe()))
            seconds, gaps = _measure(app, c, lambda c=c: c.set_included(0, False))
            rows.append((name, "recombine", seconds, gaps, c.session.shown.num_proposals, ""))
        latencies = []
        for k in range(args.cancel_repeats):
            c.session.raw = c.session.shown = None
            phase = None if args.cancel_repeats == 1 else (k + 0.5) / args.cancel_repeats  # spread over a chunk
            latencies.append(_cancel_latency(c, phase))
        cancels.append((name, latencies))
        device = c.engine.describe()
        window.close()
    if rows:
        print(f"{'model':22} {'work':10} {'props':>5} {'run_s':>7} {'ticks':>6} {'max_gap_ms':>10} {'p99_gap_ms':>10}")
    for name, work, seconds, gaps, n, _device in rows:
        print(f"{name:22} {work:10} {n:5d} {seconds:7.2f} {len(gaps):6d} {gaps.max():10.1f} "
              f"{np.percentile(gaps, 99):10.1f}")
    for name, latencies in cancels:
        ms = np.asarray(latencies) * 1000
        done = ms[np.isfinite(ms)]
        summary = (f"median {np.median(done):.0f} ms, p90 {np.percentile(done, 90):.0f} ms, max {done.max():.0f} ms "
                   f"over {len(done)} cancels"
                   if len(done) else "no run was still going when Cancel came")
        print(f"cancel latency, {name}: {summary} (Cancel pressed mid-run until the run reported back; "
              f"{'huge layers whole' if args.no_slicing else 'huge layers sliced'})")
    print(f"device: {device}; {args.proposals} proposals; 480x360 synthetic scene; 5 ms QTimer on the GUI thread; "
          f"cpu_count={os.cpu_count()}")
    return 0 if args.cancel_only else _print_stroke_latency()


def _print_check_gaps(passes: int) -> int:
    """Time every cancel check during ``passes`` forwards of one app chunk (full DeconvNet, the app's
    precision and threads); print the longest stretch without a check: the worst Cancel can wait for the
    network, free of the GUI thread's and the OS scheduler's share."""
    import torch

    from deconv_gui.core.cancel import CancelToken
    from deconv_gui.document.jobs import APP_CPU_CHUNK
    from deconv_gui.inference import cancellable as sliced

    class TimingToken(CancelToken):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def raise_if_cancelled(self) -> None:
            self.times.append(time.perf_counter())
            super().raise_if_cancelled()

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    runner = _full_runner()
    crops = np.random.default_rng(0).integers(0, 255, (APP_CPU_CHUNK, 224, 224, 3), dtype=np.uint8)
    runner.forward_crops(crops)  # warm-up
    for label, limit in (("huge layers whole", 1 << 62), ("huge layers sliced", sliced.SLICE_WEIGHTS)):
        sliced.SLICE_WEIGHTS, gaps, totals = limit, [], []
        for _ in range(passes):
            token = TimingToken()
            t0 = time.perf_counter()
            with sliced.cancellable([runner.model], token):
                runner.forward_crops(crops)
            totals.append(time.perf_counter() - t0)
            gaps.append(max(np.diff([t0, *token.times, time.perf_counter()])) * 1000)
        print(f"{label}: longest stretch without a cancel check {np.median(gaps):.0f} ms (median of {passes} "
              f"passes; max {max(gaps):.0f} ms); one chunk of {APP_CPU_CHUNK} crops {np.median(totals):.2f} s; "
              f"{runner.describe_device()}, "
              f"{torch.get_num_threads()} thread(s)")
    return 0


def _open_without_segmenting(app, controller, scene: Path) -> None:
    """Show ``scene`` in ``controller`` (no model loaded yet, so nothing runs); wait until it is there."""
    controller.open_paths([scene])
    deadline = time.monotonic() + 60
    while controller.session is None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


def stroke_latency(zoom: str, moves: int = 150, hw: tuple[int, int] = (3000, 4000)) -> np.ndarray:
    """Milliseconds per brush-stroke update (mouse move → repainted canvas) on an ``hw`` image at ``zoom``
    (``"fit"`` or ``"1:1"``)."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from deconv_gui.core.palette import voc_palette
    from deconv_gui.document.preferences import Preferences
    from deconv_gui.document.session import ImageSession
    from deconv_gui.ui.main_window import MainWindow
    from deconv_gui.ui.qimage import to_qimage

    app = QApplication.instance() or QApplication([])
    if "DECONV_GUI_CONFIG_DIR" not in os.environ:  # leave the user's preferences and window settings alone
        from PySide6.QtCore import QSettings

        cfg = tempfile.mkdtemp(prefix="ui_latency_")
        os.environ["DECONV_GUI_CONFIG_DIR"] = cfg
        QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, cfg)
    h, w = hw
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    window = MainWindow(Preferences())
    window.resize(1500, 920)
    window.show()
    c = window.controller
    window.annotator.set_autosave_folder(Path(tempfile.mkdtemp(prefix="stroke_bench_")))  # fresh, no old edits
    from deconv_gui.ui.pictures import Pictures

    c.pictures[Path("stroke_bench.png")] = Pictures(to_qimage(image))
    c._activate(ImageSession(Path("stroke_bench.png"), image))
    label = (np.arange(w)[None, :] // 400 + np.arange(h)[:, None] // 300) % 6  # a label map overlay to draw too
    window.canvas.overlays.label.set_image(to_qimage(voc_palette(6)[label]))
    app.processEvents()
    window.canvas.fit()
    if zoom == "1:1":
        window.canvas.actual_size()
        window.canvas.centerOn(w / 2, h / 2)
    app.processEvents()
    window.annotator.set_tool("brush")
    window.annotator.set_radius(20)
    vp = window.canvas.viewport()
    paints = _PaintCounter(vp)
    updates: list = []
    window.annotator.painted.connect(updates.append)
    start = QPoint(vp.width() // 4, vp.height() // 3)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    app.processEvents()
    times = []
    for k in range(1, moves + 1):
        step = (k % 40) if (k // 40) % 2 == 0 else 40 - k % 40  # a serpentine: every move paints new pixels
        p = start + QPoint(12 * step, 45 * (k // 40) + (45 * (k % 40)) // 40)
        app.processEvents()  # nothing pending: the paint awaited below is this move's
        before, updates_before = paints.count, len(updates)
        t0 = time.perf_counter()
        QTest.mouseMove(vp, p)
        while paints.count == before:  # until the viewport has repainted the stroke's dirty region
            app.processEvents()
        times.append(time.perf_counter() - t0)
        assert len(updates) > updates_before, f"move {k} to {p} did not reach the brush"
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
    edited = int(window.controller.session.annotation.edited.sum())
    window.close()
    assert edited > 0, "the stroke painted nothing"
    return np.asarray(times) * 1000.0


class _PaintCounter:
    """Counts the paint events a widget receives (an event filter)."""

    def __init__(self, widget) -> None:
        from PySide6.QtCore import QEvent, QObject

        counter = self

        class Filter(QObject):
            def eventFilter(self, _obj, event) -> bool:  # noqa: N802 - Qt API
                if event.type() == QEvent.Type.Paint:
                    counter.count += 1
                return False

        self.count = 0
        self._filter = Filter()
        widget.installEventFilter(self._filter)


def _print_stroke_latency() -> int:
    for zoom in ("fit", "1:1"):
        ms = stroke_latency(zoom)
        print(f"brush stroke update, 4000x3000, radius 20, zoom {zoom}: mean {ms.mean():.1f} ms, "
              f"p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms over {len(ms)} updates (target <= 16 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
