"""Prometheus metrics of serving a shop: attribution (CTR, conversion), A/B arms, cache,
fallbacks and the catalogue; registered next to the engine's in the app's registry."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from freshrec.serving.service import RecommendService


class ShopCollector(Collector):
    def __init__(self, service: RecommendService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        s = self.service
        labels = ["strategy", "model_version"]
        families = {
            "responses": CounterMetricFamily(
                "freshrec_recommendation_responses", "Responses served.", labels=labels
            ),
            "clicks": CounterMetricFamily(
                "freshrec_recommendation_clicks", "Clicks attributed to a response.", labels=labels
            ),
            "purchases": CounterMetricFamily(
                "freshrec_recommendation_purchases",
                "Purchases attributed to a response.",
                labels=labels,
            ),
            "ctr": GaugeMetricFamily(
                "freshrec_recommendation_ctr", "Responses with a click / responses.", labels=labels
            ),
            "conversion": GaugeMetricFamily(
                "freshrec_recommendation_conversion",
                "Responses with a purchase / responses.",
                labels=labels,
            ),
        }
        for strategy, version, counts in s.feedback.rows():
            for name, family in families.items():
                family.add_metric([strategy, version], counts[name])
        yield from families.values()
        arm_ctr = GaugeMetricFamily(
            "freshrec_experiment_ctr",
            "CTR of each arm of each experiment.",
            labels=["experiment", "arm"],
        )
        arm_conv = GaugeMetricFamily(
            "freshrec_experiment_conversion",
            "Conversion of each arm.",
            labels=["experiment", "arm"],
        )
        arm_n = CounterMetricFamily(
            "freshrec_experiment_responses",
            "Responses served by each arm.",
            labels=["experiment", "arm"],
        )
        for exp in list(s.experiments.by_id.values()):
            for row in exp.readout()["arms"]:
                arm_ctr.add_metric([exp.id, row["name"]], row["ctr"])
                arm_conv.add_metric([exp.id, row["name"]], row["conversion"])
                arm_n.add_metric([exp.id, row["name"]], row["responses"])
        yield arm_ctr
        yield arm_conv
        yield arm_n
        fallbacks = CounterMetricFamily(
            "freshrec_recommend_fallbacks",
            "Responses served from popular items because the model failed or was too slow.",
            labels=["reason"],
        )
        for reason in ("timeout", "error"):
            fallbacks.add_metric([reason], s.fallbacks.get(reason, 0))
        yield fallbacks
        yield CounterMetricFamily(
            "freshrec_recommend_cache_hits", "Responses served from the cache.", value=s.cache.hits
        )
        yield CounterMetricFamily(
            "freshrec_recommend_cache_misses", "Cache lookups that missed.", value=s.cache.misses
        )
        yield GaugeMetricFamily(
            "freshrec_catalogue_items", "Items in the catalogue.", value=len(s.engine.catalogue)
        )
        yield GaugeMetricFamily(
            "freshrec_catalogue_unavailable",
            "Catalogue items marked unavailable or deleted.",
            value=s.engine.catalogue.unavailable,
        )
