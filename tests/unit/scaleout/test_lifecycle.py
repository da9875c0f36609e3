"""The model lifecycle of a scale-out deployment (real Redis): each partition's worker keeps
versions of its models in Redis; a replica lists them, promotes one and rolls back, and what the
replicas serve afterwards is exactly what that version served; a new owner of the partition
keeps the promotion; a damaged version is refused and marked."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from freshrec.log.redis import partition_of
from freshrec.registry.versions import version_folder, version_name
from freshrec.scaleout import ClusterEngine
from freshrec.scaleout.partition import PartitionRunner
from freshrec.scaleout.snapshots import UNCOMMITTED_TTL_SECONDS, LeaseLost, RedisVersions
from freshrec.settings import Settings
from freshrec.sim import ShopSimulator
from tests.unit.registry.test_lifecycle import WATCHED, sabotage
from tests.unit.scaleout.test_scaleout import held_runner, running_worker, scaleout_settings
from tests.unit.scaleout.test_serving import drain
from tests.unit.scaleout.test_shop import within

CONTEXT = {"timestamp": 1_700_100_000}


@pytest.fixture
def settings(redis_prefix: str) -> Settings:
    return scaleout_settings(
        redis_prefix,
        registry_gate_events=0,  # every snapshot is promoted unchecked (the gate: embedded tests)
        scaleout_snapshot_seconds=0.1,
        recommend_budget_ms=1000.0,
        cache_max_entries=0,
        mf_factors=8,
        ranker_hash_bits=12,
        drift_detection=False,
    )


def current(client: TestClient, partition: int) -> dict[str, Any] | None:
    found = [
        v
        for v in client.get("/v1/models").json()["versions"]
        if v["partition"] == partition and v["current"]
    ]
    return found[0] if found else None


def settled(engine: ClusterEngine, client: TestClient, events_seen: int) -> str:
    """The current version of partition 0 once it holds ``events_seen`` events, after the
    replica loaded what the worker published since."""
    within(20.0, lambda: (current(client, 0) or {}).get("events_seen") == events_seen)
    time.sleep(0.3)  # the worker publishes every 0.05 s
    while engine.refresh():
        pass
    return current(client, 0)["version"]  # type: ignore[index]


def recs(client: TestClient, users: list[str]) -> list[list[tuple[str, float]]]:
    out = []
    for user in users:
        body = client.get("/v1/recommendations", params={"user_id": user, **CONTEXT}).json()
        out.append([(r["item_id"], r["score"]) for r in body["items"]])
    return out


def refreshed_recs(
    engine: ClusterEngine, client: TestClient, users: list[str], expected: list
) -> list:
    """Recommendations once the replica has loaded the publication of a put-back version."""
    deadline = time.monotonic() + 10.0
    while True:
        engine.refresh()
        got = recs(client, users)
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def fed_runner(settings: Settings, client: TestClient, seed: int, token: str) -> PartitionRunner:
    """A runner holding partition 0 (lease ``token``) that has applied the partition's share of
    300 simulated events the replica took in."""
    sim = ShopSimulator(n_items=100, n_shoppers=30, seed=seed, mean_gap_seconds=1.0)
    assert client.post("/v1/events", json={"events": sim.take(300)}).status_code == 202
    runner = held_runner(settings, 0, token)
    drain(runner)
    return runner


def test_promote_rollback_and_takeover_through_a_replica(
    settings: Settings, replica_client: tuple[ClusterEngine, TestClient]
) -> None:
    engine, client = replica_client
    sim = ShopSimulator(n_items=300, n_shoppers=120, seed=5, mean_gap_seconds=1.0)
    first = sim.take(3000)
    p0 = sorted({e["user_id"] for e in first if partition_of(e["user_id"], 2) == 0})
    watched = p0[:6]
    second = [e for e in sim.take(3000) if e["user_id"] not in watched]
    in_p0 = [sum(partition_of(e["user_id"], 2) == 0 for e in batch) for batch in (first, second)]
    with running_worker(settings) as worker:
        assert client.post("/v1/events", json={"events": first}).status_code == 202
        v1 = settled(engine, client, in_p0[0])
        served_v1 = recs(client, watched)
        assert all(served_v1)

        assert client.post("/v1/events", json={"events": second}).status_code == 202
        v2 = settled(engine, client, in_p0[0] + in_p0[1])
        served_v2 = recs(client, watched)
        assert v2 != v1 and served_v2 != served_v1  # the models moved on

        # one call rolls every partition back to the version it promoted before
        body = client.post("/v1/models/rollback").json()
        p0_result = next(r for r in body["partitions"] if r["partition"] == 0)
        assert (p0_result["restored"], p0_result["rolled_back"]) == (v1, v2)
        assert refreshed_recs(engine, client, watched, served_v1) == served_v1  # exactly
        statuses = {v["version"]: v for v in client.get("/v1/models").json()["versions"]}
        assert statuses[v2]["status"] == "rolled_back"
        restored = current(client, 0)
        assert restored is not None and restored["status"] == "restored"
        assert restored["restored_from"] == v1  # as listed: promote takes it

        response = client.post(f"/v1/models/{v2}/promote")
        assert response.status_code == 200, response.json()
        assert response.json()["restored"] == v2
        assert refreshed_recs(engine, client, watched, served_v2) == served_v2
        promoted = current(client, 0)["version"]  # type: ignore[index]
        runner = worker.runners[0]
        stored = RedisVersions(runner.redis, settings.redis_prefix, 0)
        # the restored copy of v2 (written at once, so a new owner resumes from it)
        params = stored.load_version(promoted.partition("-")[2]).arrays
        mf = runner.engine.mf.state_dict()["item_factors"]
        assert np.array_equal(params["mf/item_factors"], mf)

    # the next owner restores the promoted parameters and keeps the book
    with running_worker(settings) as worker:
        within(20.0, lambda: 0 in worker.runners and worker.runners[0].engine.lifecycle.active)
        assert current(client, 0)["version"] == promoted  # type: ignore[index]
        mf = worker.runners[0].engine.mf.state_dict()["item_factors"]
        assert np.array_equal(params["mf/item_factors"], mf)


def test_a_damaged_version_is_refused_and_marked(
    settings: Settings, replica_client: tuple[ClusterEngine, TestClient]
) -> None:
    engine, client = replica_client
    sim = ShopSimulator(n_items=200, n_shoppers=60, seed=3, mean_gap_seconds=1.0)
    batches = [sim.take(800), sim.take(800)]
    with running_worker(settings) as worker:
        seen = 0
        names = []
        for batch in batches:
            assert client.post("/v1/events", json={"events": batch}).status_code == 202
            seen += sum(partition_of(e["user_id"], 2) == 0 for e in batch)
            names.append(settled(engine, client, seen))
        older = names[0].partition("-")[2]
        stored = RedisVersions(worker.runners[0].redis, settings.redis_prefix, 0)
        stored.redis.hset(stored.key(version_folder(older)), "arrays", b"\x00garbage")  # type: ignore[arg-type]
        response = client.post(f"/v1/models/{names[0]}/promote")
        assert response.status_code == 503
        assert "damaged" in response.json()["error"]
        statuses = {v["version"]: v["status"] for v in client.get("/v1/models").json()["versions"]}
        assert statuses[names[0]] == "damaged"
        assert current(client, 0)["version"] == names[1]  # type: ignore[index]  # still serving
        missing = client.post("/v1/models/p0-v999999/promote")
        assert missing.status_code == 404 and "p0-v999999" in missing.json()["error"]


def test_a_partition_nobody_holds_answers_503(
    settings: Settings, replica_client: tuple[ClusterEngine, TestClient]
) -> None:
    """A version is stored but no worker holds its partition now: the replica says so at once
    instead of waiting for an answer that cannot come; the command is never left queued."""
    _, client = replica_client
    runner = fed_runner(settings, client, 2, "worker-gone")
    runner.engine.lifecycle.active = True
    runner.publish(force=True)  # a snapshot: a version of partition 0
    version = current(client, 0)
    assert version is not None and version["status"] == "promoted"
    runner.redis.delete(runner.keys.lease(0))  # the worker is gone, its lease lapsed
    response = client.post(f"/v1/models/{version['version']}/promote")
    assert response.status_code == 503
    assert "no worker holds it" in response.json()["error"]
    assert runner.redis.llen(runner.keys.commands(0)) == 0


def test_a_partition_rolls_back_on_its_own_between_chunks(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The watch after a promotion sees the live hit rate fall and rolls the partition back in
    the middle of processing; the restored parameters are snapshotted once the chunks' effects
    are written, so the next owner restores and replays from there without a gap."""
    settings = scaleout_settings(
        redis_prefix,
        registry_gate_events=0,
        registry_gate_every=3,
        live_eval_every=3,  # the baseline (the live rate) measured on as many tests as the watch
        registry_watch_events=1500,
        registry_rollback_drop=0.05,
        mf_factors=8,
        ranker_hash_bits=12,
        drift_detection=False,
    )
    sim = ShopSimulator(n_items=300, n_shoppers=120, seed=7, mean_gap_seconds=1.0)
    replica = ClusterEngine(settings)
    try:

        def feed(events: list[dict[str, Any]]) -> None:
            """Partition 0's events; the last one alone (the lifecycle decides at the start
            of a micro-batch)."""
            mine = [e for e in events if partition_of(e["user_id"], 2) == 0]
            for part in (mine[:-1], mine[-1:]):
                replica.ingest(part)
                drain(runner)

        runner = held_runner(settings, 0, "worker-a")
        feed(sim.take(10_000))
        runner.publish(force=True)
        before = runner.engine.model_version
        feed(sim.take(4000))  # the first version's watch ends quietly
        runner.publish(force=True)
        promoted = runner.engine.model_version
        assert promoted != before
        sabotage(runner.engine, seed=1)  # goes bad after its promotion, while watched
        with caplog.at_level(logging.WARNING):
            feed([e for e in sim.take(4000) if e["user_id"] not in WATCHED])
        assert "rolling back" in caplog.text
        runner.store.wait()
        versions = {v["version"]: v for v in replica.versions()}
        now = next(v for v in versions.values() if v["current"])
        assert now["status"] == "restored" and now["restored_from"] == f"p0-{before}"
        assert versions[f"p0-{promoted}"]["status"] == "rolled_back"
        assert runner.store.saved_cursor == runner.done  # the snapshot is as of the last chunk

        runner.redis.delete(runner.keys.lease(0))
        successor = held_runner(settings, 0, "worker-b")  # restores, replays: no gap
        assert successor.processor.offset == runner.processor.offset
        assert successor.engine.model_version == now["version"].partition("-")[2]
        for name, array in runner.engine.mf.state_dict().items():
            assert np.array_equal(array, successor.engine.mf.state_dict()[name]), name
    finally:
        replica.close()


