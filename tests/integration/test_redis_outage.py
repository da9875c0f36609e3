"""Redis goes away and comes back, under a serving replica and a worker.

A private ``redis-server`` (real, on a free port, append-only file in a temporary folder) is
stopped and restarted: ingest answers 503 naming Redis (and stores nothing), ``/readyz`` is 503,
recommendations fall back to the popular items the replica holds, and everything recovers by
itself once Redis is back.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from freshrec.archive import query
from freshrec.scaleout import ClusterEngine, Worker
from freshrec.serving import create_app
from freshrec.settings import Settings
from tests.conftest import make_checkerboard
from tests.processes import HOST, free_port

pytestmark = pytest.mark.integration


class PrivateRedis:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder),
             "--enable-debug-command", "local"],  # DEBUG SLEEP: a Redis that stalls
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def cluster(url: str, **extra: object) -> Settings:
    """Two partitions, publications and polls every 50 ms, and ``extra``."""
    quick = {"scaleout_publish_seconds": 0.05, "serving_poll_seconds": 0.05}
    return Settings(redis_url=url, redis_partitions=2, **{**quick, **extra})  # type: ignore[arg-type]


@contextmanager
def deployment(
    settings: Settings,
) -> Iterator[tuple[ClusterEngine, TestClient, threading.Thread]]:
    """A worker (in a thread) and a serving replica over ``settings``' Redis, stopped after."""
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    engine = ClusterEngine(settings)
    try:
        with TestClient(create_app(engine)) as client:
            yield engine, client, thread
    finally:
        worker.stop()
        thread.join(20)
        engine.close()
    assert not thread.is_alive()


def personal(engine: ClusterEngine, client: TestClient) -> None:
    """Five users' events in, processed and published: u1's recommendations are personal."""
    assert client.post("/v1/events", json={"events": make_checkerboard(5)}).status_code == 202
    assert engine.wait_processed(20)
    deadline = time.monotonic() + 10
    while engine.refresh() or None in engine.partitions:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    while True:  # on a loaded machine a read of u1's record (or of the popular items) can
        # outlast a short read timeout and serve u1 as a newcomer, or nothing, for a moment
        # (what the stall test checks): ask again
        items = client.get("/v1/recommendations", params={"user_id": "u1"}).json()["items"]
        first = items[0] if items else None
        if first is not None and first["reason"]["type"] == "because_you_viewed":
            return
        assert time.monotonic() < deadline, f"u1's recommendations not personal: {first}"
        time.sleep(0.05)


def test_outage_is_visible_and_recovered_from(private_redis: PrivateRedis, tmp_path: Path) -> None:
    settings = cluster(
        private_redis.url,
        data_dir=tmp_path / "data",  # the worker archives too
        archive_flush_seconds=0.1,
        redis_timeout_seconds=0.3,
    )
    with deployment(settings) as (engine, client, _):
        personal(engine, client)
        private_redis.stop()
        r = client.post("/v1/events", json={"type": "view", "user_id": "u1", "item_id": "z"})
        assert r.status_code == 503
        assert f"Redis at {HOST}:{private_redis.port} is unreachable" in r.json()["error"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "unreachable" in ready.json()["reason"]
        fallback = client.get("/v1/recommendations", params={"user_id": "u1"})
        assert fallback.status_code == 200
        reasons = {item["reason"]["type"] for item in fallback.json()["items"]}
        assert fallback.json()["items"] and "because_you_viewed" not in reasons
        assert client.get("/metrics").status_code == 200

        private_redis.start()  # same port, same append-only file
        deadline = time.monotonic() + 20
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "replica did not recover"
            time.sleep(0.1)
        r = client.post("/v1/events", json={"type": "view", "user_id": "u1", "item_id": "a0"})
        assert r.status_code == 202
        assert engine.wait_processed(20), "worker did not recover"
        stats = client.get("/v1/stats").json()
        assert stats["events_accepted"] == stats["events_processed"] == 31  # nothing half-written
    _, rows = query(tmp_path / "data", 'SELECT count(*), count(DISTINCT "offset") FROM events')
    assert rows[0] == (31, 31)  # the outage cost the archive nothing, and nothing twice


def test_a_worker_and_a_replica_started_before_redis_wait_for_it(tmp_path: Path) -> None:
    """Services start in any order: a worker and a replica whose Redis is not up yet wait for
    it (a worker used to exit), then work as usual once it answers."""
    server = PrivateRedis(tmp_path)  # its port picked, not started yet
    settings = cluster(server.url, redis_timeout_seconds=0.3)
    try:
        with deployment(settings) as (engine, client, worker):
            time.sleep(1.5)  # the worker has met the refused connection by now
            assert worker.is_alive()
            server.start()
            deadline = time.monotonic() + 20
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "replica did not find Redis"
                time.sleep(0.1)
            events = make_checkerboard(5)
            assert client.post("/v1/events", json={"events": events}).status_code == 202
            assert engine.wait_processed(20), "the worker did not start processing"
            stats = client.get("/v1/stats").json()
            assert stats["events_accepted"] == stats["events_processed"] == len(events)
    finally:
        server.stop()


def test_a_worker_stopped_before_redis_answers_exits_cleanly(tmp_path: Path) -> None:
    worker = Worker(Settings(redis_url=PrivateRedis(tmp_path).url, redis_timeout_seconds=0.3))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    time.sleep(0.5)
    worker.stop()
    thread.join(10)
    assert not thread.is_alive()


def test_recommendations_do_not_wait_out_a_stalled_redis(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """Redis stops answering (``DEBUG SLEEP``): a recommendation waits for the user's record
    at most ``redis_read_timeout_seconds``, the ones after it do not try for a moment, and all
    are answered while Redis still sleeps -- as for a newcomer, personal again afterwards."""
    settings = cluster(
        private_redis.url,
        redis_timeout_seconds=2.0,  # what any other read would wait
        redis_read_timeout_seconds=0.05,
        redis_read_pause_seconds=0.5,
        cache_max_entries=0,
    )
    with deployment(settings) as (engine, client, _):
        personal(engine, client)
        params = {"user_id": "u1"}
        sleeping = threading.Thread(
            target=lambda: redis.Redis.from_url(private_redis.url).execute_command(
                "DEBUG", "SLEEP", "3"
            )
        )
        sleeping.start()
        time.sleep(0.2)  # the sleep has begun
        answers = [client.get("/v1/recommendations", params=params) for _ in range(5)]
        assert sleeping.is_alive()  # every answer came while Redis was still asleep
        for answer in answers:
            assert answer.status_code == 200 and answer.json()["items"]
            reasons = {i["reason"]["type"] for i in answer.json()["items"]}
            assert "because_you_viewed" not in reasons  # served as a newcomer
        assert engine.records.skipped >= 3  # not each after its own timeout
        sleeping.join(10)
        deadline = time.monotonic() + 10
        while True:  # personal again once Redis answers and the pause is over
            items = client.get("/v1/recommendations", params=params).json()["items"]
            if items and items[0]["reason"]["type"] == "because_you_viewed":
                break
            assert time.monotonic() < deadline, "recommendations did not recover"
            time.sleep(0.1)
