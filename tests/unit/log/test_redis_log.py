"""What the Redis log does beyond the shared contract: partitions, the consumer group
(delivery, acknowledgement, reclaiming a dead reader's entries), trimming, and outages."""

from __future__ import annotations

import time

import pytest

from freshrec.errors import StorageError
from freshrec.events import LoggedEvent
from freshrec.log import RedisLog, open_log
from freshrec.log.redis import partition_of
from tests.redis_helpers import REDIS_URL


def ev(n: int, user: str, event_id: str | None = None) -> LoggedEvent:
    return LoggedEvent(0, user, f"i{n}", 1000.0 + n, event_id)


@pytest.fixture
def log(redis_prefix: str):  # type: ignore[no-untyped-def]
    opened = RedisLog(REDIS_URL, partitions=3, prefix=redis_prefix)
    yield opened
    opened.close()


def test_events_go_to_their_users_partition_in_order(log: RedisLog) -> None:
    users = [f"u{n}" for n in range(12)]
    result = log.append([ev(n, users[n % 12]) for n in range(60)])
    assert result.accepted == 60
    total = 0
    for p in range(3):
        chunks = log.range_after(p, -1, 10**9)
        events = [e for c in chunks for e in c.events]
        assert {partition_of(e.user_id, 3) for e in events} <= {p}
        for user in {e.user_id for e in events}:  # each user's events keep their order
            mine = [e.ts for e in events if e.user_id == user]
            assert mine == sorted(mine)
        assert [c.local_first for c in chunks] == [0]
        assert log.partition_end(p) == len(events)
        total += len(events)
    assert total == 60 == log.end_offset()


def test_group_delivers_once_and_reclaims_unacknowledged(log: RedisLog) -> None:
    log.ensure_group(0)
    log.ensure_group(0)  # idempotent
    users = [u for u in (f"u{n}" for n in range(50)) if partition_of(u, 3) == 0][:2]
    log.append([ev(0, users[0]), ev(1, users[1])])
    log.append([ev(2, users[0])])
    first = log.read_group(0, "alice", count=10)
    assert [len(c.events) for c in first] == [2, 1]
    assert log.read_group(0, "bob", count=10) == []  # delivered to alice, pending there
    assert log.claim_pending(0, "bob", min_idle_ms=60_000) == []  # not idle long enough
    log.ack(0, first[0].entry_id)
    time.sleep(0.02)
    claimed = log.claim_pending(0, "bob", min_idle_ms=10)
    assert [c.entry_id for c in claimed] == [first[1].entry_id]  # only the unacknowledged one
    assert log.oldest_pending(0) == first[1].first
    log.ack(0, claimed[0].entry_id)
    assert log.oldest_pending(0) is None


def test_trim_drops_only_entries_before_the_offset(log: RedisLog) -> None:
    user = next(u for u in (f"u{n}" for n in range(50)) if partition_of(u, 3) == 1)
    for n in range(5):
        log.append([ev(n, user)])
    assert log.stream_length(1) == 5
    assert log.trim_before(1, 3) == 3
    assert [c.first for c in log.range_after(1, -1, 100)] == [3, 4]
    assert [e.item_id for e in log.read(3, 10)] == ["i3", "i4"]
    assert log.end_offset() == 5  # offsets keep counting


def test_reopen_keeps_offsets_and_dedup(redis_prefix: str) -> None:
    first = open_log(f"{REDIS_URL}?partitions=2&prefix={redis_prefix}")
    first.append([ev(0, "a", "x"), ev(1, "b", "y")])
    first.commit("c", 2)
    first.close()
    again = open_log(f"{REDIS_URL}?partitions=2&prefix={redis_prefix}")
    try:
        assert (again.end_offset(), again.committed("c")) == (2, 2)
        assert again.append([ev(2, "a", "x")]).duplicates == 1
    finally:
        again.close()


def test_partition_count_is_fixed(log: RedisLog, redis_prefix: str) -> None:
    with pytest.raises(StorageError, match="has 3 partitions, not 5"):
        RedisLog(REDIS_URL, partitions=5, prefix=redis_prefix)


def test_dedup_window_by_age(redis_prefix: str) -> None:
    now = [0.0]
    log = RedisLog(REDIS_URL, 2, redis_prefix, dedup_window_seconds=100, clock=lambda: now[0])
    try:
        log.append([ev(0, "u", "old")])
        now[0] = 150.0
        log.append([ev(1, "u", "new")])  # the first generation is 150 s old: rotate
        assert log.append([ev(2, "u", "old")]).duplicates == 1
        now[0] = 300.0
        log.append([ev(3, "u", "newer")])
        assert log.append([ev(4, "u", "old")]).accepted == 1
    finally:
        log.close()


def test_unreachable_redis_is_a_503_naming_it() -> None:
    with pytest.raises(StorageError, match=r"Redis at 127.0.0.1:1 is unreachable") as info:
        RedisLog("redis://127.0.0.1:1/0", timeout=0.2)
    assert info.value.status_code == 503


def test_a_redis_that_does_not_answer_in_time_may_have_stored_the_batch(log: RedisLog) -> None:
    """A timeout is not "not stored": the script may have run. The 503 says so, and a retry
    with the same event ids is counted once."""
    import socket
    import threading

    import redis

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    stalled = redis.Redis(port=silent.getsockname()[1], socket_timeout=0.2)
    real = log._append_script
    log._append_script = stalled.register_script(real.script)  # type: ignore[method-assign]
    try:
        with pytest.raises(StorageError, match="may have stored the batch") as info:
            log.append([ev(1, "u", "e1")])
        assert info.value.status_code == 503
    finally:
        log._append_script = real  # type: ignore[method-assign]
        stalled.close()
        for conn in accepted:
            conn.close()
        silent.close()
    assert log.append([ev(1, "u", "e1")]).accepted == 1  # not stored by the stalled try
    assert log.append([ev(1, "u", "e1")]).duplicates == 1  # a retry counts once