def test_a_rollback_goes_on_where_it_can(
    settings: Settings, replica_client: tuple[ClusterEngine, TestClient]
) -> None:
    """Both partitions have an earlier version; one has no owner now: the other rolls back and
    the answer lists the one that could not."""
    _, client = replica_client
    sim = ShopSimulator(n_items=100, n_shoppers=40, seed=4, mean_gap_seconds=1.0)
    runners = {p: held_runner(settings, p, f"worker-{p}") for p in range(2)}
    for _ in range(2):  # two versions per partition, each promoted (no gate)
        assert client.post("/v1/events", json={"events": sim.take(400)}).status_code == 202
        for runner in runners.values():
            drain(runner)
            runner.publish(force=True)
    runners[1].redis.delete(runners[1].keys.lease(1))  # partition 1's worker is gone
    done: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: done.update(client.post("/v1/models/rollback").json()))
    thread.start()
    within(5.0, lambda: runners[0].redis.llen(runners[0].keys.commands(0)) == 1)
    raw = runners[0].redis.lpop(runners[0].keys.commands(0), 16)
    runners[0].handle_commands(raw)  # what partition 0's worker does in its loop
    thread.join(15)
    assert [r["partition"] for r in done["partitions"]] == [0]
    assert [(e["partition"], e["status"]) for e in done["errors"]] == [(1, 503)]
    assert current(client, 0)["status"] == "restored"  # type: ignore[index]


