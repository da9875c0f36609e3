"""Popularity baselines: plain interaction counts, and counts decayed on event time.

``pop`` ranks items by how many events they had so far. ``pop-decayed`` lets each event's
contribution halve every ``half_life_seconds`` of event time (forward decay: a new event adds
``2 ** ((t - t0) / half_life)``, rescaled now and then so nothing overflows).

>>> from freshrec.events import LoggedEvent
>>> pop = Popularity()
>>> for t, item in enumerate(["a", "b", "b", "c"]):
...     pop.learn(LoggedEvent(0, f"u{t}", item, float(t)))
>>> pop.recommend("u0", 2, exclude={"a"})
['b', 'c']
>>> dec = DecayedPopularity(half_life_seconds=1.0)
>>> for t, item in [(0, "a"), (0, "a"), (0, "a"), (5, "b")]:
...     dec.learn(LoggedEvent(0, "u", item, float(t)))
>>> dec.recommend("u", 2, exclude=set())  # b's one event is 5 half-lives newer than a's three
['b', 'a']
"""

from __future__ import annotations

import numpy as np

from freshrec.eval.adapters import register
from freshrec.eval.baselines.base import Baseline
from freshrec.events import LoggedEvent
from freshrec.state.arrays import grow

_RESCALE_AT = 2.0**60


class Popularity(Baseline):
    """Items by number of events so far (every event type counts 1)."""

    name = "pop"

    def __init__(self) -> None:
        super().__init__()
        self.counts = np.zeros(0, dtype=np.float64)

    def _weight(self, event: LoggedEvent) -> float:
        return 1.0

    def _learn(self, u: int, i: int, event: LoggedEvent) -> None:
        self.counts = grow(self.counts, i + 1)
        self.counts[i] += self._weight(event)

    def _scores(self, u: int | None) -> tuple[np.ndarray | None, np.ndarray]:
        return None, self.counts[: self.n_items]


class DecayedPopularity(Popularity):
    """Items by event count with exponential decay of ``half_life_seconds`` (event time)."""

    name = "pop-decayed"

    def __init__(self, half_life_seconds: float = 86_400.0) -> None:
        if not half_life_seconds > 0:
            raise ValueError(f"half_life_seconds must be > 0, got {half_life_seconds!r}")
        super().__init__()
        self.half_life_seconds = half_life_seconds
        self.t0: float | None = None

    def _weight(self, event: LoggedEvent) -> float:
        if self.t0 is None:
            self.t0 = event.ts
        w = 2.0 ** ((event.ts - self.t0) / self.half_life_seconds)
        if w > _RESCALE_AT:  # move the reference time forward; order is unchanged
            self.counts /= w
            self.t0 = event.ts
            w = 1.0
        return w


register("pop")(lambda seed=0, settings=None: Popularity())
register("pop-decayed")(lambda seed=0, settings=None: DecayedPopularity())

__all__ = ["DecayedPopularity", "Popularity"]
