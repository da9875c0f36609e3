"""Prometheus metrics of one engine and its server, in a registry of their own.

Event counters are read from the engine when scraped (``freshrec_events_accepted_total`` is the
length of the durable log), so they survive restarts and equal what clients were acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from freshrec.engine import Engine
from freshrec.serving.drift_metrics import DriftCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _EngineCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        s = self.engine.stats()
        for key, help_text in (
            ("events_accepted", "Events durably appended to the log (acknowledged)."),
            ("events_duplicate", "Events dropped because their event_id was seen before."),
            ("events_rejected", "Events rejected by validation since start."),
            ("events_processed", "Events the processor has applied to state and models."),
        ):
            yield CounterMetricFamily(f"freshrec_{key}", help_text, value=s[key])
        yield GaugeMetricFamily(
            "freshrec_processor_lag_events",
            "Accepted events not yet processed.",
            value=s["processor_lag"],
        )
        yield GaugeMetricFamily("freshrec_users", "Users known to the engine.", value=s["users"])
        yield GaugeMetricFamily("freshrec_items", "Items known to the engine.", value=s["items"])
        yield GaugeMetricFamily(
            "freshrec_ready", "1 once the log is replayed.", value=int(s["ready"])
        )
        info = self.engine.models_info()
        hit = GaugeMetricFamily(
            "freshrec_model_hit_rate",
            "Live prequential hit rate@k over the recent window.",
            labels=["model"],
        )
        weight = GaugeMetricFamily(
            "freshrec_ensemble_weight", "Ensemble weight of each model.", labels=["model"]
        )
        errors = CounterMetricFamily(
            "freshrec_model_errors",
            "Non-finite scores or a diverged learner met (that model was not served).",
            labels=["model"],
        )
        disabled = GaugeMetricFamily(
            "freshrec_model_disabled", "1 while a model is not served.", labels=["model"]
        )
        for model in info["models"]:
            hit.add_metric([model["name"]], model["hit_rate"])
            weight.add_metric([model["name"]], model["weight"])
            errors.add_metric([model["name"]], model["errors"])
            disabled.add_metric([model["name"]], int(model["disabled"] is not None))
        hit.add_metric(["ensemble"], info["ensemble"]["hit_rate"])
        yield hit
        yield weight
        yield errors
        yield disabled
        yield CounterMetricFamily(
            "freshrec_live_tests",
            "Live test-then-learn checks made.",
            value=info["live_eval"]["tests"],
        )
        extra = getattr(self.engine, "extra_metrics", None)  # e.g. scale-out freshness
        if extra is not None:
            yield from extra()


class Metrics:
    """The server's metrics: engine counters plus request and recommendation latency."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_EngineCollector(engine))
        self.registry.register(DriftCollector(engine))
        self.http_latency = Histogram(
            "freshrec_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.recommend_latency = Histogram(
            "freshrec_recommend_duration_seconds",
            "Time to compute one recommendation list.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class LatencyMiddleware:
    """Pure ASGI middleware recording each request's latency under its route template."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.http_latency.labels(scope["method"], path, str(status[0])).observe(
                time.perf_counter() - start
            )
