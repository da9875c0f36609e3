"""Forward exponential decay on event time.

Instead of shrinking every stored weight as time passes, new contributions are scaled *up* by
``2 ** ((t - t_ref) / half_life)``; relative order is what a decayed sum would give. The
reference time sits on a grid of ``GRID`` half-lives from the first event, at the last grid point
before the latest event seen. When the latest event crosses into a new grid cell, stored weights
are rescaled once by an exact power of two (``rebase``). So updates stay O(batch), nothing
overflows, and the stored values depend only on the events, not on how they were batched.

>>> clock = ForwardDecay(half_life=10.0)
>>> clock.rebase(np.array([100.0]))
1.0
>>> clock.weights(np.array([100.0, 110.0, 90.0])).tolist()
[1.0, 2.0, 0.5]
>>> clock.decayed(np.array([4.0]), at=120.0).tolist()  # a weight of 4 at t_ref, 20 s later
[1.0]
"""

from __future__ import annotations

import math

import numpy as np

GRID = 16  # half-lives between reference points


class ForwardDecay:
    """Event-time exponential decay with half-life ``half_life`` seconds (``inf`` = no decay)."""

    def __init__(self, half_life: float) -> None:
        if not half_life > 0:
            raise ValueError(f"half_life must be > 0 seconds, got {half_life!r}")
        self.half_life = float(half_life)
        self.t0: float | None = None
        self.cell = 0

    @property
    def t_ref(self) -> float | None:
        if self.t0 is None:
            return None
        return self.t0 + self.cell * GRID * self.half_life

    def rebase(self, ts: np.ndarray) -> float:
        """Prepare for events at times ``ts``; returns the factor to multiply stored weights by."""
        if ts.size == 0 or math.isinf(self.half_life):
            return 1.0
        if self.t0 is None:
            self.t0 = float(ts.min())
        cell = int((float(ts.max()) - self.t0) // (GRID * self.half_life))
        if cell <= self.cell:
            return 1.0
        shift = cell - self.cell
        self.cell = cell
        return float(2.0 ** (-GRID * shift))

    def weights(self, ts: np.ndarray) -> np.ndarray:
        """Scale of a contribution made at each time in ``ts``."""
        t_ref = self.t_ref
        if t_ref is None or math.isinf(self.half_life):
            return np.ones_like(ts, dtype=np.float64)
        return np.exp2((ts - t_ref) / self.half_life)

    def decayed(self, stored: np.ndarray, at: float) -> np.ndarray:
        """Stored weights as their decayed value at time ``at``."""
        t_ref = self.t_ref
        if t_ref is None or math.isinf(self.half_life):
            return stored
        return stored * 2.0 ** (-(at - t_ref) / self.half_life)

    def state(self) -> np.ndarray:
        """``[t0, cell, 1]``, or zeros before the first event."""
        return np.asarray([0.0, 0.0, 0.0] if self.t0 is None else [self.t0, self.cell, 1.0])

    def load(self, value: np.ndarray) -> None:
        self.t0 = float(value[0]) if value[2] else None
        self.cell = int(value[1])


class EventCount:
    """The time axis of an event-count decay: event ``k`` learned is at "time" ``k``.

    A model decayed on event count (``half_life_events``) feeds these times to its
    ``ForwardDecay`` instead of event times: "recent" then means the last so many events, however
    long they took to arrive (a busy shop and a quiet one forget at the same pace per event).

    >>> count = EventCount()
    >>> count.times(3).tolist(), count.times(2).tolist()
    ([0.0, 1.0, 2.0], [3.0, 4.0])
    """

    def __init__(self) -> None:
        self.seen = 0

    def times(self, n: int) -> np.ndarray:
        """The times of the next ``n`` events learned (and counts them)."""
        out = np.arange(self.seen, self.seen + n, dtype=np.float64)
        self.seen += n
        return out
