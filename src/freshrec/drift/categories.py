"""Per-category novelty: in each of the busiest categories, whether each event is on a new item.

A category whose items are replaced -- a new collection, or the same products under new ids --
changes little in the stream as a whole when it is a small share of the traffic, but within the
category the share of events on never-seen items jumps. The busiest ``tracked`` categories (by an
event count halved every ``half_every`` counted events) each give their events' new-item flags,
in log order, to an ADWIN detector (signal ``new_items:category=<id>``): ADWIN on the 0/1 stream
finds a jump from 55 % to 95 % new items within about 70 of the category's events (one ADWIN
update per event of a tracked category, about 2 µs; averaging blocks of events first was
tried and lost most of the power: ADWIN's bound keeps a term for the values' full range).

>>> import numpy as np
>>> seen = []
>>> nov = CategoryNewItems(tracked=1, half_every=8)
>>> cat = np.array([7] * 16)
>>> new = np.array([1, 0, 0, 0] * 2 + [1, 1, 1, 1] * 2, dtype=bool)
>>> feed = lambda signal, flags, at: seen.append((signal, flags.tolist(), at.tolist()))
>>> nov.update(cat[:8], np.ones(8, bool), new[:8], feed, 0)
>>> nov.update(cat[8:], np.ones(8, bool), new[8:], feed, 8)
>>> seen  # tracked from the first half-life on
[('new_items:category=7', [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [8, 9, 10, 11, 12, 13, 14, 15])]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_BUCKETS = 4096

Feed = Callable[[str, np.ndarray, np.ndarray], object]  # signal, 0/1 values, log positions


class CategoryNewItems:
    """Each event's new-item flag, in each of the busiest categories, for its own detector."""

    def __init__(self, tracked: int = 8, half_every: int = 10_000) -> None:
        if tracked < 1 or half_every < 1:
            raise ValueError("tracked >= 1 and half_every >= 1")
        self.tracked = tracked
        self.half_every = half_every
        self._counts = np.zeros(_BUCKETS)
        self._names = np.zeros(_BUCKETS, dtype=np.int64)  # a category id seen in each bucket
        self._watched: set[int] = set()
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
        for b in self._watched:
            idx = np.flatnonzero(bucket == b)
            if idx.size:
                name = int(category[idx[-1]])
                feed(f"new_items:category={name}", new[idx].astype(np.float64), first + idx)
        seen = bucket[valid]
        self._counts += np.bincount(seen, minlength=_BUCKETS)
        self._names[seen] = category[valid]
        self._since += int(seen.size)
        if self._since >= self.half_every:
            self._since = 0
            self._counts *= 0.5
            top = np.argsort(-self._counts, kind="stable")[: self.tracked]
            self._watched = {int(b) for b in top if self._counts[b] > 0}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {
            "counts": self._counts.copy(),
            "names": self._names.copy(),
            "watched": np.asarray(sorted(self._watched), dtype=np.int64),
            "since": np.asarray([self._since], dtype=np.int64),
        }

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self._counts = arrays["counts"].astype(np.float64, copy=True)
        self._names = arrays["names"].astype(np.int64, copy=True)
        self._watched = {int(b) for b in arrays["watched"].tolist()}
        self._since = int(arrays["since"][0])
