"""Forward exponential decay on event time.

Instead of shrinking every stored weight as time passes, new contributions are scaled *up* by
``2 ** ((t - t_ref) / half_life)``; relative order is what a decayed sum would give. When the
scale would grow too large the reference time moves forward and the stored weights are rescaled
once (``rebase``), so updates stay O(batch) and no value overflows.

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

_MAX_HALF_LIVES = 40.0


class ForwardDecay:
    """Event-time exponential decay with half-life ``half_life`` seconds (``inf`` = no decay)."""

    def __init__(self, half_life: float) -> None:
        if not half_life > 0:
            raise ValueError(f"half_life must be > 0 seconds, got {half_life!r}")
        self.half_life = float(half_life)
        self.t_ref: float | None = None

    def rebase(self, ts: np.ndarray) -> float:
        """Prepare for events at times ``ts``; returns the factor to multiply stored weights by."""
        if ts.size == 0 or math.isinf(self.half_life):
            return 1.0
        latest = float(ts.max())
        if self.t_ref is None:
            self.t_ref = latest
            return 1.0
        ahead = (latest - self.t_ref) / self.half_life
        if ahead <= _MAX_HALF_LIVES:
            return 1.0
        self.t_ref = latest
        return float(2.0 ** -ahead)

    def weights(self, ts: np.ndarray) -> np.ndarray:
        """Scale of a contribution made at each time in ``ts``."""
        if self.t_ref is None or math.isinf(self.half_life):
            return np.ones_like(ts, dtype=np.float64)
        return np.exp2((ts - self.t_ref) / self.half_life)

    def decayed(self, stored: np.ndarray, at: float) -> np.ndarray:
        """Stored weights as their decayed value at time ``at``."""
        if self.t_ref is None or math.isinf(self.half_life):
            return stored
        return stored * 2.0 ** (-(at - self.t_ref) / self.half_life)

    def state(self) -> np.ndarray:
        """``[t_ref, 1]``, or ``[0, 0]`` before the first event."""
        return np.asarray([0.0, 0.0] if self.t_ref is None else [self.t_ref, 1.0])

    def load(self, value: np.ndarray) -> None:
        self.t_ref = float(value[0]) if value[1] else None
