"""Proposals panel: a table (rank, score, dominant class, area, p, pixels won) with include checkboxes, a top-N
slider and a filter bar (class, minimum score, "wins pixels"); a header click sorts.

Checking/unchecking a row, moving the slider or selecting a row go to the controller, which recombines from the
cached maps; rows outside the top N (or excluded) are shown greyed. The table fits its panel's width (no
horizontal scroll bar hiding the checkboxes): the class column takes what is left and elides; a row's box
(x0, y0, x1, y1) is its tooltip and is drawn on the canvas when the row is selected.

Sorting and filtering go through :class:`~deconv_gui.ui.proposals_filter.ProposalsProxy`: the view's rows are not
the proposals' indices, so every row the panel emits or receives is a *proposal index* (the source model's row),
mapped through the proxy in one place (:meth:`ProposalsPanel._to_source` / :meth:`ProposalsPanel._to_view`).
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
    QTimer,
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
from deconv_gui.ui.proposals_filter import FilterBar, ProposalsProxy

COLUMNS = ("#", "score", "class", "area", "p", "won")
CLASS_COLUMN = 2
WON_COLUMN = 5
HEADER_TIPS = ("proposal number (✎: drawn by you); tick to use it", "Edge Box objectness", "dominant class",
               "pixels of its own mask", "mean probability over its mask",
               "pixels of the map it won: its score was the largest for the class shown there (W shows them)")
Index = QModelIndex | QPersistentModelIndex


class ProposalsModel(QAbstractTableModel):
    """Rows are :class:`ProposalSummary`; column 0 carries the include checkbox."""

    include_toggled = Signal(int, bool)

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[ProposalSummary] = []
        self.user_include = np.zeros(0, bool)
        self.effective = np.zeros(0, bool)
        self.won: np.ndarray | None = None
        """``(N,) int64`` pixels won per proposal (``deconv_gui.core.winners``), None until known."""

    def set_rows(self, rows: list[ProposalSummary], user_include: np.ndarray, effective: np.ndarray) -> None:
        self.beginResetModel()
        self.rows, self.user_include, self.effective = list(rows), user_include.copy(), effective.copy()
        if self.won is not None and len(self.won) != len(self.rows):
            self.won = None  # other proposals; the same ones keep their counts until the new ones come
        self.endResetModel()

    def set_won(self, won: np.ndarray | None) -> None:
        """Pixels won per proposal, ``(N,)`` (None: not known)."""
        self.won = None if won is None or len(won) != len(self.rows) else np.asarray(won, np.int64).copy()
        if self.rows:
            self.dataChanged.emit(self.index(0, WON_COLUMN), self.index(len(self.rows) - 1, WON_COLUMN))

    def won_at(self, row: int) -> int | None:
        return None if self.won is None else int(self.won[row])
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{HEADER_TIPS[section]} — click to sort"
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
        won = self.won_at(index.row())
        if role == Qt.ItemDataRole.DisplayRole:
            values = (
                f"{r.rank}{' ✎' if r.from_user else ''}", f"{r.score:.3f}", r.class_name, f"{r.area}",
                f"{r.probability:.2f}", "" if won is None else f"{won}",
            )
            return values[col]
        if role == Qt.ItemDataRole.CheckStateRole and col == 0:
            on = bool(self.user_include[index.row()])
            return Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ForegroundRole and not self.effective[index.row()]:
            return QColor(140, 140, 140)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (1, 3, 4, WON_COLUMN):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            why = ("excluded by you" if not self.user_include[index.row()]
                   else "outside the top N" if not self.effective[index.row()] else "used")
            origin = "drawn by you" if r.from_user else f"Edge Box score {r.score:.3f}"
            return (f"proposal {r.rank} ({origin}): box x0, y0, x1, y1 = {', '.join(map(str, r.box))}; "
                    f"{r.class_name}, {r.area} px, p={r.probability:.2f} — {why}"
                    + ("" if won is None else f"; won {won} px of the map"))
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
        self.proxy = ProposalsProxy()
        self.proxy.setSourceModel(self.model)
        self.filters = FilterBar()
        self.filters.changed.connect(self._set_filter)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(CLASS_COLUMN, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(24)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # proposals' order until a header is clicked
        self.table.setSortingEnabled(True)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setWordWrap(False)
        self.table.selectionModel().currentRowChanged.connect(
            lambda cur, _prev: self.selected.emit(self._to_source(cur)))
        for signal in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset,
                       self.proxy.layoutChanged):
            signal.connect(self._update_count)
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
        layout.addWidget(self.filters)
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
        return (self.slider.sizeHint().height() + self.filters.sizeHint().height() + 2 * self.layout().spacing()
                + table.horizontalHeader().sizeHint().height()
                + rows * table.verticalHeader().defaultSectionSize() + 2 * table.frameWidth()
                + margins.top() + margins.bottom())

    def set_won(self, won: np.ndarray | None) -> None:
        """Pixels won per proposal ``(N,)`` for the "won" column, its sort and the "wins px" filter."""
        self.model.set_won(won)

    def set_class_names(self, names: list[str]) -> None:
        self.filters.set_class_names(names)

    def is_listed(self, row: int) -> bool:
        """Whether proposal ``row`` passes the filter (is in the table)."""
        return self._to_view(row).isValid()

    def current_row(self) -> int | None:
        """The proposal index of the table's current row."""
        return self._to_source(self.table.selectionModel().currentIndex())

    def _to_source(self, index: QModelIndex | QPersistentModelIndex) -> int | None:
        """A view index → its proposal index (None when invalid)."""
        if not index.isValid():
            return None
        return self.proxy.mapToSource(self.proxy.index(index.row(), index.column())).row()

    def _to_view(self, row: int) -> QModelIndex:
        """Proposal ``row`` → its view index (invalid when the filter hides it)."""
        if not 0 <= row < self.model.rowCount():
            return QModelIndex()
        return self.proxy.mapFromSource(self.model.index(row, 0))

    def _set_filter(self, value: object) -> None:
        selected = self.current_row()
        self.proxy.set_filter(value)  # type: ignore[arg-type]
        if selected is not None and self.is_listed(selected):
            self.select_row(selected)

    def _update_count(self, *_: object) -> None:
        self.filters.set_count(self.proxy.rowCount(), self.model.rowCount())

    def select_row(self, row: int | None) -> None:
        """Select proposal ``row`` without echoing the ``selected`` signal (nothing when the filter hides it)."""
        sm = self.table.selectionModel()
        sm.blockSignals(True)
        idx = self._to_view(row) if row is not None else QModelIndex()
        if not idx.isValid():
            sm.clearSelection()
            sm.setCurrentIndex(QModelIndex(), QItemSelectionModel.SelectionFlag.Clear)
        else:
            sm.setCurrentIndex(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect
                               | QItemSelectionModel.SelectionFlag.Rows)
            self.table.scrollTo(idx)
            # Right after a model reset (a new result) the view lays its rows out later and ignores scrollTo:
            # scroll again once it has.
            later = QPersistentModelIndex(idx)
            QTimer.singleShot(0, self.table, lambda: later.isValid() and self.table.scrollTo(QModelIndex(later)))
        sm.blockSignals(False)
        self.table.viewport().update()

    def set_include(self, row: int, on: bool) -> None:
        """Tick or untick proposal ``row`` (as its checkbox does)."""
        self.model.setData(self.model.index(row, 0), on, Qt.ItemDataRole.CheckStateRole)

    def _on_slider(self, value: int) -> None:
        self._update_label()
        self.top_n_changed.emit(None if value >= self._edge_boxes else int(value))

    def _update_label(self) -> None:
        v = self.slider.value()
        self.slider_label.setText("top N: all" if v >= self._edge_boxes else f"top N: {v}")
