"""Change detectors on live signals: river's ADWIN and Page-Hinkley, with adaptive thresholds.

Neither algorithm is re-implemented here; these wrappers only decide what the detectors see and
make their thresholds follow the signal's own variability:

- ``Adwin`` feeds raw values to ``river.drift.ADWIN`` (a change counts only in ``direction``:
  the window's mean after the cut is compared with the mean before). ADWIN's cut test already
  adapts: two sub-windows are declared different when their means differ by more than
  ``sqrt(2 / m * var_W * ln(2 / delta')) + 2 / (3 m) * ln(2 / delta')``, where ``var_W`` is the
  variance of the current window, so a noisy signal needs a larger gap than a steady one.
  ``delta`` is the sensitivity (smaller = fewer, later alarms).
- ``PageHinkley`` feeds ``river.drift.PageHinkley`` *standardised* values
  ``z = (x - mean) / std``, where mean and std are a slow exponential moving estimate of the
  signal (half-life ``memory`` samples), learned during a ``warmup`` and frozen while a change is
  building up. So ``threshold`` and ``delta`` are in units of the signal's recent standard
  deviation: the raw threshold is ``threshold * std``, wide for noisy signals and tight for
  quiet ones (``std`` is at least ``min_std``: a rate over n events is not known better than
  about 1/n, so a signal that was flat in the warm-up does not alarm on its first blip).
  ``direction`` says which way counts ("down" for hit rates, "up" for distances).

After an alarm both re-learn the signal from scratch (ADWIN drops the old sub-window itself).

Snapshots hold no detector objects (they are numeric arrays, never pickles): each detector keeps
the values it was fed since its last reset, the latest ``HISTORY`` of them, and a restored
detector is a new one fed those again (``inputs`` / ``replay``). Page-Hinkley is then exactly
where it was (it resets at every alarm, and its warm-up and drift build-up fit in the history);
ADWIN holds about the same window (its own is at most ``HISTORY`` values long in practice).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> det = PageHinkley(threshold=15.0, direction="down")
>>> stream = np.concatenate([rng.normal(0.5, 0.05, 400), rng.normal(0.3, 0.05, 100)])
>>> alarms = [i for i, x in enumerate(stream) if det.update(float(x))]
>>> len(alarms), 400 <= alarms[0] < 420
(1, True)
"""

from __future__ import annotations

import abc
import math
from collections import deque
from typing import Literal

import numpy as np
from river import drift as river_drift

Direction = Literal["up", "down", "both"]
HISTORY = 4096  # values kept per detector for snapshots (see the module notes)


class Detector(abc.ABC):
    """One change detector on one real-valued signal."""

    kind: str = "detector"

    @abc.abstractmethod
    def update(self, value: float) -> bool:
        """Feed one value; True when a change is detected at this value."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget everything seen (after an alarm, or on demand)."""

    _inputs: deque[float]

    def _remember(self, value: float) -> None:
        self._inputs.append(value)

    def inputs(self) -> np.ndarray:
        """The values fed since the last reset (the latest ``HISTORY``), oldest first."""
        return np.asarray(self._inputs, dtype=np.float64)

    def replay(self, values: np.ndarray) -> None:
        """Start afresh and feed ``values`` (``inputs`` of a saved detector); alarms during the
        replay are not reported (they were, when the values first came)."""
        self.reset()
        for value in values.tolist():
            self.update(value)


class Adwin(Detector):
    """ADWIN (Bifet and Gavaldà, 2007) from river; ``delta`` is the confidence of a cut."""

    kind = "adwin"

    def __init__(
        self,
        delta: float = 0.002,
        direction: Direction = "both",
        clock: int = 32,
        grace_period: int = 30,
    ) -> None:
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, got {direction!r}")
        self.delta = delta
        self.direction = direction
        self.clock = clock
        self.grace_period = grace_period
        self.reset()

    def reset(self) -> None:
        self._adwin = river_drift.ADWIN(
            delta=self.delta, clock=self.clock, grace_period=self.grace_period
        )
        self._inputs = deque(maxlen=HISTORY)

    def update(self, value: float) -> bool:
        self._remember(value)
        before = self._adwin.estimation
        self._adwin.update(value)
        if not self._adwin.drift_detected:
            return False
        # ADWIN dropped the older sub-window: the mean moved the way that matters, or not
        after = self._adwin.estimation
        return self.direction == "both" or (after < before) == (self.direction == "down")

    @property
    def estimation(self) -> float:
        """Mean of the current window."""
        return float(self._adwin.estimation)


class PageHinkley(Detector):
    """Page-Hinkley (Page, 1954) from river on standardised values (see the module notes)."""

    kind = "page_hinkley"

    def __init__(
        self,
        threshold: float = 15.0,
        delta: float = 0.5,
        direction: Direction = "both",
        warmup: int = 30,
        memory: float = 500.0,
        min_std: float = 0.0,
    ) -> None:
        if threshold <= 0 or delta < 0 or warmup < 2 or memory < 1:
            raise ValueError("threshold must be > 0, delta >= 0, warmup >= 2, memory >= 1")
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, got {direction!r}")
        self.threshold = threshold
        self.delta = delta
        self.direction = direction
        self.warmup = warmup
        self.memory = memory
        self.min_std = min_std
        self.reset()

    def reset(self) -> None:
        self._ph = river_drift.PageHinkley(
            min_instances=1,
            delta=self.delta,
            threshold=self.threshold,
            alpha=1.0,  # no fading: a faded sum wanders as far as the threshold when stationary
            mode=self.direction,
        )
        self._n = 0
        self._mean = 0.0
        self._var = 0.0
        self._m = 0
        self._inputs = deque(maxlen=HISTORY)

    @property
    def std(self) -> float:
        """The signal's current standard deviation estimate (the threshold's unit)."""
        return math.sqrt(self._var)

    def update(self, value: float) -> bool:
        self._remember(value)
        self._n += 1
        d = value - self._mean
        if self._n <= self.warmup:  # learn the level and spread first (Welford)
            self._mean += d / self._n
            self._var += (d * (value - self._mean) - self._var) / self._n
            return False
        std = max(math.sqrt(self._var), self.min_std, 1e-3 * max(abs(self._mean), 1e-6))
        z = (value - self._mean) / std
        self._ph.update(z)
        if self._ph.drift_detected:
            self.reset()
            return True
        if abs(z) < 3.0:  # keep learning the spread, not from the outliers of a change
            self._m += 1
            a = max(1.0 / (self.warmup + self._m), 1.0 - 0.5 ** (1.0 / self.memory))
            self._mean += a * d
            self._var = (1.0 - a) * (self._var + a * d * d)
        return False
