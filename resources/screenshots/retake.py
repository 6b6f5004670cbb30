"""Retake the README's screenshots of the real window (synthetic scenes only; never a dataset image).

Run from the repository root under a virtual X server (Qt's xcb platform, as a user sees it)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python resources/screenshots/retake.py [NAME ...]

NAME: main_window, inspector, annotation, training_panel (default: all). main_window and inspector launch
``main.py`` itself (the bundled demo scene with the demo model; ``DECONV_GUI_SCREENSHOT`` /
``DECONV_GUI_SCREENSHOT_INSPECT``); annotation paints a brush stroke by mouse events; training_panel makes a
synthetic dataset with the panel's own button and trains on it for a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "resources" / "screenshots"
sys.path.insert(0, str(ROOT))


def _isolated_env(tmp: str) -> dict[str, str]:
    return {**os.environ, "DECONV_GUI_CONFIG_DIR": tmp, "DECONV_GUI_OUTPUT_DIR": str(Path(tmp) / "out"),
            "DECONV_GUI_RUNS_DIR": str(Path(tmp) / "runs")}


def _launch(name: str, extra: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="shot_") as tmp:
        env = {**_isolated_env(tmp), "DECONV_GUI_SCREENSHOT": str(OUT / f"{name}.png"), **extra}
        subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=ROOT, env=env, check=True, timeout=300)


def _wait(app, condition, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.02)


def _window(tmp: str):
    os.environ.update(_isolated_env(tmp))
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from deconv_gui.document.preferences import read_preferences
    from deconv_gui.ui.main_window import MainWindow

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, tmp)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setStyle("Fusion")
    window = MainWindow(read_preferences()[0])
    window.resize(1500, 920)
    window.show()
    return app, window


def annotation() -> None:
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    from deconv_gui.cli import ensure_demo_scene
    from deconv_gui.document.models import default_preset

    with tempfile.TemporaryDirectory(prefix="shot_") as tmp:
        app, window = _window(tmp)
        c = window.controller
        c.load_preset(default_preset(demo=True))
        c.open_paths([ensure_demo_scene()])
        _wait(app, lambda: c.session is not None and c.session.shown is not None)
        window.annotator.set_tool("brush")
        window.annotator.set_class(4)
        window.annotator.set_radius(14)
        view = window.canvas.viewport()
        h, w = c.session.image.shape[:2]
        points = [window.canvas.mapFromScene(x, y) for x, y in
                  ((w * 0.30 + 6 * k, h * 0.55 - 3 * k) for k in range(0, 25))]
        QTest.mousePress(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[0])
        for p in points[1:]:
            QTest.mouseMove(view, p)
            app.processEvents()
        QTest.mouseRelease(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[-1])
        QTest.mouseMove(view, points[-1] + QPoint(30, 10))
        time.sleep(0.3)
        app.processEvents()
        window.grab().save(str(OUT / "annotation.png"))
        window.close()


def training_panel() -> None:
    with tempfile.TemporaryDirectory(prefix="shot_") as tmp:
        app, window = _window(tmp)
        window.show_training()
        panel = window.training
        panel.make_synthetic_dataset(Path(tmp) / "synthetic")
        panel.form.run_dir.edit.setText(str(Path(tmp) / "runs" / "demo_try"))
        panel.form.iterations.setValue(60)
        panel.form.settings.setText("val_every=10 val_limit=4 checkpoint_every=20 log_every=1")
        panel.start()
        _wait(app, lambda: len(panel.summary.val_miou) >= 3, timeout_s=900)
        time.sleep(0.5)
        app.processEvents()
        window.grab().save(str(OUT / "training_panel.png"))
        panel.stop()
        _wait(app, lambda: not panel.is_running(), timeout_s=120)
        window.close()


def main(names: list[str]) -> int:
    chosen = names or ["main_window", "inspector", "annotation", "training_panel"]
    for name in chosen:
        if name == "main_window":
            _launch("main_window", {})
        elif name == "inspector":
            _launch("inspector", {"DECONV_GUI_SCREENSHOT_INSPECT": os.environ.get("INSPECT_AT", "420,227")})
        elif name == "annotation":
            annotation()
        elif name == "training_panel":
            training_panel()
        else:
            raise SystemExit(f"unknown screenshot {name!r}")
        print(f"wrote {OUT / (name + '.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
