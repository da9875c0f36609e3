"""Per-category novelty: in each of the busiest categories, whether each event is on a new item.

A category whose items are replaced -- a new collection, or the same products under new ids --
changes little in the stream as a whole when it is a small share of the traffic, but within the
category the share of events on never-seen items jumps. The busiest ``tracked`` categories (by an
event count halved every ``half_every`` counted events) each give the share of new-item events in
every ``block`` of their own events, in log order, to an ADWIN detector (signal
``new_items:category=<id>``; blocks keep the detector's cost per event small): a jump from 55 %
to 95 % new items is found within about 100 of the category's events.

>>> import numpy as np
>>> seen = []
>>> nov = CategoryNewItems(tracked=1, block=4, half_every=8)
>>> cat = np.array([7] * 18)
>>> new = np.array([1, 0, 0, 0] * 2 + [1, 1, 0, 1] * 2 + [1, 1], dtype=bool)
>>> feed = lambda signal, shares, at: seen.append((signal, shares.tolist(), at.tolist()))
>>> nov.update(cat[:8], np.ones(8, bool), new[:8], feed, 0)
>>> nov.update(cat[8:], np.ones(10, bool), new[8:], feed, 8)
>>> seen  # tracked from the first half-life on; the last two events wait for their block
[('new_items:category=7', [0.75, 0.75], [11, 15])]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_BUCKETS = 4096

Feed = Callable[[str, np.ndarray, np.ndarray], object]  # signal, shares, log positions


class CategoryNewItems:
    """Share of new-item events per block of events, in each of the busiest categories."""

    def __init__(self, tracked: int = 8, block: int = 8, half_every: int = 10_000) -> None:
        if tracked < 1 or block < 1 or half_every < 1:
            raise ValueError("tracked, block and half_every must be >= 1")
        self.tracked = tracked
        self.block = block
        self.half_every = half_every
        self._counts = np.zeros(_BUCKETS)
        self._names = np.zeros(_BUCKETS, dtype=np.int64)  # a category id seen in each bucket
        self._open: dict[int, tuple[int, int]] = {}  # tracked bucket -> (events, new) so far
        self._since = 0

    def update(
        self, category: np.ndarray, counted: np.ndarray, new: np.ndarray, feed: Feed, first: int
    ) -> None:
        """A micro-batch's categories, counted events and new-item flags; ``feed(signal, values,
        log positions)`` gets each tracked category's events."""
        valid = counted & (category >= 0)
        if not valid.any():
            return
        # the tracked set changes exactly every ``half_every`` counted events, whatever the
        # micro-batches: split a batch where the count crosses it
        where = np.flatnonzero(valid)
        room = self.half_every - self._since
        if where.size > room:
            cut = int(where[room - 1]) + 1
            self.update(category[:cut], counted[:cut], new[:cut], feed, first)
            self.update(category[cut:], counted[cut:], new[cut:], feed, first + cut)
            return
        bucket = np.where(valid, category % _BUCKETS, -1)
        for b, (have, have_new) in self._open.items():
            idx = np.flatnonzero(bucket == b)
            if idx.size == 0:
                continue
            # blocks of the category's own events, the first one topped up from the last batch
            cum = np.cumsum(new[idx]) + have_new
            ends = np.arange(self.block - have - 1, idx.size, self.block)
            if ends.size:
                counts = np.diff(np.concatenate([[0], cum[ends]]))
                counts[0] = cum[ends[0]]
                name = f"new_items:category={int(category[idx[ends[-1]]])}"
                feed(name, counts / self.block, first + idx[ends])
                done = int(ends[-1]) + 1
                self._open[b] = (idx.size - done, int(new[idx[done:]].sum()))
            else:
                self._open[b] = (have + idx.size, int(cum[-1]))
        seen = bucket[valid]
        self._counts += np.bincount(seen, minlength=_BUCKETS)
        self._names[seen] = category[valid]
        self._since += int(seen.size)
        if self._since >= self.half_every:
            self._since = 0
            self._counts *= 0.5
            top = np.argsort(-self._counts, kind="stable")[: self.tracked]
            self._open = {
                int(b): self._open.get(int(b), (0, 0)) for b in top if self._counts[b] > 0
            }
