"""Successor counts ("AR/SR-style" sequential rules): what follows the last item.

Each time a user (or session) goes from item ``a`` straight to a different item ``b``,
``count[a, b]`` grows by one. Recommendations for a user are the most frequent successors of
their last item; a user whose last item has no successor yet gets none.

>>> from freshrec.events import LoggedEvent
>>> succ = Successor()
>>> stream = [("s1", "x"), ("s1", "y"), ("s2", "x"), ("s2", "y"), ("s3", "x"), ("s3", "z"),
...           ("s4", "x")]
>>> for t, (session, item) in enumerate(stream):
...     succ.learn(LoggedEvent(0, session, item, float(t)))
>>> succ.recommend("s4", 5, exclude=set())
['y', 'z']
"""

from __future__ import annotations

import numpy as np

from freshrec.eval.adapters import register
from freshrec.eval.baselines.base import Baseline
from freshrec.eval.baselines.pairs import PairCounts
from freshrec.events import LoggedEvent

_NONE = np.zeros(0, dtype=np.int32)


class Successor(Baseline):
    """Most frequent next items after the user's last item."""

    name = "successor"

    def __init__(self) -> None:
        super().__init__()
        self.pairs = PairCounts()

    def _learn(self, u: int, i: int, event: LoggedEvent) -> None:
        seq = self.sequence[u]
        if seq and seq[-1] != i:
            self.pairs.add(np.asarray([seq[-1]]), np.asarray([i]))

    def _scores(self, u: int | None) -> tuple[np.ndarray | None, np.ndarray]:
        if u is None or not self.sequence[u]:
            return _NONE, np.zeros(0)
        return self.pairs.row(self.sequence[u][-1])


register("successor")(lambda seed=0, settings=None: Successor())

__all__ = ["Successor"]
