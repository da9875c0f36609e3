"""Session-based kNN (SKNN) and its position-weighted variant (V-SKNN), incremental.

For the current session ``s`` (its distinct items so far), the possible neighbours are the
``sample`` (1,000) most recent other sessions sharing at least one item with it (recency = time
of their last event). Their similarity to ``s`` is cosine on binary item sets,
``|s & n| / sqrt(|s| |n|)``; the ``neighbours`` (100) most similar are kept, and each item
scores the sum of the similarities of the kept sessions that contain it (Jannach & Ludewig
2017; Ludewig et al. 2021). V-SKNN weights the current session's items by position, linearly:
the ``p``-th of ``|s|`` distinct items (ordered by their last occurrence) counts ``p / |s|``, so
the similarity becomes ``sum_{i in s & n} w_i / sqrt(|s| |n|)``.

Sessions are the evaluator's users (``user_id`` = session id in the session protocol).

>>> from freshrec.events import LoggedEvent
>>> knn = SessionKNN()
>>> stream = [("s1", "a"), ("s1", "b"), ("s2", "a"), ("s2", "c"), ("s2", "d"), ("s3", "a")]
>>> for t, (session, item) in enumerate(stream):
...     knn.learn(LoggedEvent(0, session, item, float(t)))
>>> knn.recommend("s3", 5, exclude={"a"})  # s1 ({a, b}) is closer to {a} than s2 ({a, c, d})
['b', 'c', 'd']
"""

from __future__ import annotations

import itertools

import numpy as np

from freshrec.eval.adapters import register
from freshrec.eval.baselines.base import Baseline
from freshrec.events import LoggedEvent
from freshrec.state.arrays import grow

_NONE = np.zeros(0, dtype=np.int64)


class SessionKNN(Baseline):
    """SKNN (``decay=False``) or V-SKNN (``decay=True``) over the sessions seen so far."""

    name = "sknn"

    def __init__(self, neighbours: int = 100, sample: int = 1000, decay: bool = False) -> None:
        super().__init__()
        self.neighbours = neighbours
        self.sample = sample
        self.decay = decay
        self.item_sessions: list[list[int]] = []  # sessions containing each item, first-touch
        self.last_ts = np.zeros(0, dtype=np.float64)

    def _learn(self, u: int, i: int, event: LoggedEvent) -> None:
        self.last_ts = grow(self.last_ts, u + 1)
        self.last_ts[u] = event.ts
        while len(self.item_sessions) <= i:
            self.item_sessions.append([])
        if i not in self.history_set[u]:
            self.item_sessions[i].append(u)

    def _current(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """The session's distinct items and their weights (1, or linear position decay)."""
        recent = self.recent_items(u, len(self.history[u]))[::-1]  # oldest first
        items = np.asarray(recent, dtype=np.int64)
        if not self.decay:
            return items, np.ones(items.shape[0])
        return items, np.arange(1, items.shape[0] + 1) / items.shape[0]

    def _scores(self, u: int | None) -> tuple[np.ndarray | None, np.ndarray]:
        if u is None or not self.history[u]:
            return _NONE, np.zeros(0)
        items, weights = self._current(u)
        lists = [self.item_sessions[i] for i in items.tolist()]
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        cand = np.fromiter(
            itertools.chain.from_iterable(lists), dtype=np.int64, count=int(lengths.sum())
        )
        w = np.repeat(weights, lengths)
        other = cand != u
        cand, w = cand[other], w[other]
        if cand.size == 0:
            return _NONE, np.zeros(0)
        sessions, inverse = np.unique(cand, return_inverse=True)
        overlap = np.bincount(inverse, weights=w, minlength=sessions.shape[0])
        if sessions.shape[0] > self.sample:  # the most recent possible neighbours
            recent = np.argpartition(-self.last_ts[sessions], self.sample - 1)[: self.sample]
            sessions, overlap = sessions[recent], overlap[recent]
        sizes = np.fromiter(
            (len(self.history[s]) for s in sessions.tolist()),
            dtype=np.float64,
            count=sessions.shape[0],
        )
        sims = overlap / np.sqrt(items.shape[0] * sizes)
        if sessions.shape[0] > self.neighbours:
            best = np.argpartition(-sims, self.neighbours - 1)[: self.neighbours]
            sessions, sims = sessions[best], sims[best]
        hist = [self.history[s] for s in sessions.tolist()]
        counts = np.fromiter(map(len, hist), dtype=np.int64, count=len(hist))
        flat = np.fromiter(
            itertools.chain.from_iterable(hist), dtype=np.int64, count=int(counts.sum())
        )
        found, where = np.unique(flat, return_inverse=True)
        scores = np.bincount(where, weights=np.repeat(sims, counts), minlength=found.shape[0])
        return found, scores


register("sknn")(lambda seed=0, settings=None: SessionKNN())
register("vsknn")(lambda seed=0, settings=None: SessionKNN(decay=True))

__all__ = ["SessionKNN"]
