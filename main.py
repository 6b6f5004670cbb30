"""Entry point: ``python main.py [IMAGE_OR_FOLDER] [--weights CKPT]``.

Opens the desktop app when it is installed (``deconv_gui.ui``); until then it segments the bundled demo scene
(or the given image) with the bundled demo model and writes the result next to it, so ``make run`` always does
something real.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from deconv_gui.ui.app import run_app  # the desktop app (issue 4)
    except ImportError:
        from deconv_gui.cli import main as cli_main

        return cli_main(["demo", *argv])
    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
