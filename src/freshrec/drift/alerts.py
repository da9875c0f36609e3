"""Alerts: a live metric fell below its threshold, or a drift detector fired.

An alert is raised on the *edge* -- when a metric goes below its threshold, not at every value
while it stays there -- and cleared when it recovers. Each alert is a log line (``WARNING``), a
count per kind and a firing flag per metric (exported on ``/metrics``, see
``deploy/prometheus/alerts.yml`` for rules on the same conditions), and, when ``webhook_url`` is
set, a JSON ``POST`` made from a background thread (a slow or failing webhook never holds up
the processor; failures are logged).

>>> alerts = Alerts({"hit_rate:ensemble": 0.1})
>>> alerts.check("hit_rate:ensemble", 0.05, at_event=10, at_time=1e9)
True
>>> alerts.check("hit_rate:ensemble", 0.04, at_event=20, at_time=1e9)  # still low: no new alert
False
>>> alerts.firing, dict(alerts.counts)
({'hit_rate:ensemble': True}, {'below_threshold': 1})
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

import httpx

from freshrec.drift.events import DriftEvent

log = logging.getLogger(__name__)


class Alerts:
    """Threshold checks on live metrics and drift detections, with an optional webhook."""

    def __init__(
        self,
        thresholds: Mapping[str, float] | None = None,
        webhook_url: str | None = None,
        webhook_timeout: float = 2.0,
    ) -> None:
        self.thresholds = dict(thresholds or {})
        self.webhook_url = webhook_url
        self.webhook_timeout = webhook_timeout
        self.firing: dict[str, bool] = dict.fromkeys(self.thresholds, False)
        self.counts: Counter[str] = Counter()
        self.sent = 0  # webhook posts that were answered 2xx
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
        self._thread: threading.Thread | None = None

    def check(self, metric: str, value: float, at_event: int, at_time: float) -> bool:
        """Compare ``metric``'s latest ``value`` with its threshold; True when an alert fires."""
        limit = self.thresholds.get(metric)
        if limit is None:
            return False
        low = value < limit
        was = self.firing[metric]
        self.firing[metric] = low
        if low and not was:
            self.raise_alert(
                "below_threshold",
                f"{metric} = {value:.4f} fell below {limit:g}",
                {"metric": metric, "value": value, "threshold": limit},
                at_event,
                at_time,
            )
            return True
        return False

    def drift(self, event: DriftEvent) -> None:
        """A drift detector fired."""
        self.raise_alert(
            "drift",
            f"drift on {event.signal} ({event.detector}): {event.action}",
            {"detector": event.detector, "signal": event.signal, "action": event.action},
            event.at_event,
            event.at_time,
        )

    def raise_alert(
        self, kind: str, message: str, details: dict[str, Any], at_event: int, at_time: float
    ) -> None:
        self.counts[kind] += 1
        log.warning("ALERT %s: %s (event %d)", kind, message, at_event)
        if self.webhook_url:
            body = {"kind": kind, "message": message, "at_event": at_event, "at_time": at_time}
            try:
                self._queue.put_nowait({**body, **details})
            except queue.Full:
                log.error("alert webhook queue full; dropping alert %s", kind)
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._post_loop, name="freshrec-alerts", daemon=True
                )
                self._thread.start()

    def _post_loop(self) -> None:
        with httpx.Client(timeout=self.webhook_timeout) as client:
            while (body := self._queue.get()) is not None:
                try:
                    client.post(self.webhook_url, json=body).raise_for_status()  # type: ignore[arg-type]
                    self.sent += 1
                except httpx.HTTPError as exc:
                    log.error("alert webhook %s failed: %s", self.webhook_url, exc)
                finally:
                    self._queue.task_done()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until queued webhook posts are made (for tests and shutdown)."""
        if self._thread is None:
            return
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        done.wait(timeout)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(self.webhook_timeout + 1.0)
            self._thread = None
