"""The installed PySide6 must not leak references to ``None`` / ``True`` / ``False``.

PySide6-Essentials 6.12.0 on Python 3.11 drops one reference to ``None`` for every Qt call that returns void
(``QLabel.setText``); after a few minutes of mouse motion the count reaches zero and the interpreter aborts
(``Fatal Python error: none_dealloc``). pyproject.toml keeps that combination out; this test catches the next
release that brings it back. On Python >= 3.12 the three singletons are immortal (PEP 683): their count never
moves and the test passes whatever the binding does, which is right, since the leak cannot hurt there.
"""

from __future__ import annotations

import sys

import PySide6
import shiboken6
from PySide6.QtWidgets import QLabel, QWidget

CALLS = 5000
TOLERANCE = 50  # the interpreter itself may take or drop a few references meanwhile

#: References handed back when a broken binding stole them, so that a failing run reports a failure instead of
#: aborting the interpreter (``none_dealloc``) before pytest can print it.
_RESTORED: list[object] = []


def _counts() -> dict[str, int]:
    return {"None": sys.getrefcount(None), "True": sys.getrefcount(True), "False": sys.getrefcount(False)}


def test_void_and_bool_qt_calls_keep_singleton_refcounts(qapp) -> None:
    label, widget = QLabel(), QWidget()
    child = QLabel(widget)
    before = _counts()
    for _ in range(CALLS):
        label.setText("x")  # void
        widget.isVisible()  # bool: False
        widget.isWindow()  # bool: True
        child.isWindow()  # bool: False
        label.setVisible(False)  # void
    after = _counts()
    drift = {k: after[k] - before[k] for k in before}
    for name, value in (("None", None), ("True", True), ("False", False)):
        if drift[name] < 0:
            _RESTORED.extend([value] * -drift[name])
    versions = f"PySide6 {PySide6.__version__}, shiboken6 {shiboken6.__version__}, Python {sys.version.split()[0]}"
    assert all(abs(d) < TOLERANCE for d in drift.values()), (
        f"{versions}: reference counts moved by {drift} over {CALLS} calls of each kind; this binding leaks "
        "references and will crash the app (none_dealloc) — pin another PySide6-Essentials in pyproject.toml")
    assert shiboken6.__version__ == PySide6.__version__, f"mismatched Qt bindings: {versions}"
