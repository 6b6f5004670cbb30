"""The annotation dock (tools, brush size, class, undo/redo, dataset export), its menu and shortcuts, and the
wiring of all of them to the :class:`~deconv_gui.ui.annotator.Annotator` (so the main window stays a composer).

Shortcuts (:data:`ANNOTATION_SHORTCUTS`): V select/pan, P brush, E eraser, G flood fill, O polygon, N void,
M box → mask, Enter accept the selected instance (or close the polygon), ``[``/``]`` brush size, 1–9/0 class
(1 is the 1:1 zoom while the select/pan tool is active), Ctrl+Z undo, Ctrl+Shift+Z / Ctrl+Y redo.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from deconv_gui.document.annotation import MIN_RADIUS, TOOLS
from deconv_gui.document.output_folders import default_edits_folder, project_folder
from deconv_gui.io.voc_export import SPLIT_DIR
from deconv_gui.ui.export_dialog import confirm_overwrite

if TYPE_CHECKING:
    from deconv_gui.ui.main_window import MainWindow

TOOL_LABELS = {"pan": "Select", "brush": "Brush", "eraser": "Eraser", "fill": "Fill", "polygon": "Polygon",
               "void": "Void", "box_mask": "Box→mask"}
ANNOTATION_SHORTCUTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("tool_pan", "&Select / pan", ("V",)),
    ("tool_brush", "&Brush", ("P",)),
    ("tool_eraser", "&Eraser (show the prediction again)", ("E",)),
    ("tool_fill", "&Flood fill", ("G",)),
    ("tool_polygon", "P&olygon fill (click corners; Enter, double- or right-click closes)", ("O",)),
    ("tool_void", "Paint &void (255)", ("N",)),
    ("tool_box_mask", "Box → &mask (draw a box; the model segments it)", ("M",)),
    ("accept", "&Accept the selected instance", ("Return", "Enter")),
    ("smaller", "Smaller brush", ("[",)),
    ("bigger", "Bigger brush", ("]",)),
    ("undo", "&Undo", ("Ctrl+Z",)),
    ("redo", "&Redo", ("Ctrl+Shift+Z", "Ctrl+Y")),
    ("dataset_export", "&Dataset export (VOC tree for training)…", ("Ctrl+Shift+E",)),
    ("autosave_folder", "Autosave &folder…", ()),
)
MAX_SLIDER_RADIUS = 200


class AnnotationPanel(QWidget):
    """Tool buttons, a brush-size slider, the active class, undo/redo, dataset export, autosave place."""

    tool_picked = Signal(str)
    radius_picked = Signal(int)
    undo_requested = Signal()
    redo_requested = Signal()
    dataset_export_requested = Signal()
    autosave_folder_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        grid = QGridLayout()
        self.tools = QButtonGroup(self)
        self.buttons: dict[str, QToolButton] = {}
        help_ = {name[5:]: f"{text.replace('&', '')} ({', '.join(keys)})" for name, text, keys in ANNOTATION_SHORTCUTS
                 if name.startswith("tool_")}
        for k, tool in enumerate(TOOLS):
            button = QToolButton()
            button.setText(TOOL_LABELS[tool])
            button.setToolTip(help_[tool])
            button.setCheckable(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            button.clicked.connect(lambda _=False, t=tool: self.tool_picked.emit(t))
            self.tools.addButton(button)
            grid.addWidget(button, k // 4, k % 4)
            self.buttons[tool] = button
        self.buttons["pan"].setChecked(True)
        layout.addLayout(grid)
        size_row = QHBoxLayout()
        self.size = QSlider(Qt.Orientation.Horizontal)
        self.size.setRange(MIN_RADIUS, MAX_SLIDER_RADIUS)
        self.size.setToolTip("brush radius in image pixels ([ and ])")
        self.size.valueChanged.connect(self.radius_picked)
        self.size_label = QLabel()
        self.size_label.setMinimumWidth(48)
        size_row.addWidget(QLabel("Size"))
        size_row.addWidget(self.size, 1)
        size_row.addWidget(self.size_label)
        layout.addLayout(size_row)
        self.class_label = QLabel()
        self.class_label.setToolTip("the class painted: click one in the legend, or press 1–9 / 0")
        layout.addWidget(self.class_label)
        buttons = QHBoxLayout()
        self.undo = QPushButton("Undo")
        self.redo = QPushButton("Redo")
        self.undo.clicked.connect(self.undo_requested)
        self.redo.clicked.connect(self.redo_requested)
        self.export = QPushButton("Dataset export…")
        self.export.setToolTip("write the edited images as a VOC tree that deconv-gui train reads")
        self.export.clicked.connect(self.dataset_export_requested)
        for b in (self.undo, self.redo, self.export):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.autosave = QPushButton()
        self.autosave.setFlat(True)
        self.autosave.setToolTip("where your edits are autosaved; click to choose a project folder")
        self.autosave.clicked.connect(self.autosave_folder_requested)
        layout.addWidget(self.autosave)
        layout.addStretch(1)
        self.set_radius(8)
        self.set_history(False, False)
        self.set_autosave_folder(default_edits_folder())

    def set_tool(self, tool: str) -> None:
        self.buttons[tool].setChecked(True)

    def set_radius(self, radius: int) -> None:
        self.size.blockSignals(True)
        self.size.setValue(min(radius, MAX_SLIDER_RADIUS))
        self.size.blockSignals(False)
        self.size_label.setText(f"{radius} px")

    def set_class(self, class_id: int, name: str, colour: tuple[int, int, int]) -> None:
        r, g, b = colour
        self.class_label.setText(f'Class <span style="color:#{r:02x}{g:02x}{b:02x}">■</span> '
                                 f"{class_id}: <b>{name}</b>")
        self.class_label.setToolTip(f"painting {name} (click another class in the legend, or press 1–9 / 0)")

    def set_history(self, can_undo: bool, can_redo: bool) -> None:
        self.undo.setEnabled(can_undo)
        self.redo.setEnabled(can_redo)

    def set_autosave_folder(self, folder: str | Path) -> None:
        """Say where the edits go: the folder's last two parts (the full path is the tooltip; a long path must
        not widen the dock)."""
        self.autosave.setText(f"Autosave: …/{'/'.join(Path(folder).parts[-2:])}/")
        self.autosave.setToolTip(f"your edits are autosaved in {folder}; click to choose another folder")


def build_annotation_menu(window: MainWindow) -> dict[str, QAction]:
    """The "Annotate" menu's actions (shortcuts included) and hidden class-number actions ``class_0..9``."""
    actions: dict[str, QAction] = {}
    menu = window.menuBar().addMenu("&Annotate")
    for name, text, keys in ANNOTATION_SHORTCUTS:
        action = QAction(text, window)
        action.setShortcuts([QKeySequence(k) for k in keys])
        if keys:
            action.setToolTip(f"{text.replace('&', '').rstrip('…')} ({', '.join(keys)})")
        if name.startswith("tool_"):
            action.setCheckable(True)
        if name == "accept":  # only while the canvas has the focus: Enter belongs to dialogs and fields elsewhere
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            window.canvas.addAction(action)
        else:
            window.addAction(action)
        menu.addAction(action)
        if name in ("tool_box_mask", "bigger", "redo"):
            menu.addSeparator()
        actions[name] = action
    for digit in range(10):
        if digit == 1:  # "1" is the 1:1 zoom's key too: the window routes it (class 1 while painting)
            continue
        action = QAction(f"Class {digit}", window)
        action.setShortcut(QKeySequence(str(digit)))
        window.addAction(action)
        actions[f"class_{digit}"] = action
    return actions


