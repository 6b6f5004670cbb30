"""The main window: composes the canvas, panels, menus and status bar, and wires their signals to the controller.

Behaviour lives elsewhere: the document in ``deconv_gui.document``, the run logic in :class:`Controller`,
drawing in the widgets. This module only connects them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QWidget,
)

from deconv_gui.document.layers import pick_box
from deconv_gui.document.models import available_presets, bundled_models
from deconv_gui.document.output_folders import export_folder
from deconv_gui.document.preferences import Preferences
from deconv_gui.document.session import ImageSession
from deconv_gui.ui.annotation_panel import AnnotationPanel, build_annotation_menu, wire_annotation
from deconv_gui.ui.annotator import Annotator
from deconv_gui.ui.canvas import ImageCanvas
from deconv_gui.ui.controller import Controller
from deconv_gui.ui.controls import ControlsPanel
from deconv_gui.ui.elided_label import ElidedLabel
from deconv_gui.ui.export_dialog import ExportDialog, confirm_overwrite
from deconv_gui.ui.file_list import FileList, paths_from_mime
from deconv_gui.ui.inspector import wire_inspector
from deconv_gui.ui.layers_panel import LayersPanel
from deconv_gui.ui.legend import Legend
from deconv_gui.ui.menus import build_menus
from deconv_gui.ui.mode_indicator import ModeIndicator
from deconv_gui.ui.proposals_panel import ProposalsPanel
from deconv_gui.ui.screen_fit import exceeds_screen, fit_to_screen
from deconv_gui.ui.settings_dialog import SettingsDialog

log = logging.getLogger(__name__)

try:  # written beside this window (helper U2); the app works without it
    from deconv_gui.ui.training_panel import TrainingPanel
except ImportError:  # pragma: no cover - only while the training panel does not exist
    TrainingPanel = None  # type: ignore[assignment,misc]

DOCK_SEPARATOR_PX = 8
MIN_PROPOSAL_ROWS = 4
"""The proposals table always shows at least this many rows, however many panels are docked."""
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp *.ppm *.pgm);;All files (*)"
WEIGHTS_FILTER = "Checkpoints (*.pt *.pth);;All files (*)"
CAFFE_FILTER = "Caffe models (*.caffemodel);;All files (*)"


class MainWindow(QMainWindow):
    """DeconvNet inspector. ``controller`` holds the document; tests drive it through the controller's API."""

    def __init__(self, preferences: Preferences | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("deconv_gui")
        self.setAcceptDrops(True)
        self.controller = c = Controller(preferences, self)
        self.canvas = ImageCanvas()
        self.setCentralWidget(self.canvas)
        self.files = FileList()
        self.proposals = ProposalsPanel()
        self.controls = ControlsPanel()
        self.layers = LayersPanel(self.canvas.overlays)
        self.legend = Legend()
        self.annotator = Annotator(c, self.canvas, self)
        self.annotator.history_changed.connect(lambda *_: self._show_legend())
        self.annotate = AnnotationPanel()
        self.training = TrainingPanel(self) if TrainingPanel is not None else None
        self.actions_, self.menus = build_menus(self)
        self.annotation_actions = build_annotation_menu(self)
        self._build_docks()
        self._build_status_bar()
        self.controls.set_num_proposals(c.prefs.num_proposals)
        self.controls.set_model_proposals(c.engine.model_top_n())  # no model yet: DeconvNet's default
        self.controls.set_device(c.prefs.device)
        self.controls.set_choices(c.choices)
        self.controls.set_partner_available(False)
        self._wire()
        wire_annotation(self)
        self.inspector = wire_inspector(self)
        self._fill_model_menus()
        self._restore_geometry()

    # --- composition --------------------------------------------------------------------------------------------

    def _build_docks(self) -> None:
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        docks = [("Files", self.files, left), ("Controls", self.controls, right), ("Annotate", self.annotate, right),
                 ("Proposals", self.proposals, right), ("Layers", self.layers, left), ("Legend", self.legend, left)]
        if self.training is not None:
            docks.append(("Training", self.training, Qt.DockWidgetArea.BottomDockWidgetArea))
        # The right column keeps the whole height (the training dock goes under the files and the canvas), so
        # docking it never squeezes the proposals table; every dock keeps a usable minimum size.
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.docks: dict[str, QDockWidget] = {}
        for title, widget, area in docks:
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{title.lower()}")
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.menus["docks"].addAction(dock.toggleViewAction())
            for signal in (dock.visibilityChanged, dock.topLevelChanged, dock.dockLocationChanged):
                signal.connect(lambda *_: QTimer.singleShot(0, self._docks_changed))
            self.docks[title] = dock
        self.proposals.setMinimumWidth(300)
        self.proposals.setMinimumHeight(self.proposals.rows_height(MIN_PROPOSAL_ROWS))
        if "Training" in self.docks:
            self.docks["Training"].hide()

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.hover_label = QLabel()
        self.zoom_label = QLabel()
        self.mode_label = ModeIndicator()
        self.model_label = QLabel("no model loaded")
        self.model_label.setToolTip("the model in use and what it was trained on (Model → Bundled models)")
        self.result_label = ElidedLabel()  # the last run's summary and timings: stays until the next result
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setFixedWidth(90)
        self.progress.hide()
        self.progress_text = ElidedLabel()  # the stage, elided (never clipped or wrapped); full text as tooltip
        self.progress_text.setMaximumWidth(300)
        self.progress_text.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        bar.addWidget(self.hover_label, 1)
        bar.addPermanentWidget(self.model_label)
        bar.addPermanentWidget(self.mode_label)
        bar.addPermanentWidget(self.result_label, 1)
        bar.addPermanentWidget(self.progress_text, 1)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        bar.addPermanentWidget(self.zoom_label)

    def _wire(self) -> None:
        c, a, canvas = self.controller, self.actions_, self.canvas
        # document → widgets
        c.image_opened.connect(self._show_image)
        c.image_failed.connect(self._show_failure)
        c.file_failed.connect(self.files.set_failed)
        c.result_shown.connect(self._show_result)
        c.selection_changed.connect(self._show_selection)
        c.folder_changed.connect(self.files.set_folder)
        c.state_changed.connect(self.files.set_state)
        c.model_changed.connect(self.controls.set_device_in_use)
        c.partner_changed.connect(self.controls.set_partner_available)
        c.models_described.connect(self.model_label.setText)
        c.model_proposals.connect(self.controls.set_model_proposals)
        c.models_described.connect(lambda text: self.statusBar().showMessage(f"loaded {text}", 8000))
        c.choices_changed.connect(self.controls.set_choices)
        c.error.connect(self.show_error)
        c.unexpected.connect(self.show_traceback)
        c.status.connect(lambda text: self.statusBar().showMessage(text, 8000))
        c.result_summary.connect(self.result_label.setText)
        c.progress.connect(self._show_progress)
        c.busy_changed.connect(self._show_busy)
        # widgets → document
        self.files.open_requested.connect(c.open_image)
        self.files.run_all_requested.connect(c.run_folder)
        c.progress.connect(lambda d, t, s: self.files.set_progress(d, t, s) if s.startswith(("image", "folder")) else None)
        self.proposals.include_toggled.connect(c.set_included)
        self.proposals.selected.connect(c.select)
        self.proposals.top_n_changed.connect(lambda n: c.set_choices(top_n=n))
        self.controls.ensemble_changed.connect(lambda m: c.set_choices(ensemble=m))
        self.controls.crf_changed.connect(lambda on: c.set_choices(crf=on))
        self.controls.aggregation_changed.connect(lambda m: c.set_choices(aggregation=m))
        self.controls.proposals_changed.connect(c.set_num_proposals)
        self.controls.device_changed.connect(c.set_device)
        self.controls.segment_requested.connect(c.segment)
        self.controls.settings_requested.connect(self.open_settings)
        self.cancel_button.clicked.connect(c.cancel)
        canvas.hovered.connect(self._show_hover)
        canvas.clicked.connect(self._pick)
        canvas.box_drawn.connect(c.add_box)
        canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        canvas.draw_mode_changed.connect(a["draw_box"].setChecked)
        if self.training is not None:
            self.training.use_checkpoint.connect(lambda p: c.load_weights(Path(p)))
        # menus
        slots = {
            "open_image": self.ask_open_image, "open_folder": self.ask_open_folder, "export": self.ask_export,
            "quit": self.close, "load_weights": self.ask_load_weights,
            "import_caffe": self.ask_import_caffe, "load_partner": self.ask_load_partner,
            "remove_partner": lambda: c.load_partner(None), "settings": self.open_settings,
            "zoom_in": canvas.zoom_in, "zoom_out": canvas.zoom_out, "fit": canvas.fit,
            "actual_size": lambda: self.annotator.set_class(1) if self.annotator.painting else canvas.actual_size(),
            "draw_box": canvas.set_draw_mode,
            "toggle_labels": lambda: self.layers.toggle("label map"),
            "toggle_boxes": lambda: self.layers.toggle("proposal boxes"),
            "next": c.next_image, "previous": c.previous_image, "segment": c.segment, "run_all": c.run_folder,
            "cancel": lambda: canvas.set_draw_mode(False) if canvas.draw_mode else self.annotator.cancel() or c.cancel(),
            "training": self.show_training,
        }
        for name, slot in slots.items():
            a[name].triggered.connect(slot)
        self.menus["recent_files"].aboutToShow.connect(self._fill_recent_files)
        self.menus["recent_weights"].aboutToShow.connect(self._fill_recent_weights)

    # --- document → widgets --------------------------------------------------------------------------------------

    def _show_image(self, session: ImageSession) -> None:
        self.setWindowTitle(f"{session.path.name} — deconv_gui")
        self.canvas.set_image(self.controller.display_of(session))
        self.files.set_current(session.path)
        self.proposals.set_proposals([], session.user_include[:0], session.user_include[:0], None)
        self.canvas.overlays.show_instance(None)

    def _show_failure(self, path: Path, message: str) -> None:
        """Nothing of the previous image stays on screen: the canvas, title, table and legend say what failed."""
        self.setWindowTitle(f"{path.name} (could not be opened) — deconv_gui")
        self.canvas.show_failure(f"Could not open {path.name}\n{message}")
        self.files.set_failed(path, message)
        self.files.set_current(path)
        self.proposals.set_proposals([], np.zeros(0, bool), np.zeros(0, bool), None)
        self.legend.set_classes([], np.zeros((0, 3), np.uint8))

    def _show_result(self, session: ImageSession) -> None:
        layers, shown = self.controller.layers_of(session), session.shown
        if layers is None or shown is None:
            return
        self.canvas.overlays.show_result(layers, shown.boxes, shown.include, shown.from_user, shown.image_hw)
        self.proposals.set_proposals(session.summaries, session.user_include, shown.include,
                                     self.controller.choices.top_n)
        self._show_legend()
        self.controls.set_device_in_use(shown.device or self.controller.engine.describe())
        self._show_selection(session.selected)

    def _show_legend(self) -> None:
        """Class areas of what is on screen: the label map with the user's edits (refreshed after every edit)."""
        s = self.controller.session
        if s is not None and s.shown is not None:
            self.legend.set_classes(s.shown.class_names, s.shown.palette, s.class_areas())

    def _show_selection(self, index: int | None) -> None:
        session = self.controller.session
        self.canvas.overlays.boxes.set_selected(index)
        self.proposals.select_row(index)
        row = session.summaries[index] if session is not None and index is not None else None
        if row is None or not row.area:
            self.canvas.overlays.show_instance(None)
        else:
            self.canvas.overlays.show_instance(row.mask, row.offset)

    def _show_hover(self, x: int, y: int) -> None:
        s = self.controller.session
        probe = s.probe(x, y) if s is not None else None
        self.hover_label.setText(f"{probe[0]}, p={probe[1]:.2f} at ({x}, {y})" if probe else f"({x}, {y})")

    def _show_progress(self, done: int, total: int, stage: str) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.progress_text.setText(stage if "/" in stage or total <= 1 else f"{stage} {done}/{total}")

    def _show_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.progress_text.setVisible(busy)
        self.result_label.setVisible(not busy)
        self.cancel_button.setVisible(busy)
        if not busy:
            self.files.hide_progress()

    def _pick(self, x: float, y: float) -> None:
        s = self.controller.session
        if s is None or s.shown is None or not self.canvas.overlays.layers["proposal boxes"].visible:
            return
        boxes = [r.box for r in s.summaries]
        self.controller.select(pick_box(boxes, x, y, [i for i in range(len(boxes)) if s.shown.include[i]]))

    def show_error(self, message: str) -> None:
        """A user-caused error: a message box (non-blocking), the app keeps working."""
        self.statusBar().showMessage(message, 10000)
        box = QMessageBox(QMessageBox.Icon.Warning, "deconv_gui", message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.last_error = message

    def show_traceback(self, message: str, tb: str) -> None:
        """An unexpected failure: the message with the traceback in the details; nothing is lost."""
        box = QMessageBox(QMessageBox.Icon.Critical, "deconv_gui: unexpected error",
                          f"{message}\n\nYour image and results are kept; you can go on working.",
                          QMessageBox.StandardButton.Ok, self)
        box.setDetailedText(tb)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.last_error = message

    # --- dialogs ---------------------------------------------------------------------------------------------------

    def show_training(self) -> None:
        dock = self.docks.get("Training")
        if dock is None:
            self.show_error("the training panel is not available in this installation")
            return
        dock.show()
        dock.raise_()

    def ask_open_image(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open images", "", IMAGE_FILTER)
        if paths:
            self.controller.open_paths([Path(p) for p in paths])

    def ask_open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if path:
            self.controller.open_paths([Path(path)])

    def ask_load_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load weights", "", WEIGHTS_FILTER)
        if path:
            self.controller.load_weights(Path(path))

    def ask_import_caffe(self) -> None:
        """Pick a ``.caffemodel`` (DeconvNet or FCN-8s) and where to save the converted checkpoint; then load it."""
        source, _ = QFileDialog.getOpenFileName(self, "Import a Caffe model (DeconvNet or FCN-8s)", "", CAFFE_FILTER)
        if not source:
            return
        default = str(Path(source).with_suffix(".pt"))
        out, _ = QFileDialog.getSaveFileName(self, "Save the converted checkpoint as", default, WEIGHTS_FILTER)
        if out:
            self.controller.import_caffe(Path(source), Path(out))

    def ask_load_partner(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load an ensemble partner (e.g. FCN-8s)", "", WEIGHTS_FILTER)
        if path:
            self.controller.load_partner(Path(path))

    def open_settings(self) -> None:
        c = self.controller
        dialog = SettingsDialog(c.choices.crf_params, c.prefs.edge_model_file, self)
        if dialog.exec():
            params, edge_file = dialog.values()
            c.set_edge_model_file(edge_file)
            if params != c.choices.crf_params:
                c.set_choices(crf_params=params)

    def ask_export(self) -> None:
        c = self.controller
        image = c.session.path if c.session is not None else c.failed_path
        dialog = ExportDialog(export_folder(image, c.prefs.export_folder), len(c.folder) > 1, self,
                              formats=c.prefs.export_formats, image_path=image, num_images=len(c.folder))
        if not dialog.exec():
            return
        out_dir, formats, whole_folder = dialog.choice()
        c.prefs.export_folder, c.prefs.export_formats = str(out_dir), sorted(formats)  # the next export's defaults
        self.export(out_dir, formats, whole_folder=whole_folder)

    def export(self, out_dir: Path, formats: set[str], *, whole_folder: bool = False) -> int | None:
        """Export, asking before overwriting anything (:func:`confirm_overwrite`)."""
        if not formats:
            self.show_error("choose at least one export format")
            return None
        c = self.controller
        existing = c.existing_outputs(out_dir, formats, whole_folder=whole_folder)
        overwrite = bool(existing)
        if existing and not confirm_overwrite(self, existing):
            return None
        run = c.export_all if whole_folder else c.export_current
        return run(out_dir, formats, overwrite=overwrite)

    # --- menus filled at run time ------------------------------------------------------------------------------------

    def _fill_model_menus(self) -> None:
        menu = self.menus["bundled"]
        menu.clear()
        for preset in available_presets():
            action = QAction(preset.name, menu)
            action.setToolTip(f"trained on {preset.trained_on}")
            action.triggered.connect(lambda _=False, p=preset: self.controller.load_preset(p))
            menu.addAction(action)
        if menu.actions():
            menu.addSeparator()
        for info in bundled_models():
            action = QAction(info.label, menu)
            action.triggered.connect(lambda _=False, p=info.path: self.controller.load_weights(p))
            menu.addAction(action)
        menu.setEnabled(bool(menu.actions()))

    def _fill_recent(self, menu_name: str, items: list[str], open_fn: object) -> None:
        menu = self.menus[menu_name]
        menu.clear()
        for item in items:
            action = QAction(item, menu)
            action.triggered.connect(lambda _=False, p=item: open_fn(Path(p)))  # type: ignore[operator]
            menu.addAction(action)
        if not items:
            menu.addAction("(none)").setEnabled(False)

    def _fill_recent_files(self) -> None:
        self._fill_recent("recent_files", self.controller.prefs.recent_files,
                          lambda p: self.controller.open_paths([p]))

    def _fill_recent_weights(self) -> None:
        self._fill_recent("recent_weights", self.controller.prefs.recent_weights, self.controller.load_weights)

    # --- window ---------------------------------------------------------------------------------------------------

    def _restore_geometry(self) -> None:
        settings = QSettings("deconv_gui", "deconv_gui")
        geometry, state = settings.value("geometry"), settings.value("window_state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            screen = self.screen().availableGeometry()
            self.resize(min(1500, screen.width()), min(920, screen.height()))
        if state is not None:
            self.restoreState(state)
            self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)  # a state saved
            # by an older version put the training dock under the right column too
        else:  # first run: give the canvas the room (docks otherwise size to their contents)
            QTimer.singleShot(0, self._default_dock_sizes)

    def _default_dock_sizes(self) -> None:
        d = self.docks
        self.resizeDocks([d["Files"], d["Controls"]], [200, 440], Qt.Orientation.Horizontal)
        self.resizeDocks([d["Controls"], d["Proposals"]], [260, 640], Qt.Orientation.Vertical)
        self.resizeDocks([d["Files"], d["Layers"], d["Legend"]], [330, 150, 300], Qt.Orientation.Vertical)

    def _docks_changed(self) -> None:
        """A dock was shown, moved or floated: stay on the screen, and leave a docked training panel its minimum
        width beside the right column (Qt's layout would rather let them overlap)."""
        fit_to_screen(self)
        bottom = [d for d in self.docks.values() if d.isVisible() and not d.isFloating()
                  and self.dockWidgetArea(d) == Qt.DockWidgetArea.BottomDockWidgetArea]
        right = [d for d in self.docks.values() if d.isVisible() and not d.isFloating()
                 and self.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea]
        if not bottom or not right:
            return
        room = self.width() - max(d.minimumSizeHint().width() for d in bottom) - DOCK_SEPARATOR_PX
        if right[0].width() > room:
            self.resizeDocks(right[:1], [max(room, max(d.minimumSizeHint().width() for d in right))],
                             Qt.Orientation.Horizontal)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        QTimer.singleShot(0, lambda: fit_to_screen(self))  # a saved geometry may come from a bigger screen

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if exceeds_screen(self):  # a dock's minimum size grew the window: back onto the screen
            QTimer.singleShot(0, lambda: fit_to_screen(self))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if paths_from_mime(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = paths_from_mime(event.mimeData())
        if paths:
            event.acceptProposedAction()
            QTimer.singleShot(0, lambda: self.controller.open_paths(paths))

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        """Cancel any run, wait for the worker to stop, save geometry and preferences."""
        if self.training is not None and not self.training.confirm_close():
            event.ignore()
            return
        settings = QSettings("deconv_gui", "deconv_gui")
        settings.setValue("geometry", self.saveGeometry())
        settings.setValue("window_state", self.saveState())
        settings.sync()  # on disk now: the process ends without Python's teardown (``app.exit_now``)
        self.annotator.shutdown()
        self.inspector.shutdown()
        self.controller.shutdown()
        super().closeEvent(event)
