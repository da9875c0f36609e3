"""The contract every log backend passes: embedded (memory, SQLite) and scale-out (Redis)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from freshrec.errors import ValidationError
from freshrec.events import LoggedEvent
from freshrec.log import EventLog, SqliteLog, open_log
from tests.redis_helpers import REDIS_URL


def ev(n: int, event_id: str | None = None, user: str = "u") -> LoggedEvent:
    return LoggedEvent(0, user, f"i{n}", 1000.0 + n, event_id)


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-1"])
def make_log(
    request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str
) -> Iterator[Callable[..., EventLog]]:
    opened: list[EventLog] = []
    urls = {
        "memory": "memory://",
        "sqlite": f"sqlite://{tmp_path / 'log.db'}",
        "redis": f"{REDIS_URL}?partitions=4&prefix={redis_prefix}",
        "redis-1": f"{REDIS_URL}?partitions=1&prefix={redis_prefix}",
    }

    def factory(**options: object) -> EventLog:
        log = open_log(urls[request.param], **options)
        opened.append(log)
        return log

    yield factory
    for log in opened:
        with contextlib.suppress(Exception):
            log.close()


def test_append_assigns_ordered_offsets(make_log: Callable[..., EventLog]) -> None:
    log = make_log()
    assert log.end_offset() == 0 and log.read(0, 10) == []
    first = log.append([ev(0), ev(1), ev(2)])
    second = log.append([ev(3)])
    assert (first.first_offset, first.accepted, second.first_offset) == (0, 3, 3)
    assert log.end_offset() == 4
    assert [e.item_id for e in log.read(0, 100)] == ["i0", "i1", "i2", "i3"]


def test_replay_from_any_offset(make_log: Callable[..., EventLog]) -> None:
    log = make_log()
    for start in range(0, 50, 7):
        log.append([ev(n) for n in range(start, min(start + 7, 50))])
    for offset in range(51):
        got = log.read(offset, 5)
        assert [e.item_id for e in got] == [f"i{n}" for n in range(offset, min(offset + 5, 50))]


def test_events_round_trip_every_field(make_log: Callable[..., EventLog]) -> None:
    log = make_log()
    event = LoggedEvent(5, "u", "i", 12.5, "e1", "s1", {"device": "mobile", "n": 3}, "r1", 9.5)
    log.append([event])
    assert log.read(0, 1) == [event]


def test_duplicates_within_and_across_batches(make_log: Callable[..., EventLog]) -> None:
    log = make_log()
    r1 = log.append([ev(0, "a"), ev(1, "b"), ev(2, "a"), ev(3)])
    r2 = log.append([ev(4, "b"), ev(5, "c"), ev(6)])
    assert (r1.accepted, r1.duplicates) == (3, 1)
    assert r1.accepted_mask == (True, True, False, True)
    assert (r2.accepted, r2.duplicates) == (2, 1)
    assert log.duplicates_total() == 2
    assert [e.item_id for e in log.read(0, 10)] == ["i0", "i1", "i3", "i5", "i6"]


def test_all_duplicates_append_nothing(make_log: Callable[..., EventLog]) -> None:
    log = make_log()
    log.append([ev(0, "a")])
    result = log.append([ev(1, "a")])
    assert (result.accepted, result.duplicates, log.end_offset()) == (0, 1, 1)


def test_committed_offsets(make_log: Callable[..., EventLog]) -> None:
    log = make_log()
    assert log.committed("processor") == 0
    log.commit("processor", 7)
    log.commit("other", 2)
    assert (log.committed("processor"), log.committed("other")) == (7, 2)


def test_dedup_window_rotates_and_stays_bounded(make_log: Callable[..., EventLog]) -> None:
    log = make_log(dedup_max_ids=3)
    log.append([ev(n, f"e{n}") for n in range(3)])  # generation A: e0..e2 (full)
    log.append([ev(3, "e3")])  # rotates: generation B holds e3, A still remembered
    assert log.append([ev(0, "e0")]).duplicates == 1
    log.append([ev(n, f"e{n}") for n in range(4, 6)])  # B full: e3, e4, e5
    log.append([ev(6, "e6")])  # rotates again: A (e0..e2) is forgotten
    assert log.append([ev(0, "e0")]).accepted == 1
    assert log.append([ev(5, "e5")]).duplicates == 1


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="unknown log backend"):
        open_log("kafka://nowhere")


def test_sqlite_log_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = SqliteLog(path)
    log.append([ev(0, "a"), ev(1, "b")])
    log.commit("processor", 1)
    log.close()
    reopened = SqliteLog(path)
    try:
        assert reopened.end_offset() == 2
        assert reopened.committed("processor") == 1
        assert reopened.append([ev(2, "a"), ev(3, "z")]).duplicates == 1
        assert reopened.duplicates_total() == 1
        assert [e.item_id for e in reopened.read(0, 10)] == ["i0", "i1", "i3"]
    finally:
        reopened.close()


def test_dedup_window_by_age(tmp_path: Path) -> None:
    now = [0.0]
    log = SqliteLog(tmp_path / "log.db", dedup_window_seconds=100, clock=lambda: now[0])
    log.append([ev(0, "old")])
    now[0] = 150.0
    log.append([ev(1, "new")])  # the first generation is 150 s old: rotate
    assert log.append([ev(2, "old")]).duplicates == 1  # still in the previous generation
    now[0] = 300.0
    log.append([ev(3, "newer")])  # rotate again: "old" is forgotten
    assert log.append([ev(4, "old")]).accepted == 1
    log.close()
