"""The record of every drift detection and what was done about it.

>>> record = DriftRecord(max_events=2)
>>> for at in (10, 20, 30):
...     _ = record.add(DriftEvent("adwin", "hit_rate:ensemble", at, 1e9 + at, "none"))
>>> [e.at_event for e in record.events()], record.counts()
([20, 30], {('adwin', 'hit_rate:ensemble'): 3})
"""

from __future__ import annotations

from collections import Counter, deque

import msgspec
import numpy as np


class DriftEvent(msgspec.Struct, frozen=True):
    """One detection: which detector on which signal, at which log offset and event time, and
    the action the recalibration policy took (``"none"`` when it did nothing)."""

    detector: str
    signal: str
    at_event: int
    at_time: float
    action: str


class DriftRecord:
    """The latest ``max_events`` detections, and how many there were of each kind in all."""

    def __init__(self, max_events: int = 1000) -> None:
        self.max_events = max_events
        self._events: deque[DriftEvent] = deque(maxlen=max_events)
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, event: DriftEvent) -> DriftEvent:
        self._events.append(event)
        self._counts[(event.detector, event.signal)] += 1
        return event

    def events(self) -> list[DriftEvent]:
        """Detections, oldest first."""
        return list(self._events)

    def counts(self) -> dict[tuple[str, str], int]:
        """Detections so far by ``(detector, signal)``, including ones no longer listed."""
        return dict(self._counts)

    def state_dict(self) -> dict[str, np.ndarray]:
        doc = {"events": list(self._events), "counts": [[*k, v] for k, v in self._counts.items()]}
        return {"record": np.frombuffer(msgspec.json.encode(doc), dtype=np.uint8)}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        if "record" not in arrays:
            return
        doc = msgspec.json.decode(arrays["record"].tobytes())
        self._events = deque(
            (msgspec.convert(e, DriftEvent) for e in doc["events"]), maxlen=self.max_events
        )
        self._counts = Counter({(d, s): int(n) for d, s, n in doc["counts"]})
