"""``Marks``: the stamped scratch arrays of co-visitation's aggregation and popularity's
top-list merge."""

from __future__ import annotations

from freshrec.state.arrays import Marks


def test_marks_give_fresh_stamps_and_grow_with_the_items() -> None:
    marks = Marks(arrays=2)
    stamp, (mark, slot) = marks.take(10)
    assert mark.shape[0] >= 10 and slot.shape == mark.shape
    mark[3] = stamp
    again, (same, _) = marks.take(10)
    assert same is mark and again != stamp and not (same == again).any()  # nothing cleared
    bigger, (grown, grown_slot) = marks.take(mark.shape[0] + 1)  # items outgrew them: zeroed
    assert grown.shape[0] > mark.shape[0] and grown_slot.shape == grown.shape
    assert bigger == 1 and not grown.any()
    marks.stamp = Marks.STAMP_MAX  # stamps ran out: new arrays, stamps start again
    last, (fresh, _) = marks.take(5)
    assert last == 1 and fresh is not grown and not fresh.any()
