"""The drift monitor: live signals, a detector on each, the policy on every detection.

It sits in the processor twice: as a *monitor* next to live quality (after each live test it
feeds every model's hit or miss to that model's detector), and as a *watcher* that sees each
micro-batch after the online state has taken it in and before the models learn it. Signals:

============================  ==============================================  ================
signal                        value                                           detector
============================  ==============================================  ================
``hit_rate:<model>``          1/0: was the tested item in that model's top-k  ADWIN
``popularity_hit``            share of a chunk's events on the top-``top_n``  Page-Hinkley, down
                              popular items (as learned before the batch)
``new_items``                 share of a chunk's events on never-seen items   Page-Hinkley, up
``category_shift``            total-variation distance between a chunk's      Page-Hinkley, up
                              category histogram and a slow moving reference
``new_items:category=<id>``   in each of the busiest categories, 1/0: was     ADWIN
                              the event on a new item
                              (``freshrec.drift.categories``)
``ctr``                       clicks carrying a ``recommendation_id`` per     Page-Hinkley, down
                              recommendation served, per ``ctr_block``
============================  ==============================================  ================

Chunks are ``chunk_events`` consecutive events by log offset, so a chunk's figures do not depend
on how the log was cut into micro-batches (except ``popularity_hit``, which looks at the popular
items as learned before the micro-batch the event is in). Snapshots keep every detector (as its
recent inputs, replayed on restore: ``freshrec.drift.detectors``), the open chunk and the record
of past detections, so a restart neither forgets a change building up nor re-learns the signals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from freshrec.drift.categories import CategoryNewItems
from freshrec.drift.detectors import Adwin, Detector, PageHinkley
from freshrec.drift.events import DriftEvent, DriftRecord
from freshrec.drift.policy import Recalibration
from freshrec.events import EventType, LoggedEvent
from freshrec.models import DecayedPopularity
from freshrec.state import Batch
from freshrec.state.arrays import member_of

if TYPE_CHECKING:  # the engine wires the monitor; nothing here imports the engine at run time
    from freshrec.engine.quality import LiveQuality

log = logging.getLogger(__name__)

_CLICK = int(EventType.click)
_BUCKETS = 64  # category ids are folded into this many histogram buckets
_DETECTOR = "detector:"  # snapshot arrays "detector:<signal>": the detector's inputs
_NOVELTY = "novelty:"  # ... "novelty:<name>": the busiest categories' tracker


class DriftMonitor:
    """Detectors on live signals; records detections and lets the policy act on them."""

    name = "drift"

    def __init__(
        self,
        quality: LiveQuality,
        popularity: DecayedPopularity,
        policy: Recalibration | None = None,
        *,
        adwin_delta: float = 0.0005,
        ph_threshold: float = 15.0,
        ph_delta: float = 0.5,
        chunk_events: int = 500,
        top_n: int = 100,
        ctr_block: int = 200,
        tracked_categories: int = 8,
        max_events: int = 1000,
        on_drift: Callable[[DriftEvent], object] | None = None,
        on_signal: Callable[[str, float, int, float], object] | None = None,
        detect: bool = True,
    ) -> None:
        if chunk_events < 10 or top_n < 1 or ctr_block < 1:
            raise ValueError("chunk_events must be >= 10, top_n and ctr_block >= 1")
        self.quality = quality
        self.popularity = popularity
        self.policy = policy
        self.adwin_delta = adwin_delta
        self.ph_threshold = ph_threshold
        self.ph_delta = ph_delta
        self.chunk_events = chunk_events
        self.top_n = top_n
        self.ctr_block = ctr_block
        self.novelty = CategoryNewItems(tracked_categories)
        self.on_drift = on_drift
        self.on_signal = on_signal
        # False: no detector runs and nothing acts; the live signals alerts watch (each
        # model's hit rate, CTR) still reach ``on_signal``
        self.detect = detect
        self.record = DriftRecord(max_events)
        self.detectors: dict[str, Detector] = {}
        self.last_values: dict[str, float] = {}
        self._tests_seen = quality.tests
        self._known_items = 0
        self._chunk = np.zeros(3)  # events, popular hits, new-item events in the open chunk
        self._filled = 0  # events in the open chunk
        self._hist = np.zeros(_BUCKETS)
        self._reference: np.ndarray | None = None
        self._served = 0
        self._clicks = 0

    # -- detectors ---------------------------------------------------------------------------
    def _detector(self, signal: str) -> Detector:
        det = self.detectors.get(signal)
        if det is None:
            if signal.startswith("hit_rate:"):  # 0/1 per live test
                det = Adwin(self.adwin_delta, "down")
            elif signal.startswith("new_items:"):  # 0/1 per event of the category
                det = Adwin(self.adwin_delta, "up")
            else:
                up = signal.startswith(("new_items", "category_shift"))
                # a rate over n events cannot be known better than about 1/n: the floor of the
                # standard deviation, so a quiet signal's first blip is not an alarm
                n = self.ctr_block if signal == "ctr" else self.chunk_events
                det = PageHinkley(
                    self.ph_threshold,
                    self.ph_delta,
                    "up" if up else "down",
                    min_std=1.0 / n,
                )
            self.detectors[signal] = det
        return det

    def feed(self, signal: str, value: float, at_event: int, at_time: float) -> bool:
        """Give ``signal``'s detector one value; on a detection, act and record it."""
        self.last_values[signal] = value
        if self.on_signal is not None:
            self.on_signal(signal, value, at_event, at_time)
        if not self.detect or not self._detector(signal).update(value):
            return False
        self._detected(signal, at_event, at_time)
        return True

    def feed_many(
        self, signal: str, values: np.ndarray, at_events: np.ndarray, at_times: np.ndarray
    ) -> None:
        """Feed a run of values (e.g. one category's 0/1 flags in log order) to one detector."""
        det = self._detector(signal)
        update = det.update
        for i, value in enumerate(values.tolist()):
            if update(value):
                self._detected(signal, int(at_events[i]), float(at_times[i]))
        self.last_values[signal] = float(values.mean())

    def _detected(self, signal: str, at_event: int, at_time: float) -> None:
        det = self.detectors[signal]
        action = self.policy.act(at_event, signal, at_time) if self.policy is not None else "none"
        event = self.record.add(DriftEvent(det.kind, signal, at_event, at_time, action))
        log.warning(
            "drift detected by %s on %s at event %d (t=%.0f): %s",
            det.kind,
            signal,
            at_event,
            at_time,
            action,
        )
        if self.on_drift is not None:
            self.on_drift(event)

    # -- live tests (Monitor protocol of the processor) --------------------------------------
    def due(self, first_offset: int, n: int) -> np.ndarray:
        return self.quality.due(first_offset, n)

    def observe(self, event: LoggedEvent, offset: int) -> None:
        """After live quality tested ``event``: each ranker's hit or miss to its detector."""
        if self.quality.tests == self._tests_seen:
            return  # the event could not be tested
        self._tests_seen = self.quality.tests
        for name, hit in self.quality.last_hits().items():
            self.feed(f"hit_rate:{name}", float(hit), offset, event.ts)

    # -- micro-batches (watcher of the processor) --------------------------------------------
    def watch(self, batch: Batch, events: Sequence[LoggedEvent], first_offset: int) -> None:
        """See a micro-batch the state has taken in and the models have not learned yet."""
        n = len(batch)
        if self.policy is not None:
            self.policy.tick(first_offset)
        if n == 0:
            return
        if not self.detect:  # only what alerts watch
            self._count_ctr(events, first_offset + n - 1, float(batch.ts[-1]))
            return
        counted = batch.weight > 0
        popular = member_of(batch.items, self.popularity.top(self.top_n)) & counted
        new = (batch.items >= self._known_items) & counted
        self._known_items = max(self._known_items, batch.n_items)
        category = batch.category
        ts = batch.ts
        self.novelty.update(
            category,
            counted,
            new,
            lambda signal, values, at: self.feed_many(signal, values, at, ts[at - first_offset]),
            first_offset,
        )
        pos = 0
        while pos < n:
            take = min(n - pos, self.chunk_events - self._filled)
            part = slice(pos, pos + take)
            self._chunk += (counted[part].sum(), popular[part].sum(), new[part].sum())
            cats = category[part][counted[part] & (category[part] >= 0)]
            if cats.size:
                self._hist += np.bincount(cats % _BUCKETS, minlength=_BUCKETS)
            pos += take
            self._filled += take
            if self._filled == self.chunk_events:
                self._close_chunk(first_offset + pos - 1, float(batch.ts[pos - 1]))
        self._count_ctr(events, first_offset + n - 1, float(batch.ts[-1]))

    def _count_ctr(self, events: Sequence[LoggedEvent], at_event: int, at_time: float) -> None:
        """Clicks on served lists; a CTR value per ``ctr_block`` lists served."""
        if self._served:
            self._clicks += sum(
                1 for e in events if e.recommendation_id is not None and e.type == _CLICK
            )
            if self._served >= self.ctr_block:
                self.feed("ctr", self._clicks / self._served, at_event, at_time)
                self._served = self._clicks = 0

    def _close_chunk(self, at_event: int, at_time: float) -> None:
        events, popular, new = self._chunk
        self._chunk[:] = 0
        self._filled = 0
        hist, self._hist = self._hist, np.zeros(_BUCKETS)
        if events < self.chunk_events // 2:
            return  # mostly weightless events (impressions): too few to say anything
        self.feed("popularity_hit", popular / events, at_event, at_time)
        self.feed("new_items", new / events, at_event, at_time)
        if hist.sum() >= events // 2:
            p = hist / hist.sum()
            if self._reference is not None:
                shift = 0.5 * float(np.abs(p - self._reference).sum())
                self.feed("category_shift", shift, at_event, at_time)
                self._reference += 0.05 * (p - self._reference)
            else:
                self._reference = p

    def served(self, n: int = 1) -> None:
        """``n`` recommendation lists were served (the denominator of the CTR signal)."""
        self._served += n

    # -- record ------------------------------------------------------------------------------
    def events(self) -> list[DriftEvent]:
        return self.record.events()

    def state_dict(self) -> dict[str, np.ndarray]:
        policy = {} if self.policy is None else self.policy.state_dict()
        detectors = {_DETECTOR + s: det.inputs() for s, det in self.detectors.items()}
        chunk = {"chunk": np.append(self._chunk, self._filled), "chunk_hist": self._hist.copy()}
        chunk.update({_NOVELTY + k: v for k, v in self.novelty.state_dict().items()})
        if self._reference is not None:
            chunk["category_reference"] = self._reference.copy()
        return {
            **self.record.state_dict(),
            **policy,
            **detectors,
            **chunk,
            "known_items": np.asarray([self._known_items]),
        }

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        """The record, the policy, the open chunk, the category tracker and every detector as
        saved (each replayed from its inputs since its last reset: ``Detector.replay``); a
        snapshot from before detectors were saved leaves them to learn their signals afresh."""
        self.record.load_state_dict(arrays)
        if self.policy is not None:
            self.policy.load_state_dict(arrays)
        if "known_items" in arrays:
            self._known_items = int(arrays["known_items"][0])
        self.detectors = {}
        for key, values in arrays.items():
            if key.startswith(_DETECTOR):
                self._detector(key.removeprefix(_DETECTOR)).replay(values)
        if "chunk" in arrays:
            self._chunk = arrays["chunk"][:3].astype(np.float64, copy=True)
            self._filled = int(arrays["chunk"][3])
            self._hist = arrays["chunk_hist"].astype(np.float64, copy=True)
        novelty = {k.removeprefix(_NOVELTY): v for k, v in arrays.items() if k.startswith(_NOVELTY)}
        if novelty:
            self.novelty.load_state_dict(novelty)
        ref = arrays.get("category_reference")
        self._reference = None if ref is None else ref.astype(np.float64, copy=True)
        self._tests_seen = self.quality.tests
