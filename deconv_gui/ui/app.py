"""Start the desktop app: ``run_app(["IMAGE_OR_FOLDER", "--weights", "CKPT", "--partner", "CKPT"])``.

With no path it opens the bundled demo scene with the bundled demo model; an image opened without ``--weights``
gets the best bundled pair (CamVid EDeconvNet: DeconvNet + its FCN-8s partner). Without a display on Linux it prints
one line saying how to run it and returns 2. ``DECONV_GUI_SCREENSHOT=out.png`` saves the window once the first
result is shown (with the best proposal that has a mask selected, so every layer shows), then quits — the
README screenshot::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python main.py [IMAGE] [--weights CKPT]  # + the env var

``DECONV_GUI_SCREENSHOT_INSPECT=X,Y`` (image pixels) makes it the inspector's screenshot instead: the winner
layer on, the explanation of pixel (X, Y) beside it and that pixel's winner selected (as a Ctrl-click does).
``DECONV_GUI_TIMING_LOG=FILE`` appends ``window_visible <epoch s>`` once the window is on screen and
``first_map <epoch s>`` once the first label map is shown (``bench/ui_latency.py --launch`` reads them).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from deconv_gui.core.vocabulary import DEVICES

log = logging.getLogger(__name__)

NO_DISPLAY = ("deconv_gui needs a display: run it in a desktop session, or set QT_QPA_PLATFORM=offscreen "
              "(scripted use) or wrap it in xvfb-run")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deconv-gui-app", description="DeconvNet segmentation inspector")
    p.add_argument("path", nargs="?", help="an image or a folder of images (default: the bundled demo scene)")
    p.add_argument("--weights", help="checkpoint to load (default: the bundled demo model)")
    p.add_argument("--partner", help="ensemble partner checkpoint (e.g. FCN-8s)")
    p.add_argument("--device", choices=DEVICES, help="where the networks run")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def has_display() -> bool:
    """False on Linux when neither X11/Wayland nor an explicit Qt platform is set."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def install_excepthook(window: object) -> None:
    """Unexpected exceptions on the GUI thread → a dialog with the traceback; the window and its work stay."""

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        text = "".join(traceback.format_exception(kind, exc, tb))
        log.error("unexpected error\n%s", text)
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        try:
            window.show_traceback(f"{kind.__name__}: {exc}", text)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - never let the hook itself crash the app
            sys.__excepthook__(kind, exc, tb)

    sys.excepthook = hook


def run_app(argv: list[str]) -> int:
    """Parse ``argv``, open the window, run the event loop; the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not has_display():
        print(NO_DISPLAY)
        return 2
    from PySide6.QtWidgets import QApplication

    from deconv_gui.cli import ensure_demo_scene
    from deconv_gui.document.models import default_preset
    from deconv_gui.document.preferences import read_preferences
    from deconv_gui.ui.main_window import MainWindow

    _leave_a_core_for_the_gui()
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setApplicationName("deconv_gui")
    app.setOrganizationName("deconv_gui")
    app.setStyle("Fusion")  # the palette follows the system's light/dark scheme
    prefs, problems = read_preferences()
    for problem in problems:
        logging.getLogger("deconv_gui").warning("%s", problem)
    if args.device:
        prefs.device = args.device
    window = MainWindow(prefs)
    install_excepthook(window)
    c = window.controller
    weights = Path(args.weights) if args.weights else None
    preset = default_preset(demo=args.path is None) if weights is None else None
    if weights is not None:
        c.load_weights(weights)
    elif preset is not None and not args.partner:
        c.load_preset(preset)  # the best bundled pair (the demo model for the demo scene)
    elif preset is not None:
        weights = preset.paths()[0]
        c.load_weights(weights)
    else:
        window.statusBar().showMessage("no bundled model: File → Load weights… (Ctrl+L)")
    if args.partner:
        c.load_partner(Path(args.partner))
    if problems:
        window.statusBar().showMessage(
            problems[0] if len(problems) == 1 else f"{len(problems)} preferences were invalid; see the log", 15000)
    c.open_paths([Path(args.path)] if args.path else [ensure_demo_scene()])
    shot = os.environ.get("DECONV_GUI_SCREENSHOT")
    if shot:
        _screenshot_when_ready(window, Path(shot), has_model=weights is not None or preset is not None)
    timing = os.environ.get("DECONV_GUI_TIMING_LOG")
    if timing:
        _log_launch_times(window, Path(timing))
    window.show()
    code = app.exec()
    return int(code)


def exit_now(code: int) -> NoReturn:
    """End the process right away once the event loop has returned (the window saved everything in its
    ``closeEvent``: preferences, geometry, autosaves; the worker threads are stopped).

    Python's own teardown after that — freeing thousands of torch/Qt/OpenCV module objects and joining torch's
    thread pools — kept the process alive 1.5–4 s after the window had gone on the loaded 2-core machine, so a
    user who quit and reopened found the old process still there. ``os._exit`` skips it.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe must not turn quitting into a traceback
            pass
    os._exit(int(code))


def _leave_a_core_for_the_gui() -> None:
    """Run torch on all cores but one: with every core busy, torch's thread pool and the GUI thread fight, and
    on the 2-core dev machine under load a forward pass measured ~10× slower on 2 threads than on 1."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))


def _log_launch_times(window: object, path: Path) -> None:
    """Append when the window became visible and when the first label map was shown to ``path`` (epoch s)."""
    import time

    from PySide6.QtCore import QTimer

    def mark(event: str) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(f"{event} {time.time():.4f}\n")

    QTimer.singleShot(0, lambda: mark("window_visible"))  # the first turn of the event loop: shown and painted
    c = window.controller  # type: ignore[attr-defined]
    first = [True]

    def shown(*_: object) -> None:
        if first:
            first.clear()
            mark("first_map")

    c.result_shown.connect(shown)


def _screenshot_when_ready(window: object, path: Path, *, has_model: bool) -> None:
    """Save ``window.grab()`` to ``path`` once the first result is on screen (or the image, without a model)."""
    from PySide6.QtCore import QTimer

    def save() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(path))  # type: ignore[attr-defined]
        print(f"screenshot saved to {path}")
        window.close()  # type: ignore[attr-defined]

    pending = [True]

    def later(*_: object) -> None:
        if pending:
            pending.clear()
            session = c.session
            inspect = os.environ.get("DECONV_GUI_SCREENSHOT_INSPECT")
            if session is not None and inspect:
                x, y = (int(v) for v in inspect.split(","))
                window.inspector.show_inspection(x, y)  # type: ignore[attr-defined]
            elif session is not None:  # show every layer: select the best proposal that has a mask
                c.select(next((i for i, row in enumerate(session.summaries) if row.area), None))
            QTimer.singleShot(800, save)  # let layouts and the status bar settle

    c = window.controller  # type: ignore[attr-defined]
    (c.result_shown if has_model else c.image_opened).connect(later)
    c.error.connect(later)
