"""The proposals table's sort/filter proxy and the filter bar above it (class, minimum score, "wins pixels").

The proxy sits between :class:`~deconv_gui.ui.proposals_panel.ProposalsModel` (row = proposal index) and the
view: sorting by a header and filtering reorder/hide rows, and the panel maps view rows back to proposal indices
(``mapToSource``) for the include checkboxes and the selection. The filter itself is
:class:`~deconv_gui.document.proposal_filter.ProposalFilter` (Qt-free).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

from deconv_gui.document.proposal_filter import ProposalFilter, sort_key

if TYPE_CHECKING:
    from deconv_gui.ui.proposals_panel import ProposalsModel

Index = QModelIndex | QPersistentModelIndex


class ProposalsProxy(QSortFilterProxyModel):
    """Sorts by :func:`sort_key` and lists the rows a :class:`ProposalFilter` accepts."""

    def __init__(self) -> None:
        super().__init__()
        self.filter = ProposalFilter()
        self.setDynamicSortFilter(True)  # a new "won" count re-sorts and re-filters

    def set_filter(self, value: ProposalFilter) -> None:
        if value == self.filter:
            return
        if hasattr(self, "beginFilterChange"):  # Qt ≥ 6.9; invalidateFilter is deprecated there
            self.beginFilterChange()
            self.filter = value
            self.endFilterChange()
        else:  # pragma: no cover - older Qt
            self.filter = value
            self.invalidateFilter()

    def _source(self) -> ProposalsModel:
        return self.sourceModel()  # type: ignore[return-value]

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:  # noqa: N802 - Qt API
        model = self._source()
        return self.filter.accepts(model.rows[source_row], model.won_at(source_row))

    def lessThan(self, left: Index, right: Index) -> bool:  # noqa: N802 - Qt API
        model, column = self._source(), left.column()
        a = sort_key(model.rows[left.row()], model.won_at(left.row()), column)
        b = sort_key(model.rows[right.row()], model.won_at(right.row()), column)
        return (a, left.row()) < (b, right.row())  # ties keep the proposals' order


class FilterBar(QWidget):
    """A class box ("all classes" + the model's names), a minimum-score box and a "wins pixels" tick, in one row
    narrow enough for the proposals panel's minimum width; ``changed`` carries the new :class:`ProposalFilter`."""

    changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.classes = QComboBox()
        self.classes.setToolTip("list only the proposals whose dominant class is this one")
        self.classes.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.classes.setMinimumContentsLength(7)
        self.classes.addItem("all classes", None)
        self.min_score = QDoubleSpinBox()
        self.min_score.setRange(0.0, 1.0)
        self.min_score.setSingleStep(0.05)
        self.min_score.setDecimals(2)
        self.min_score.setPrefix("≥ ")
        self.min_score.setToolTip("list only the proposals with at least this Edge Box score (drawn boxes: 1)")
        self.contributing = QCheckBox("wins px")
        self.contributing.setToolTip("list only the proposals that contribute to the map: they won pixels "
                                     "(theirs was the largest score for the class shown there)")
        self.count = QLabel()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.classes, 1)
        row.addWidget(self.min_score)
        row.addWidget(self.contributing)
        row.addWidget(self.count)
        self.classes.currentIndexChanged.connect(self._emit)
        self.min_score.valueChanged.connect(self._emit)
        self.contributing.toggled.connect(self._emit)

    def value(self) -> ProposalFilter:
        return ProposalFilter(self.classes.currentData(), float(self.min_score.value()),
                              self.contributing.isChecked())

    def set_class_names(self, names: list[str]) -> None:
        """Offer ``names`` (class id = position); keeps the chosen class when it still exists."""
        if [self.classes.itemText(i) for i in range(1, self.classes.count())] == list(names):
            return
        chosen = self.classes.currentText()
        self.classes.blockSignals(True)
        self.classes.clear()
        self.classes.addItem("all classes", None)
        for i, name in enumerate(names):
            self.classes.addItem(name, i)
        self.classes.setCurrentIndex(max(0, self.classes.findText(chosen)))
        self.classes.blockSignals(False)
        self._emit()

    def set_count(self, shown: int, total: int) -> None:
        """ "12/50" when the filter hides rows, nothing otherwise."""
        self.count.setText(f"{shown}/{total}" if shown != total else "")
        self.count.setToolTip(f"{shown} of {total} proposals listed")

    def _emit(self, *_: object) -> None:
        self.changed.emit(self.value())
