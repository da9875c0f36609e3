"""Scale-out mode in one process on the real Redis: a worker and a serving replica, redelivery
after a crash, fencing by lease, hand-over between workers, the archive and backfill."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from freshrec.archive import backfill, query
from freshrec.cli import app
from freshrec.engine import Engine
from freshrec.log.redis import partition_of
from freshrec.scaleout import ClusterEngine, Worker
from freshrec.scaleout.keys import Keys
from freshrec.scaleout.partition import LeaseLost, PartitionRunner
from freshrec.serving import create_app
from freshrec.settings import Settings
from freshrec.state.redis import decode_record, user_key
from tests.conftest import make_checkerboard, view
from tests.redis_helpers import REDIS_URL


def scaleout_settings(prefix: str, **extra: object) -> Settings:
    return Settings(
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        redis_partitions=2,
        worker_lease_seconds=2.0,
        scaleout_publish_seconds=0.05,
        serving_poll_seconds=0.05,
        archive_flush_seconds=0.1,
        **extra,  # type: ignore[arg-type]
    )


@contextmanager
def running_worker(settings: Settings) -> Iterator[Worker]:
    """A scale-out worker running in a thread for the ``with`` block, then stopped."""
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(10)


def wait_models(replica: ClusterEngine, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while replica.refresh() or any(e is None for e in replica.partitions):
        assert time.monotonic() < deadline, "no model snapshots published"
        time.sleep(0.05)


def test_worker_and_replica_serve_fresh_state(settings: Settings, replica: ClusterEngine) -> None:
    with running_worker(settings):
        result = replica.ingest(make_checkerboard(10))
        assert (result.accepted, result.duplicates) == (60, 0)
        assert replica.wait_processed(30)
        time.sleep(0.2)  # the next publication carries the whole stream
        wait_models(replica)
        stats = replica.stats()
        assert (stats["events_accepted"], stats["events_processed"]) == (60, 60)
        assert (stats["users"], stats["items"], stats["ready"]) == (20, 6, True)
        # a new user's first view is visible to the next request (state read from Redis)
        replica.ingest(view("newcomer", "a0", 1_700_000_999.0))
        assert replica.wait_processed(10)
        recs = replica.recommend("newcomer", k=2)
        assert [(r.item_id, r.reason) for r in recs] == [
            ("a1", {"type": "because_you_viewed", "item_id": "a0"}),
            ("a2", {"type": "because_you_viewed", "item_id": "a0"}),
        ]
        assert [r.item_id for r in replica.similar("a0", 2)] == ["a1", "a2"]
        histogram = next(iter(replica.extra_metrics()))
        count = next(s.value for s in histogram.samples if s.name.endswith("_count"))
        assert count == 61


def held_runner(settings: Settings, p: int, token: str) -> PartitionRunner:
    """A runner of partition ``p`` holding its lease as ``token`` (what a worker does)."""
    from freshrec.log import RedisLog

    log = RedisLog(settings.redis_url, settings.redis_partitions, settings.redis_prefix)  # type: ignore[arg-type]
    log.redis.set(Keys(settings.redis_prefix).lease(p), token, px=60_000)
    runner = PartitionRunner(log, p, settings, token, token)
    runner.takeover()
    return runner


def partition_users(n: int, p: int, partitions: int = 2) -> list[str]:
    users = (f"user{k}" for k in range(10_000))
    return [u for u in users if partition_of(u, partitions) == p][:n]


def test_a_batch_redelivered_after_a_crash_is_applied_once(
    settings: Settings, replica: ClusterEngine
) -> None:
    users = partition_users(5, 0)
    events = [view(users[k % 5], f"i{k % 7}", 1_700_000_000 + k) for k in range(40)]
    replica.ingest(events[:20])
    a = held_runner(settings, 0, "worker-a")
    chunks = a.log.read_group(0, "worker-a", count=10)
    a.process(chunks)  # effects written and acknowledged
    a.publish(force=True)
    replica.ingest(events[20:])
    chunks = a.log.read_group(0, "worker-a", count=10)
    touched = a._apply(chunks)
    a._write_effects(chunks, touched)  # ... then "kill -9": never acknowledged
    assert a.log.oldest_pending(0) == chunks[0].first
    a.redis.delete(a.keys.lease(0))  # the lease lapses

    b = held_runner(settings, 0, "worker-b")  # replays from the snapshot, reclaims the batch
    assert a.log.oldest_pending(0) is None  # acknowledged, not applied again
    assert b.processor.offset == a.processor.offset == 40
    for user in users:
        record = decode_record(b.redis.get(user_key(settings.redis_prefix, user)))
        assert record.events == sum(e["user_id"] == user for e in events)
    np.testing.assert_array_equal(
        b.engine.popularity.raw_scores(), a.engine.popularity.raw_scores()
    )
    assert replica.stats()["events_processed"] == 40


def test_chunks_read_by_an_owner_that_lost_its_lease_are_claimed_by_the_next(
    settings: Settings, replica: ClusterEngine
) -> None:
    """A worker paused past its lease between its lease check and its read takes chunks the
    next owner then misses: they wait unacknowledged under the old name. The next owner meets
    the gap and claims them; nothing is lost, nothing applied twice."""
    users = partition_users(5, 0)
    events = [view(users[k % 5], f"i{k % 7}", 1_700_000_000 + k) for k in range(30)]
    replica.ingest(events[:10])
    a = held_runner(settings, 0, "worker-a")
    a.process(a.log.read_group(0, "worker-a", count=10))
    a.publish(force=True)
    a.redis.delete(a.keys.lease(0))  # a's lease lapses while it is paused
    b = held_runner(settings, 0, "worker-b")  # the next owner takes over
    replica.ingest(events[10:20])
    late = a.log.read_group(0, "worker-a", count=10)  # a wakes and reads (then finds it lost)
    assert late and a.log.oldest_pending(0) == late[0].first
    replica.ingest(events[20:])
    b.process(b.log.read_group(0, "worker-b", count=10))  # a gap: claims a's chunks first
    assert b.processor.offset == 30 and a.log.oldest_pending(0) is None
    for user in users:
        record = decode_record(b.redis.get(user_key(settings.redis_prefix, user)))
        assert record.events == sum(e["user_id"] == user for e in events)
    assert replica.stats()["events_processed"] == 30


def test_drift_detected_on_a_worker_is_listed_by_every_replica(
    settings: Settings, replica: ClusterEngine
) -> None:
    """Detections travel from the partition's engine to the cluster's drift stream; a new
    owner that replays them after a crash does not list them twice."""
    from freshrec.drift.events import DriftEvent

    users = partition_users(3, 0)
    events = [view(users[k % 3], f"i{k % 5}", 1_700_000_000 + k) for k in range(30)]
    replica.ingest(events[:10])
    a = held_runner(settings, 0, "worker-a")
    assert a.engine.drift is not None
    a.process(a.log.read_group(0, "worker-a", count=10))
    assert replica.drift_events() == []
    fired = DriftEvent("adwin", "hit_rate/covisitation", 10, 1_700_000_009.0, "forget")
    a.engine.drift.record.add(fired)  # what the monitor does when a detector fires
    replica.ingest(events[10:20])
    a.process(a.log.read_group(0, "worker-a", count=10))
    listed = replica.drift_events()
    assert listed == [
        {
            "detector": "adwin",
            "signal": "hit_rate/covisitation",
            "at_event": 10,
            "at_time": 1_700_000_009.0,
            "action": "forget",
            "partition": 0,
        }
    ]
    a.publish(force=True)  # the snapshot holds the detection
    a.redis.delete(a.keys.lease(0))
    b = held_runner(settings, 0, "worker-b")
    replica.ingest(events[20:])
    b.process(b.log.read_group(0, "worker-b", count=10))  # sends what it holds once more
    assert replica.drift_events() == listed
    # /metrics of a replica counts it once too (the alert rules read this counter)
    assert replica.drift_counts() == {("adwin", "hit_rate/covisitation"): 1}
    with TestClient(create_app(replica)) as client:
        text = client.get("/metrics").text
    line = 'freshrec_drift_detections_total{detector="adwin",signal="hit_rate/covisitation"} 1.0'
    assert line in text


def test_a_worker_that_lost_its_lease_cannot_write(
    settings: Settings, replica: ClusterEngine
) -> None:
    user = partition_users(1, 1)[0]
    runner = held_runner(settings, 1, "worker-a")
    runner.redis.set(runner.keys.lease(1), "worker-b")  # someone else owns it now
    replica.ingest(view(user, "x", 1_700_000_000.0))
    with pytest.raises(LeaseLost):
        runner.process(runner.log.read_group(1, "worker-a", count=10))
    assert runner.redis.get(user_key(settings.redis_prefix, user)) is None
    assert replica.stats()["events_processed"] == 0


def test_partitions_move_to_the_worker_that_stays(
    settings: Settings, replica: ClusterEngine
) -> None:
    first, second = Worker(settings), Worker(settings)
    try:
        first.step(block_ms=1)
        assert set(first.runners) == {0, 1}
        second.step(block_ms=1)  # joins: the assignment gives it one partition
        first.step(block_ms=1)  # ... which the first hands over
        second.step(block_ms=1)
        assert len(first.runners) == len(second.runners) == 1
        replica.ingest(make_checkerboard(5))
        for _ in range(20):
            first.step(block_ms=1)
            second.step(block_ms=1)
        assert replica.stats()["events_processed"] == 30
        second.shutdown()  # leaves cleanly: hands its partition back
        first.step(block_ms=1)
        assert set(first.runners) == {0, 1}
        replica.ingest(view("late", "a0", 1_700_001_000.0))
        first.step(block_ms=1)
        assert replica.stats()["events_processed"] == 31
    finally:
        first.shutdown()


def test_a_worker_whose_leases_lapsed_shuts_down_cleanly(
    settings: Settings, replica: ClusterEngine
) -> None:
    """Redis stalled past the lease: another worker holds the partitions when this one is
    stopped. It drops them (their new owner has them) instead of failing the hand-over."""
    first = Worker(settings)
    first.step(block_ms=1)
    assert set(first.runners) == {0, 1}
    replica.ingest(make_checkerboard(3))
    first.step(block_ms=1)
    for p in (0, 1):  # the leases lapsed and a second worker took them
        first.redis.set(first.keys.lease(p), "worker-b", px=60_000)
    first.shutdown()  # used to raise LeaseLost from the hand-over's snapshot
    assert first.runners == {}


def test_archive_query_and_backfill(redis_prefix: str, tmp_path: Path) -> None:
    settings = scaleout_settings(redis_prefix, data_dir=tmp_path / "data")
    replica = ClusterEngine(settings)
    worker = Worker(settings)
    try:
        events = make_checkerboard(10)
        replica.ingest(events)
        for _ in range(10):
            worker.step(block_ms=1)
        assert replica.wait_processed(5)
    finally:
        worker.stop()
        worker.shutdown()  # flushes the archive
        replica.close()
    names, rows = query(
        tmp_path / "data", "SELECT count(*), count(DISTINCT user_id), min(date) FROM events"
    )
    assert names[0] == "count_star()" and rows[0][:2] == (60, 20)
    assert rows[0][2].isoformat() == "2023-11-14"
    with Engine.open(tmp_path / "fresh") as fresh:
        assert backfill(tmp_path / "data", fresh) == (60, 0)
        assert backfill(tmp_path / "data", fresh) == (0, 60)  # idempotent
        fresh.process()
        assert fresh.stats()["events_processed"] == 60
        assert fresh.recommend("u3", k=1)[0].item_id in {"a0", "a1", "a2"}
    # the same through the command line
    cli = CliRunner()
    sql = "SELECT item_id, count(*) AS n FROM events GROUP BY item_id ORDER BY item_id LIMIT 2"
    out = cli.invoke(app, ["archive", "query", sql, "--data-dir", str(tmp_path / "data")])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == ["item_id\tn", "a0\t10", "a1\t10"]
    bad = cli.invoke(app, ["archive", "query", "SELECT nope FROM events", "--data-dir", "x"])
    assert bad.exit_code != 0 and "no archived events" in bad.output
    args = ["replay", "--from-archive", str(tmp_path / "data"), "--data-dir"]
    out = cli.invoke(app, [*args, str(tmp_path / "fresh2")])
    assert out.exit_code == 0 and "backfilled 60 events" in out.output, out.output


def test_worker_command_checks_partitions(settings: Settings) -> None:
    out = CliRunner().invoke(
        app,
        ["worker", "--redis-url", REDIS_URL, "--partitions", "0,9"],
        env={"FRESHREC_REDIS_PARTITIONS": "2"},
    )
    assert out.exit_code != 0 and "partitions [9] outside 0..1" in out.output


def test_stream_is_trimmed_only_below_what_every_reader_needs(
    settings: Settings, replica: ClusterEngine
) -> None:
    user = partition_users(1, 0)[0]
    for k in range(6):
        replica.ingest(view(user, f"i{k}", 1_700_000_000 + k))
    runner = held_runner(settings, 0, "worker-a")
    chunks = runner.log.read_group(0, "worker-a", count=3)
    runner.process(chunks)
    assert runner.trim() == 0  # nothing published yet: a new owner would need it all
    runner.publish(force=True)
    pending = runner.log.read_group(0, "worker-a", count=1)  # delivered, not acknowledged
    assert runner.trim() == 3
    assert runner.log.stream_length(0) == 3
    runner.process(pending + runner.log.read_group(0, "worker-a", count=10))
    runner.publish(force=True)
    assert runner.trim() == 3  # all reflected in the snapshot and acknowledged
    assert runner.log.stream_length(0) == 0


def test_workers_detect_drift_and_every_replica_lists_it(redis_prefix: str) -> None:
    """The drift monitor runs in the partition's engine on the worker, as embedded: an abrupt
    shift of the simulator is detected within 2,000 events, recalibrated, and listed."""
    from freshrec.sim.scenarios import DriftScenario

    settings = scaleout_settings(redis_prefix).model_copy(
        update={"redis_partitions": 1, "live_eval_every": 100}
    )
    shift = 30_000
    scenario = DriftScenario("abrupt", seed=4, shift_at=shift, span=10_000, n_shoppers=1000)
    replica = ClusterEngine(settings)
    try:
        runner = held_runner(settings, 0, "worker-a")
        for _ in range(0, 60_000, 5_000):
            replica.ingest(scenario.take(5_000))
            while chunks := runner.log.read_group(0, "worker-a", count=64):
                runner.process(chunks)
        listed = replica.drift_events()
        assert listed, "no drift detected on the worker"
        first = listed[0]
        assert first["partition"] == 0 and shift <= first["at_event"] <= shift + 2_000, listed
        soon = [e for e in listed if e["at_event"] <= shift + 2_000]
        assert any("forget" in e["action"] for e in soon), listed  # recalibrated on the worker
    finally:
        replica.close()