def wire_annotation(window: MainWindow) -> None:
    """Connect the annotator, its panel, menu, the legend, the file list and the status bar."""
    ann, panel, acts = window.annotator, window.annotate, window.annotation_actions
    for tool in TOOLS:
        acts[f"tool_{tool}"].triggered.connect(lambda _=False, t=tool: ann.set_tool(t))
    panel.tool_picked.connect(ann.set_tool)
    ann.tool_changed.connect(panel.set_tool)
    ann.tool_changed.connect(window.mode_label.set_tool)
    window.canvas.draw_mode_changed.connect(window.mode_label.set_box_mode)
    ann.tool_changed.connect(lambda t: [acts[f"tool_{x}"].setChecked(x == t) for x in TOOLS])
    panel.radius_picked.connect(ann.set_radius)
    ann.radius_changed.connect(panel.set_radius)
    acts["smaller"].triggered.connect(lambda: ann.bump_radius(-1))
    acts["bigger"].triggered.connect(lambda: ann.bump_radius(+1))
    ann.class_changed.connect(panel.set_class)
    ann.class_changed.connect(lambda cls, _name, _colour: window.legend.set_active(cls))
    window.legend.class_clicked.connect(ann.set_class)
    for digit in range(10):
        if f"class_{digit}" in acts:
            acts[f"class_{digit}"].triggered.connect(lambda _=False, d=digit: ann.set_class(d))
    acts["undo"].triggered.connect(ann.undo)
    acts["redo"].triggered.connect(ann.redo)
    panel.undo_requested.connect(ann.undo)
    panel.redo_requested.connect(ann.redo)
    ann.history_changed.connect(panel.set_history)
    acts["accept"].triggered.connect(ann.accept_selected)
    acts["dataset_export"].triggered.connect(lambda: ask_dataset_export(window))
    panel.dataset_export_requested.connect(lambda: ask_dataset_export(window))
    acts["autosave_folder"].triggered.connect(lambda: ask_autosave_folder(window))
    panel.autosave_folder_requested.connect(lambda: ask_autosave_folder(window))
    ann.edited_changed.connect(window.files.set_edited)
    ann.message.connect(window.show_error)
    ann.status.connect(lambda text: window.statusBar().showMessage(text, 8000))
    window.controller.result_shown.connect(lambda _s: ann.refresh_class())
    panel.set_radius(ann.state.radius)
    panel.set_autosave_folder(window.controller.prefs.annotation_folder or default_edits_folder())
    ann.refresh_class()
    ann.attach()


def ask_dataset_export(window: MainWindow) -> int | None:
    """Ask for an (empty) folder and export the edited images there as a VOC tree."""
    c = window.controller
    start = str(project_folder(c.session.path if c.session is not None else None) / "dataset")
    folder = QFileDialog.getExistingDirectory(window, "Dataset export: choose an empty folder", start)
    if not folder:
        return None
    window.annotator.save_now()
    existing = [p for p in (Path(folder) / SPLIT_DIR / "train.txt", Path(folder) / "classes.txt") if p.exists()]
    if existing and not confirm_overwrite(window, existing):
        return None
    return c.export_dataset(Path(folder), overwrite=bool(existing))


def ask_autosave_folder(window: MainWindow) -> None:
    """Pick a project folder for the autosaves (Cancel keeps the current one)."""
    current = window.controller.prefs.annotation_folder or str(default_edits_folder())
    folder = QFileDialog.getExistingDirectory(window, "Autosave edits into a project folder", current)
    if folder:
        window.annotator.set_autosave_folder(Path(folder))
        window.annotate.set_autosave_folder(folder)
