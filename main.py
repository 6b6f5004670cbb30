"""Entry point of the desktop app: ``python main.py [IMAGE_OR_FOLDER] [--weights CKPT] [--partner CKPT]``.

With no argument it opens the bundled demo scene (``resources/demo/scene.png``) with the bundled demo model
(``resources/weights/demo_synthetic.pt``) when there is one. See ``deconv_gui.ui.app.run_app``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from deconv_gui.ui.app import run_app

    return run_app(list(sys.argv[1:] if argv is None else argv))


def launch() -> None:
    """Run the app, then end the process at once (``deconv_gui.ui.app.exit_now``: quitting is instant)."""
    from deconv_gui.ui.app import exit_now

    exit_now(main())


if __name__ == "__main__":
    launch()
