"""Which proposals the proposals table lists, and its sort keys — plain data, bound to widgets by the UI."""

from __future__ import annotations

from dataclasses import dataclass

from deconv_gui.document.session import ProposalSummary


@dataclass(frozen=True)
class ProposalFilter:
    """The table's filter: ``class_id`` the dominant class to keep (None: all), ``min_score`` the lowest
    objectness shown (drawn boxes score 1.0), ``contributing_only`` keep only proposals that won pixels of the
    map (see :mod:`deconv_gui.core.winners`; until the winners are known every proposal counts as contributing)."""

    class_id: int | None = None
    min_score: float = 0.0
    contributing_only: bool = False

    @property
    def active(self) -> bool:
        return self.class_id is not None or self.min_score > 0.0 or self.contributing_only

    def accepts(self, row: ProposalSummary, won: int | None) -> bool:
        """Whether ``row`` (with ``won`` pixels won, None: not known yet) is listed."""
        if self.class_id is not None and row.class_id != self.class_id:
            return False
        if row.score < self.min_score:
            return False
        return not (self.contributing_only and won is not None and won <= 0)


SORT_KEYS = ("rank", "score", "class", "area", "probability", "won")
"""What each table column sorts by (the columns of ``deconv_gui.ui.proposals_panel.COLUMNS``)."""


def sort_key(row: ProposalSummary, won: int | None, column: int) -> float | str:
    """``row``'s key for sorting by ``column``: numbers, the class name for the class column; proposals whose
    pixels won are not known yet sort as -1."""
    key = SORT_KEYS[column]
    if key == "class":
        return row.class_name.lower()
    if key == "won":
        return -1 if won is None else int(won)
    return float(getattr(row, key))