def test_a_worker_that_lost_the_partition_writes_no_snapshot_and_no_book(
    settings: Settings, replica_client: tuple[ClusterEngine, TestClient]
) -> None:
    """Fencing: once another worker holds the lease, the old owner's full snapshot (and the
    version in it) and its version book changes are refused (``LeaseLost``), so a late writer
    never replaces what the new owner restores from or records."""
    _, client = replica_client
    old = fed_runner(settings, client, 6, "worker-old")
    old.publish(force=True)
    before = client.get("/v1/models").json()["versions"]
    old.redis.set(old.keys.lease(0), "worker-new")  # the lease went elsewhere
    old.processor.snapshot()
    with pytest.raises(LeaseLost):
        old.store.wait()  # the snapshot, written in the background, is refused ...
    assert old.store.take_written() == []  # ... so it never becomes a version
    with pytest.raises(LeaseLost):
        old.engine.lifecycle.book.mark("v1", "candidate")
    assert client.get("/v1/models").json()["versions"] == before


def test_a_snapshot_is_written_while_the_worker_renews_its_lease(
    settings: Settings, replica_client: tuple[ClusterEngine, TestClient]
) -> None:
    """The full snapshot is written by a background thread while the worker's thread keeps
    renewing the lease (every round, under load): the fenced write must not depend on the lease
    key staying untouched meanwhile (a WATCH of it aborted every try and stopped the worker)."""
    _, client = replica_client
    runner = fed_runner(settings, client, 8, "worker-busy")
    stop = threading.Event()

    def renew() -> None:
        while not stop.is_set():
            runner.redis.pexpire(runner.keys.lease(0), 60_000)

    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    try:
        for _ in range(5):
            runner.processor.snapshot()
            runner.store.wait()
    finally:
        stop.set()
        renewer.join(5)
    stored = RedisVersions(runner.redis, settings.redis_prefix, 0)
    listed = stored.listing()
    assert listed and listed[0][1] is not None and runner.store.saved_cursor == runner.done
    assert stored.names() == runner.store.names() == [v for v, _ in listed]


