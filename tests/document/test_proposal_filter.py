"""The proposals table's filter and sort keys, without Qt."""

from deconv_gui.document.proposal_filter import ProposalFilter, sort_key
from deconv_gui.document.session import ProposalSummary


def row(rank: int, score: float, cls: int, name: str, area: int = 10) -> ProposalSummary:
    return ProposalSummary(rank, score, (0, 0, 4, 4), cls, name, area, 0.5, False)


def test_filter_by_class_score_and_contribution() -> None:
    car, road = row(1, 0.9, 2, "Car"), row(2, 0.3, 1, "Road")
    assert ProposalFilter().accepts(car, 0) and not ProposalFilter().active
    by_class = ProposalFilter(class_id=2)
    assert by_class.active and by_class.accepts(car, None) and not by_class.accepts(road, None)
    by_score = ProposalFilter(min_score=0.5)
    assert by_score.accepts(car, None) and not by_score.accepts(road, None)
    contributing = ProposalFilter(contributing_only=True)
    assert contributing.accepts(car, 12) and not contributing.accepts(car, 0)
    assert contributing.accepts(car, None)  # winners not known yet: listed


def test_sort_keys() -> None:
    a, b = row(1, 0.9, 2, "car", area=5), row(2, 0.3, 1, "Bus", area=50)
    assert sorted([a, b], key=lambda r: sort_key(r, None, 2)) == [b, a]  # class, case-insensitive
    assert sorted([a, b], key=lambda r: sort_key(r, None, 3)) == [a, b]  # area
    assert sort_key(a, None, 5) == -1 and sort_key(a, 7, 5) == 7 and sort_key(b, None, 1) == 0.3
