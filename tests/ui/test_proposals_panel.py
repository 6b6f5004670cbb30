"""The proposals panel alone: rows ↔ proposal indices through its sort/filter proxy, and scrolling to a
selection made right after new rows arrived."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from deconv_gui.document.session import ProposalSummary


def rows(n: int) -> list[ProposalSummary]:
    return [ProposalSummary(i + 1, 0.9 - 0.01 * i, (0, 0, 4, 4), 1 + i % 2, f"c{1 + i % 2}", 10 + i, 0.5, False)
            for i in range(n)]


def test_sorted_view_rows_still_name_their_proposals(qtbot) -> None:
    from deconv_gui.ui.proposals_panel import ProposalsPanel

    panel = ProposalsPanel()
    qtbot.addWidget(panel)
    panel.set_proposals(rows(8), np.ones(8, bool), np.ones(8, bool), None)
    panel.set_won(np.array([5, 0, 7, 1, 0, 3, 9, 2]))
    panel.table.sortByColumn(5, Qt.SortOrder.DescendingOrder)  # by pixels won
    proxy = panel.proxy
    assert [proxy.index(r, 5).data() for r in range(8)] == ["9", "7", "5", "3", "2", "1", "0", "0"]
    with qtbot.waitSignal(panel.selected) as picked:
        panel.table.selectRow(0)
    assert picked.args == [6] and panel.current_row() == 6
    with qtbot.waitSignal(panel.include_toggled) as toggled:
        proxy.setData(proxy.index(1, 0), Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    assert toggled.args == [2, False] and not panel.model.user_include[2]
    panel.select_row(3)  # a proposal index: its view row is where proposal 3 (1 px won) sorted to
    assert panel.table.selectionModel().currentIndex().row() == 5
    panel.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # back to the proposals' order
    assert [proxy.index(r, 0).data() for r in range(8)][:3] == ["1", "2", "3"]


def test_selecting_right_after_new_rows_scrolls_to_the_row(qtbot) -> None:
    from deconv_gui.ui.proposals_panel import ProposalsPanel

    panel = ProposalsPanel()
    qtbot.addWidget(panel)
    panel.resize(400, 260)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_proposals(rows(50), np.ones(50, bool), np.ones(50, bool), None)
    panel.select_row(40)  # e.g. a Ctrl-click on the canvas as a recombined result lands
    table = panel.table
    qtbot.waitUntil(lambda: table.viewport().rect().contains(table.visualRect(table.currentIndex()).center()),
                    timeout=5000)
    assert panel.current_row() == 40