def test_versions_enter_the_book_once_stored_and_a_stale_one_is_superseded(
    settings: Settings, replica_client: tuple[ClusterEngine, TestClient]
) -> None:
    """The lifecycle learns of a version when its background write is in Redis, between
    chunks. A snapshot taken before parameters were put back and stored after (an automatic
    rollback in the middle of a batch) is recorded as superseded, not gated or promoted."""
    _, client = replica_client
    sim = ShopSimulator(n_items=100, n_shoppers=30, seed=9, mean_gap_seconds=1.0)
    runner = held_runner(settings, 0, "worker-a")
    names = []
    for _ in range(2):
        assert client.post("/v1/events", json={"events": sim.take(300)}).status_code == 202
        drain(runner)
        runner.publish(force=True)
        names.append(runner.engine.model_version)
    assert runner.engine.lifecycle.book.history == names
    assert client.post("/v1/events", json={"events": sim.take(300)}).status_code == 202
    drain(runner)
    runner.store.cursor = runner.done
    runner.processor.snapshot()  # stored, but not handed to the lifecycle yet ...
    runner.store.wait()
    stale = runner.store.last_folder
    assert version_name(stale) not in runner.engine.lifecycle.book.status
    with runner.engine.lock:
        runner.engine.lifecycle.rollback()  # ... when the watch puts the previous one back
    runner._write_restored()  # what ``process`` does once the batch's effects are written
    book = runner.engine.lifecycle.book
    assert book.status[version_name(stale)]["status"] == "superseded"
    assert book.status[book.current]["status"] == "restored"  # type: ignore[index]
    assert book.status[book.current]["restored_from"] == names[0]  # type: ignore[index]
    assert version_name(stale) not in book.history


def test_what_a_snapshot_write_leaves_before_its_commit_expires(
    settings: Settings, replica_client: tuple[ClusterEngine, TestClient]
) -> None:
    """The arrays are written before the lease-checked commit makes them current: written
    keys carry a TTL until then (a writer killed in between leaks nothing for long), and the
    committed snapshot and version carry none."""
    _, client = replica_client
    runner = fed_runner(settings, client, 10, "worker-a")
    runner.publish(force=True)
    r = runner.redis
    folder = runner.store.last_folder
    assert r.ttl(runner.store.key) == -1 and r.ttl(runner.store.stored.key(folder)) == -1
    assert not list(r.scan_iter(f"{runner.store.key}:staging:*"))

    def killed(*args: object) -> None:
        raise RuntimeError("the worker died before its commit")

    fence, runner.store.fence.run = runner.store.fence.run, killed  # type: ignore[method-assign]
    runner.processor.snapshot()
    with pytest.raises(RuntimeError):
        runner.store.wait()
    runner.store.fence.run = fence  # type: ignore[method-assign]
    left = [
        *r.scan_iter(f"{runner.store.key}:staging:*"),
        runner.store.stored.key(runner.store.last_folder),
    ]
    assert len(left) == 2 and all(0 < r.ttl(k) <= UNCOMMITTED_TTL_SECONDS for k in left), left
    assert runner.store.take_written() == []  # never a version
    for key in left:
        r.delete(key)
    r.set(runner.keys.lease(0), "worker-b")  # the lease is lost: the commit is refused ...
    runner.processor.snapshot()
    with pytest.raises(LeaseLost):
        runner.store.wait()
    refused = runner.store.last_folder  # ... and what it wrote is deleted
    assert not r.exists(runner.store.stored.key(refused))
    assert not list(r.scan_iter(f"{runner.store.key}:staging:*"))
