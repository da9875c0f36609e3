"""Item-kNN: cosine similarity of items over users' histories, updated per event.

``C[i, j]`` counts the users who interacted with both ``i`` and ``j`` and ``n[i]`` the users who
interacted with ``i``; ``sim(i, j) = C[i, j] / sqrt(n[i] n[j])``. When a user meets a new item
``j``, ``C[i, j]`` and ``C[j, i]`` grow by one for every item ``i`` of their history: the counts
are always exactly those of the histories so far. A user's score of item ``c`` is the sum of
``sim(r, c)`` over their ``last`` (10) most recent distinct items ``r``.

>>> from freshrec.events import LoggedEvent
>>> knn = ItemKNN()
>>> stream = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x"), ("c", "z"), ("d", "x")]
>>> for t, (user, item) in enumerate(stream):
...     knn.learn(LoggedEvent(0, user, item, float(t)))
>>> knn.recommend("d", 2, exclude={"x"})  # y shares 2 users with x, z one
['y', 'z']
"""

from __future__ import annotations

import numpy as np

from freshrec.eval.adapters import register
from freshrec.eval.baselines.base import Baseline
from freshrec.eval.baselines.pairs import PairCounts
from freshrec.events import LoggedEvent
from freshrec.state.arrays import grow


class ItemKNN(Baseline):
    """Cosine item-item similarity on co-occurrence in users' histories."""

    name = "itemknn"

    def __init__(self, last: int = 10) -> None:
        super().__init__()
        self.last = last
        self.pairs = PairCounts()
        self.item_users = np.zeros(0, dtype=np.float64)

    def _learn(self, u: int, i: int, event: LoggedEvent) -> None:
        self.item_users = grow(self.item_users, i + 1)
        if i in self.history_set[u]:
            return
        self.item_users[i] += 1.0
        hist = np.asarray(self.history[u], dtype=np.int32)
        if hist.size:
            j = np.full(hist.shape[0], i, dtype=np.int32)
            self.pairs.add(np.concatenate([hist, j]), np.concatenate([j, hist]))

    def _scores(self, u: int | None) -> tuple[np.ndarray | None, np.ndarray]:
        n = self.n_items
        if u is None or not self.history[u]:
            return None, np.full(n, -np.inf)
        sources = np.asarray(self.recent_items(u, self.last), dtype=np.int32)
        norm = np.sqrt(np.maximum(self.item_users[:n], 1.0))
        out = np.zeros(n)
        self.pairs.accumulate(sources, 1.0 / norm[sources], out)
        out /= norm
        out[out <= 0] = -np.inf
        return None, out


register("itemknn")(lambda seed=0, settings=None: ItemKNN())

__all__ = ["ItemKNN"]
