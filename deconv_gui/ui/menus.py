"""The main window's menus and keyboard shortcuts, as QActions (no behaviour here: the window connects them)."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

SHORTCUTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (action name, menu text, shortcuts)
    ("open_image", "&Open image…", ("Ctrl+O",)),
    ("open_folder", "Open &folder…", ("Ctrl+Shift+O",)),
    ("export", "&Export…", ("Ctrl+E",)),
    ("quit", "&Quit", ("Ctrl+Q",)),
    ("load_weights", "&Load weights…", ("Ctrl+L",)),
    ("import_caffe", "&Import Caffe model…", ()),
    ("load_partner", "Load ensemble &partner…", ("Ctrl+Shift+L",)),
    ("remove_partner", "&Remove ensemble partner", ()),
    ("settings", "&Settings…", ("Ctrl+,",)),
    ("training", "&Training panel", ("Ctrl+T",)),
    ("zoom_in", "Zoom &in", ("+", "=", "Ctrl++")),
    ("zoom_out", "Zoom &out", ("-", "Ctrl+-")),
    ("fit", "&Fit to window", ("F",)),
    ("actual_size", "&1:1 (one image pixel per screen pixel)", ("1",)),
    ("draw_box", "Draw a &box (new proposal)", ("B",)),
    ("toggle_labels", "Show/hide &label map", ("L",)),
    ("toggle_boxes", "Show/hide proposal bo&xes", ("X",)),
    ("toggle_winners", "Show/hide the &winner layer (the proposal that won each pixel)", ("W",)),
    ("explain", "Expla&in the pixel under the cursor (Ctrl-click selects its winner)", ("I",)),
    ("next", "&Next image", ("D", "PgDown")),
    ("previous", "&Previous image", ("A", "PgUp")),
    ("segment", "&Segment again", ("R",)),
    ("run_all", "Run on &all images", ("Ctrl+R",)),
    ("cancel", "&Cancel", ("Esc",)),
)


def build_menus(window: QMainWindow) -> tuple[dict[str, QAction], dict[str, QMenu]]:
    """Create the menu bar; returns the actions by name and the submenus the window fills at run time."""
    actions: dict[str, QAction] = {}
    for name, text, keys in SHORTCUTS:
        action = QAction(text, window)
        action.setShortcuts([QKeySequence(k) for k in keys])
        if keys:
            action.setToolTip(f"{text.replace('&', '').rstrip('…')} ({', '.join(keys)})")
        actions[name] = action
        window.addAction(action)
    actions["draw_box"].setCheckable(True)
    actions["explain"].setCheckable(True)
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addAction(actions["open_image"])
    file_menu.addAction(actions["open_folder"])
    recent_files = file_menu.addMenu("Recent &files")
    file_menu.addAction(actions["load_weights"])
    file_menu.addAction(actions["import_caffe"])
    file_menu.addSeparator()
    file_menu.addAction(actions["export"])
    file_menu.addSeparator()
    file_menu.addAction(actions["quit"])
    model_menu = bar.addMenu("&Model")
    bundled = model_menu.addMenu("&Bundled models")
    model_menu.addAction(actions["load_weights"])
    recent_weights = model_menu.addMenu("Recent &weights")
    model_menu.addSeparator()
    model_menu.addAction(actions["load_partner"])
    model_menu.addAction(actions["remove_partner"])
    model_menu.addSeparator()
    model_menu.addAction(actions["training"])
    model_menu.addAction(actions["settings"])
    view_menu = bar.addMenu("&View")
    for name in ("zoom_in", "zoom_out", "fit", "actual_size", None, "toggle_labels", "toggle_boxes", "toggle_winners",
                 "explain", "draw_box"):
        if name is None:
            view_menu.addSeparator()
        else:
            view_menu.addAction(actions[name])
    docks = view_menu.addMenu("&Panels")
    image_menu = bar.addMenu("&Image")
    for name in ("previous", "next", None, "segment", "run_all", "cancel"):
        if name is None:
            image_menu.addSeparator()
        else:
            image_menu.addAction(actions[name])
    menus = {"recent_files": recent_files, "recent_weights": recent_weights, "bundled": bundled, "docks": docks}
    return actions, menus
