"""The serving publication on the real Redis: a replica scores exactly as the partition's worker
does, version after version (base, then diffs, then a new owner's base; a worker that lost the
partition cannot publish), and what it loads holds no per-user state."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
import redis

from freshrec.registry.store import unpack_sparse
from freshrec.scaleout import ClusterEngine
from freshrec.scaleout.partition import LeaseLost, PartitionRunner
from freshrec.scaleout.serving import (
    SEPARATE_PARTS,
    USER_PARTS,
    USER_ROWS,
    USER_STATE,
    ServingPublisher,
    ServingStore,
    context_key,
    serving_key,
)
from freshrec.scaleout.snapshots import RedisSnapshotStore, decode_arrays
from freshrec.settings import Settings
from tests.redis_helpers import REDIS_URL
from tests.unit.scaleout.test_scaleout import held_runner, partition_users

TYPES = ("view", "view", "view", "add_to_cart", "purchase")


def shop_events(users: list[str], items: int, n: int, t0: float, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "type": TYPES[int(rng.integers(0, len(TYPES)))],
            "user_id": users[int(rng.integers(0, len(users)))],
            "item_id": f"item{int(rng.integers(0, items))}",
            "timestamp": t0 + 7.0 * k,
        }
        for k in range(n)
    ]


def drain(runner: PartitionRunner) -> None:
    while chunks := runner.log.read_group(runner.partition, runner.consumer, count=32):
        runner.process(chunks)


def assert_same_recommendations(
    replica: ClusterEngine, runner: PartitionRunner, users: list[str]
) -> None:
    for user in users:
        served = replica.recommend(user, k=10)
        expected = runner.engine.recommend(user, k=10)
        assert [r.item_id for r in served] == [r.item_id for r in expected], user
        assert [r.score for r in served] == pytest.approx([r.score for r in expected], rel=1e-5)
        assert [r.reason for r in served] == [r.reason for r in expected], user


def test_replica_serves_what_the_worker_would_version_after_version(
    settings: Settings, replica: ClusterEngine
) -> None:
    users = partition_users(40, 0)
    t0 = 1_700_000_000.0
    replica.ingest(shop_events(users, 60, 1500, t0, seed=1))
    runner = held_runner(settings, 0, "worker-a")
    drain(runner)
    runner.publish(force=True)
    assert replica.refresh() == 1
    store = replica._stores[0]
    assert (store.bases_loaded, replica.partition_versions[0]) == (1, 1)
    assert_same_recommendations(replica, runner, users)

    # more traffic, new items: the next versions are diffs against the same base
    for round_ in range(2):
        replica.ingest(shop_events(users, 80, 300, t0 + 20_000 * (round_ + 1), seed=2 + round_))
        drain(runner)
        runner.publish(force=True)
        assert replica.refresh() == 1
        assert replica.refresh() == 0  # unchanged version: nothing reloaded
        assert (runner.serving.rebases, store.bases_loaded) == (1, 1)
        assert replica.partition_versions[0] == 2 + round_
        assert len(replica.partitions[0].state.items) == len(runner.engine.state.items)
        assert_same_recommendations(replica, runner, users)

    # a new owner (after a hand-over) starts a new base; the replica follows
    runner.redis.delete(runner.keys.lease(0))
    successor = held_runner(settings, 0, "worker-b")
    replica.ingest(shop_events(users, 90, 200, t0 + 90_000, seed=9))
    drain(successor)
    successor.publish(force=True)
    with pytest.raises(LeaseLost):  # the previous owner can no longer publish
        runner.publish_serving()
    assert replica.refresh() == 1
    assert store.bases_loaded == 2
    assert_same_recommendations(replica, successor, users)


def test_serving_publication_holds_no_per_user_state(
    settings: Settings, replica: ClusterEngine
) -> None:
    users = [u for u in partition_users(400, 1) if u.startswith("user")][:30]
    replica.ingest(shop_events(users, 50, 600, 1_700_000_000.0, seed=3))
    runner = held_runner(settings, 1, "worker-a")
    drain(runner)
    runner.publish(force=True)
    replica.ingest(shop_events(users, 50, 100, 1_700_090_000.0, seed=4))
    drain(runner)
    runner.publish(force=True)  # a base and a diff are stored now
    stored = runner.redis.hgetall(serving_key(settings.redis_prefix, 1))
    assert {b"base", b"base_items", b"diff"} <= set(stored)
    base_items = msgspec.msgpack.decode(stored[b"base_items"])
    diff = msgspec.msgpack.decode(stored[b"diff"])
    assert base_items + diff["items"] == runner.engine.state.items.keys()  # each id once
    for field, blob in stored.items():
        for user in users:
            assert user.encode() not in blob, (field, user)  # no user id anywhere
    base = decode_arrays(stored[b"base"])
    full = unpack_sparse(decode_arrays(runner.redis.hget(runner.store.key, "arrays")))
    assert full["mf/user_factors"].shape[0] == len(users)  # the takeover snapshot has them all
    for name in (*(f"state/{k}" for k in USER_STATE), *USER_ROWS):
        assert base[name].shape[0] == 0, name
    assert not [k for k in base if k.split("/")[0] in USER_PARTS]
    apart = (*USER_PARTS, *SEPARATE_PARTS)  # the cold-start table has a publication of its own
    assert set(base) == set(full) - {k for k in full if k.split("/")[0] in apart}
    context = runner.redis.hgetall(context_key(settings.redis_prefix, 1))
    assert set(decode_arrays(context[b"arrays"])) == {
        k.split("/", 1)[1] for k in full if k.startswith("context_popularity/")
    }
    for user in users:
        assert user.encode() not in context[b"arrays"], user
    # what the replica loaded has no user either, yet serves their fresh state from Redis
    engine = replica.partitions[1] if replica.refresh() or replica.partitions[1] else None
    assert engine is not None
    assert len(engine.state.users) == 0 and engine.mf._n_users == 0
    assert replica.recommend(users[0], k=5)


def test_a_large_change_makes_a_new_base_that_the_store_reads_once(redis_prefix: str) -> None:
    from tests.redis_helpers import REDIS_URL

    client = redis.Redis.from_url(REDIS_URL)
    client.set(f"{redis_prefix}lease:p0", "me")
    publisher = ServingPublisher(client, redis_prefix, 0, f"{redis_prefix}lease:p0", "me")
    store = ServingStore(client, redis_prefix, 0)
    table = np.zeros((4096, 4), dtype=np.float32)
    meta = {"models": {}}
    publisher.publish(1, {"t": table}, ["a", "b"], meta)
    table[3] = 1.0  # one row: a diff
    assert publisher.publish(2, {"t": table}, ["a", "b", "c"], meta) == 2
    snap = store.load_latest()
    assert snap is not None and snap.offset == 2 and snap.documents["items"] == ["a", "b", "c"]
    np.testing.assert_array_equal(snap.arrays["t"], table)
    table[:2000] = 2.0  # half the rows: a new base
    publisher.publish(3, {"t": table}, ["a", "b", "c", "d"], meta)
    assert publisher.rebases == 2
    assert msgspec.msgpack.decode(client.hget(store.key, "diff"))["items"] == []
    snap = store.load_latest()
    assert snap.documents["items"] == ["a", "b", "c", "d"] and store.bases_loaded == 2
    np.testing.assert_array_equal(snap.arrays["t"], table)
    client.set(f"{redis_prefix}lease:p0", "someone-else")
    with pytest.raises(redis.ResponseError, match="LEASE"):
        publisher.publish(4, {"t": table}, ["a"], meta)
    assert store.load_latest().offset == 3  # nothing written
    client.close()


def test_a_lease_renewed_during_a_publication_only_makes_it_try_again(redis_prefix: str) -> None:
    from tests.redis_helpers import REDIS_URL

    client = redis.Redis.from_url(REDIS_URL)
    lease = f"{redis_prefix}lease:p0"
    client.set(lease, "me")

    class RenewedOnce:
        """The client, but the lease is renewed between the first WATCH and its EXEC."""

        def __init__(self) -> None:
            self.renewed = 0

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(client, name)

        def pipeline(self):  # type: ignore[no-untyped-def]
            pipe = client.pipeline()
            if not self.renewed:
                self.renewed += 1
                multi = pipe.multi

                def renew_then_multi() -> None:
                    client.pexpire(lease, 60_000)  # what the worker's lease thread does
                    multi()

                pipe.multi = renew_then_multi  # type: ignore[method-assign]
            return pipe

    wrapped = RenewedOnce()
    publisher = ServingPublisher(wrapped, redis_prefix, 0, lease, "me")  # type: ignore[arg-type]
    table = np.ones((8, 2), dtype=np.float32)
    assert publisher.publish(1, {"t": table}, ["a"], {"models": {}}) == 1
    assert wrapped.renewed == 1
    snap = ServingStore(client, redis_prefix, 0).load_latest()
    assert snap is not None and snap.offset == 1
    np.testing.assert_array_equal(snap.arrays["t"], table)
    client.close()


def test_full_snapshots_store_mostly_empty_tables_as_their_entries(redis_prefix: str) -> None:
    """As on disk: a large, mostly -1 table goes to Redis as its set entries, back bit for bit."""
    rng = np.random.default_rng(2)
    nbr = np.full((40_000, 64), -1, dtype=np.int32)  # 10 MB, 10 % set
    set_ = rng.random(nbr.shape) < 0.1
    nbr[set_] = rng.integers(0, 40_000, int(set_.sum()))
    client = redis.Redis.from_url(REDIS_URL)
    store = RedisSnapshotStore(client, redis_prefix, 0)
    store.save(5, {"covisitation/nbr": nbr}, {"items": []}, {})
    assert len(client.hget(store.key, "arrays")) < 0.3 * nbr.nbytes
    snap = store.load_latest()
    assert snap is not None and snap.arrays["covisitation/nbr"].tobytes() == nbr.tobytes()
