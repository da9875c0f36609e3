"""A replica started while Redis cannot be reached: it starts, answers 503 where it needs
Redis and recommendations where it does not, and logs the outage without flooding."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from freshrec.errors import StorageError
from freshrec.log import RedisLog
from freshrec.scaleout import ClusterEngine
from freshrec.scaleout.shop import ShopSync
from freshrec.serving import create_app
from freshrec.settings import Settings

DEAD = "redis://127.0.0.1:1/0"


def test_a_replica_starts_without_redis_and_answers_what_it_can() -> None:
    engine = ClusterEngine(Settings(redis_url=DEAD, redis_timeout_seconds=0.2))
    with TestClient(create_app(engine, run_processor=False)) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "Redis at 127.0.0.1:1" in ready.json()["reason"]
        r = client.post("/v1/events", json={"type": "view", "user_id": "u", "item_id": "i"})
        assert r.status_code == 503 and r.json()["error"].startswith("event log unavailable")
        r = client.get("/v1/recommendations", params={"user_id": "u"})
        assert r.status_code == 200 and r.json()["cold_start"] is True


def test_a_worker_still_refuses_to_start_on_a_log_it_cannot_check() -> None:
    with pytest.raises(StorageError, match="unreachable"):
        RedisLog(DEAD, timeout=0.2)  # wait=False: workers and tools need the log now


def test_an_outage_is_logged_when_it_starts_and_ends_not_on_every_poll(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Store:
        down = True

        def poll(self) -> list:
            if self.down:
                raise StorageError("shop store: could not read Redis")
            return []

    store = Store()
    sync = ShopSync(store, None, 0.2)
    with caplog.at_level(logging.INFO, logger="freshrec.scaleout.shop"):
        for _ in range(20):
            sync.sync()
        store.down = False
        sync.sync()
    lines = [r.getMessage() for r in caplog.records]
    assert sync.failures == 20
    assert sum("cannot read the shop's changes" in line for line in lines) == 1
    assert any("answers again" in line for line in lines)
