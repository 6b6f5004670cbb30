"""Proposals panel: a table (rank, score, dominant class, area, p) with include checkboxes, and a top-N slider.

Checking/unchecking a row, moving the slider or selecting a row go to the controller, which recombines from the
cached maps; rows outside the top N (or excluded) are shown greyed. The table fits its panel's width (no
horizontal scroll bar hiding the checkboxes): the class column takes what is left and elides; a row's box
(x0, y0, x1, y1) is its tooltip and is drawn on the canvas when the row is selected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSlider,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from deconv_gui.document.session import ProposalSummary

COLUMNS = ("#", "score", "class", "area", "p")
CLASS_COLUMN = 2
Index = QModelIndex | QPersistentModelIndex


class ProposalsModel(QAbstractTableModel):
    """Rows are :class:`ProposalSummary`; column 0 carries the include checkbox."""

    include_toggled = Signal(int, bool)

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[ProposalSummary] = []
        self.user_include = np.zeros(0, bool)
        self.effective = np.zeros(0, bool)

    def set_rows(self, rows: list[ProposalSummary], user_include: np.ndarray, effective: np.ndarray) -> None:
        self.beginResetModel()
        self.rows, self.user_include, self.effective = list(rows), user_include.copy(), effective.copy()
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        f = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == 0:
            f |= Qt.ItemFlag.ItemIsUserCheckable
        return f

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            values = (
                f"{r.rank}{' ✎' if r.from_user else ''}", f"{r.score:.3f}", r.class_name, f"{r.area}",
                f"{r.probability:.2f}",
            )
            return values[col]
        if role == Qt.ItemDataRole.CheckStateRole and col == 0:
            on = bool(self.user_include[index.row()])
            return Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ForegroundRole and not self.effective[index.row()]:
            return QColor(140, 140, 140)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (1, 3, 4):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            why = ("excluded by you" if not self.user_include[index.row()]
                   else "outside the top N" if not self.effective[index.row()] else "used")
            origin = "drawn by you" if r.from_user else f"Edge Box score {r.score:.3f}"
            return (f"proposal {r.rank} ({origin}): box x0, y0, x1, y1 = {', '.join(map(str, r.box))}; "
                    f"{r.class_name}, {r.area} px, p={r.probability:.2f} — {why}")
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if role != Qt.ItemDataRole.CheckStateRole or index.column() != 0:
            return False
        on = Qt.CheckState(value) == Qt.CheckState.Checked if not isinstance(value, bool) else value
        self.user_include[index.row()] = on
        self.dataChanged.emit(index, index.siblingAtColumn(len(COLUMNS) - 1))
        self.include_toggled.emit(index.row(), bool(on))
        return True


class ProposalsPanel(QWidget):
    """The table and the top-N slider (0 on the slider's right end means "all")."""

    include_toggled = Signal(int, bool)
    selected = Signal(object)  # row or None
    top_n_changed = Signal(object)  # int | None (all)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ProposalsModel()
        self.model.include_toggled.connect(self.include_toggled)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(CLASS_COLUMN, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(24)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setWordWrap(False)
        self.table.selectionModel().currentRowChanged.connect(
            lambda cur, _prev: self.selected.emit(cur.row() if cur.isValid() else None))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(1, 1)
        self.slider.setToolTip("use only the N best Edge Box proposals (drawn boxes always count)")
        self.slider.valueChanged.connect(self._on_slider)
        self.slider_label = QLabel("top N: all")
        row = QHBoxLayout()
        row.addWidget(self.slider_label)
        row.addWidget(self.slider, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        self._edge_boxes = 0

    def set_proposals(self, rows: list[ProposalSummary], user_include: np.ndarray, effective: np.ndarray,
                      top_n: int | None) -> None:
        selected = self.current_row()
        self.model.set_rows(rows, user_include, effective)
        self._edge_boxes = sum(1 for r in rows if not r.from_user)
        self.slider.blockSignals(True)
        self.slider.setRange(1, max(1, self._edge_boxes))
        self.slider.setValue(self._edge_boxes if top_n is None else min(top_n, self._edge_boxes))
        self.slider.blockSignals(False)
        self._update_label()
        if selected is not None and selected < len(rows):
            self.select_row(selected)

    def rows_height(self, rows: int) -> int:
        """The panel's height that shows the slider, the header and ``rows`` table rows."""
        table = self.table
        margins = self.layout().contentsMargins()
        return (self.slider.sizeHint().height() + self.layout().spacing() + table.horizontalHeader().sizeHint().height()
                + rows * table.verticalHeader().defaultSectionSize() + 2 * table.frameWidth()
                + margins.top() + margins.bottom())

    def current_row(self) -> int | None:
        idx = self.table.selectionModel().currentIndex()
        return idx.row() if idx.isValid() else None

    def select_row(self, row: int | None) -> None:
        """Select ``row`` without echoing the ``selected`` signal."""
        sm = self.table.selectionModel()
        sm.blockSignals(True)
        if row is None or row >= self.model.rowCount():
            sm.clearSelection()
            sm.setCurrentIndex(QModelIndex(), QItemSelectionModel.SelectionFlag.Clear)
        else:
            idx = self.model.index(row, 0)
            sm.setCurrentIndex(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect
                               | QItemSelectionModel.SelectionFlag.Rows)
            self.table.scrollTo(idx)
        sm.blockSignals(False)
        self.table.viewport().update()

    def set_include(self, row: int, on: bool) -> None:
        self.model.setData(self.model.index(row, 0), on, Qt.ItemDataRole.CheckStateRole)

    def _on_slider(self, value: int) -> None:
        self._update_label()
        self.top_n_changed.emit(None if value >= self._edge_boxes else int(value))

    def _update_label(self) -> None:
        v = self.slider.value()
        self.slider_label.setText("top N: all" if v >= self._edge_boxes else f"top N: {v}")
