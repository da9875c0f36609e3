"""Cold start in a scale-out deployment (real Redis): the workers learn the context- and
profile-aware popularity with the deployment's user profiles and publish it apart; replicas
serve a newcomer what is popular in their country or with shoppers like them."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from freshrec.scaleout import ClusterEngine
from freshrec.scaleout.worker import Worker
from freshrec.settings import Settings
from tests.unit.scaleout.test_scaleout import partition_users, running_worker, scaleout_settings
from tests.unit.scaleout.test_shop import within

T0 = 1_700_000_000.0


@pytest.fixture
def settings(redis_prefix: str) -> Settings:
    return scaleout_settings(
        redis_prefix,
        recommend_budget_ms=1000.0,
        cache_max_entries=0,  # every request ranks anew: the test waits for publications
        scaleout_context_publish_seconds=0.05,
        shop_poll_seconds=0.05,
    )


def view(kind: str, user: str, item: str, t: float, **context: str) -> dict:
    event = {"type": kind, "user_id": user, "item_id": item, "timestamp": t}
    return event | ({"context": context} if context else {})


def test_newcomers_get_what_their_country_and_similar_shoppers_liked(
    settings: Settings, replica_client: tuple[ClusterEngine, TestClient]
) -> None:
    engine, client = replica_client
    users = partition_users(30, 0)  # one partition: its models learn from its own users
    vips, germans, others = users[:5], users[5:11], users[11:26]
    newcomer, late = users[26], users[27]
    for user in vips:  # profiles written before the worker starts: it loads them all
        assert client.put(f"/v1/users/{user}", json={"segment": "vip"}).status_code == 200
    with running_worker(settings) as worker:
        events = [view("purchase", u, "caviar", T0 + n) for n, u in enumerate(vips)]
        events += [
            view("view", u, item, T0 + n, country="DE")
            for n, u in enumerate(germans)
            for item in ("pretzel", "mustard")
        ]
        events += [  # tea: the most popular overall (purchases weigh 8 views)
            view("view", u, item, T0 + n)
            for n, u in enumerate(others)
            for item in ("tea", "mug", "tea", "tea", "tea")
        ]
        assert client.post("/v1/events", json={"events": events}).status_code == 202
        assert engine.wait_processed(30)

        def first(params: dict) -> tuple[str, dict]:
            body = client.get("/v1/recommendations", params=params).json()
            assert body["cold_start"] is True, body
            if not body["items"]:  # nothing published yet
                return "", {}
            return body["items"][0]["item_id"], body["items"][0]["reason"]

        # a newcomer without a profile: what is popular in the partition
        within(10.0, lambda: engine.refresh() >= 0 and first({"user_id": newcomer})[0] == "tea")
        # ... in Germany (the cold-start strategy, as embedded): what German shoppers viewed
        # (the context popularity is published apart from the overall one: wait for it too)
        german = {"user_id": newcomer, "country": "DE", "strategy": "cold_start"}
        within(10.0, lambda: engine.refresh() >= 0 and first(german)[0] == "pretzel")
        item, reason = first(german)
        assert (item, reason) == ("pretzel", {"type": "popular_in_your_country", "country": "DE"})
        # ... with a vip profile: what the vips bought (a profile of any replica works)
        assert client.put(f"/v1/users/{newcomer}", json={"segment": "vip"}).status_code == 200
        within(10.0, lambda: engine.refresh() >= 0 and first({"user_id": newcomer})[0] == "caviar")
        item, reason = first({"user_id": newcomer})
        assert item == "caviar"
        assert reason == {"type": "popular_with_similar_shoppers", "attribute": "segment=vip"}

        # a profile written while the worker runs reaches its partition's engine, and the
        # shopper's next events count for their segment
        assert client.put(f"/v1/users/{late}", json={"segment": "b2b"}).status_code == 200
        runner = worker.runners[0]
        within(5.0, lambda: runner.engine.profiles.get(late) is not None)
        bulk = [view("purchase", late, "pallet", T0 + 100 + k) for k in range(3)]
        assert client.post("/v1/events", json={"events": bulk}).status_code == 202
        assert engine.wait_processed(30)
        stranger = users[28]
        assert client.put(f"/v1/users/{stranger}", json={"segment": "b2b"}).status_code == 200

        def b2b_first() -> bool:
            engine.refresh()
            return first({"user_id": stranger})[0] == "pallet"

        within(10.0, b2b_first)


def test_a_dropped_partition_stops_taking_in_profiles(settings: Settings) -> None:
    worker = Worker(settings, only={0})
    try:
        worker.step()
        runner = worker.runners[0]
        subscribers = worker.shop._subscribers["users"]
        assert runner.engine.profiles.apply in subscribers
        worker._drop(0)
        assert runner.engine.profiles.apply not in subscribers
    finally:
        worker.shutdown()
        time.sleep(0)
