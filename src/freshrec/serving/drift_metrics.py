"""Prometheus metrics of drift detection and alerts, read from the engine when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from freshrec.engine import Engine


class DriftCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        if getattr(self.engine, "drift", None) is None:
            # a scale-out replica: the detectors run on the workers, which count their
            # detections in Redis (each once, replays by a new owner included)
            counts = getattr(self.engine, "drift_counts", dict)()
            yield _detections(counts)
            return
        with self.engine.lock:
            counts = self.engine.drift.record.counts()
            values = dict(self.engine.drift.last_values)
            alerts = dict(self.engine.alerts.counts)
            firing = dict(self.engine.alerts.firing)
        yield _detections(counts)
        signal = GaugeMetricFamily(
            "freshrec_drift_signal", "Latest value of each drift signal.", labels=["signal"]
        )
        for name, value in sorted(values.items()):
            signal.add_metric([name], value)
        yield signal
        raised = CounterMetricFamily("freshrec_alerts", "Alerts raised by kind.", labels=["kind"])
        for kind in ("below_threshold", "drift"):
            raised.add_metric([kind], alerts.get(kind, 0))
        yield raised
        active = GaugeMetricFamily(
            "freshrec_alert_firing", "1 while a metric is below its threshold.", labels=["metric"]
        )
        for metric, on in sorted(firing.items()):
            active.add_metric([metric], int(on))
        yield active


def _detections(counts: dict[tuple[str, str], int]) -> Metric:
    detections = CounterMetricFamily(
        "freshrec_drift_detections",
        "Drift detections by detector and signal.",
        labels=["detector", "signal"],
    )
    for (detector, signal), n in sorted(counts.items()):
        detections.add_metric([detector, signal], n)
    return detections
