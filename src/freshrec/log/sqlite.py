"""Embedded log: SQLite in WAL mode with ``synchronous=FULL`` (one fsync per appended batch).

Events are stored in chunks (one row per appended batch, msgpack-encoded) so an append and a
replay each cost one row per batch. The de-duplication window lives in the same database and is
written in the same transaction as the events, so an acknowledged batch and the ids it claimed
are durable together. The window keeps two generations of ids: the current one fills until it
holds ``dedup_max_ids`` ids or is ``dedup_window_seconds`` old, then replaces the previous one,
so between one and two windows of ids are remembered, never more.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from freshrec.errors import StorageError
from freshrec.events import LoggedEvent
from freshrec.log.base import AppendResult, EventLog, register_log

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (first_offset INTEGER PRIMARY KEY, n INTEGER NOT NULL,
                                   body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS offsets (consumer TEXT PRIMARY KEY, next_offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dedup_0 (event_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup_1 (event_id TEXT PRIMARY KEY) WITHOUT ROWID;
"""
_SQL_VARS = 900  # ids per IN (...) lookup, below every SQLite build's variable limit


class SqliteLog(EventLog):
    """Durable event log in one SQLite file (or in memory when ``path`` is None)."""

    def __init__(
        self,
        path: str | Path | None,
        dedup_max_ids: int = 10_000_000,
        dedup_window_seconds: float = 7 * 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.dedup_max_ids = dedup_max_ids
        self.dedup_window_seconds = dedup_window_seconds
        self._clock = clock
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                ":memory:" if self.path is None else str(self.path),
                isolation_level=None,
                check_same_thread=False,
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open event log at {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(list[LoggedEvent])
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        self._gen = int(meta.get("dedup_gen", 0))
        self._gen_started = meta.get("dedup_gen_started", self._clock())
        self._gen_count = int(meta.get("dedup_gen_count", 0))
        self._duplicates = int(meta.get("duplicates", 0))
        row = self._db.execute(
            "SELECT first_offset + n FROM chunks ORDER BY first_offset DESC LIMIT 1"
        ).fetchone()
        self._end = 0 if row is None else int(row[0])

    # -- appending ---------------------------------------------------------------------------
    def _seen(self, ids: list[str]) -> set[str]:
        seen: set[str] = set()
        for start in range(0, len(ids), _SQL_VARS):
            part = ids[start : start + _SQL_VARS]
            marks = ",".join("?" * len(part))
            for table in ("dedup_0", "dedup_1"):
                rows = self._db.execute(
                    f"SELECT event_id FROM {table} WHERE event_id IN ({marks})", part
                )
                seen.update(r[0] for r in rows)
        return seen

    def _rotate_if_full(self) -> None:
        now = self._clock()
        full = self._gen_count >= self.dedup_max_ids
        old = now - self._gen_started >= self.dedup_window_seconds
        if not (full or old):
            return
        self._gen = 1 - self._gen
        self._db.execute(f"DELETE FROM dedup_{self._gen}")
        self._gen_started, self._gen_count = now, 0

    def append(self, events: list[LoggedEvent]) -> AppendResult:
        with self._lock:
            try:
                return self._append_locked(events)
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StorageError(f"event log append failed: {exc}") from exc

    def _append_locked(self, events: list[LoggedEvent]) -> AppendResult:
        ids = [e.event_id for e in events if e.event_id is not None]
        seen = self._seen(ids) if ids else set()
        kept: list[LoggedEvent] = []
        mask: list[bool] = []
        new_ids: list[tuple[str]] = []
        for e in events:
            eid = e.event_id
            if eid is not None:
                if eid in seen:
                    mask.append(False)
                    continue
                seen.add(eid)
                new_ids.append((eid,))
            kept.append(e)
            mask.append(True)
        duplicates = len(events) - len(kept)
        first = self._end
        self._db.execute("BEGIN IMMEDIATE")
        if new_ids:
            self._rotate_if_full()
            self._db.executemany(f"INSERT INTO dedup_{self._gen} VALUES (?)", new_ids)
            self._gen_count += len(new_ids)
        if kept:
            self._db.execute(
                "INSERT INTO chunks VALUES (?, ?, ?)",
                (first, len(kept), self._encoder.encode(kept)),
            )
        self._duplicates += duplicates
        self._db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [
                ("dedup_gen", self._gen),
                ("dedup_gen_started", self._gen_started),
                ("dedup_gen_count", self._gen_count),
                ("duplicates", self._duplicates),
            ],
        )
        self._db.execute("COMMIT")  # WAL + synchronous=FULL: fsync'd before this returns
        self._end = first + len(kept)
        return AppendResult(first, len(kept), duplicates, tuple(mask))

    # -- reading -----------------------------------------------------------------------------
    def read(self, offset: int, max_events: int) -> list[LoggedEvent]:
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        if offset >= self._end:  # caught up: no query (an idle processor polls 100 times/s)
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT first_offset, body FROM chunks WHERE first_offset >= "
                "(SELECT coalesce(max(first_offset), 0) FROM chunks WHERE first_offset <= ?) "
                "AND first_offset < ? ORDER BY first_offset",
                (offset, offset + max(1, max_events)),
            ).fetchall()
        out: list[LoggedEvent] = []
        for first, body in rows:
            events = self._decoder.decode(body)
            skip = offset - first if first < offset else 0
            out.extend(events[skip:] if skip else events)
            offset = first + len(events)
            if len(out) >= max_events:
                break
        return out[:max_events]

    def end_offset(self) -> int:
        return self._end

    def committed(self, consumer: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT next_offset FROM offsets WHERE consumer = ?", (consumer,)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def commit(self, consumer: str, offset: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO offsets VALUES (?, ?)", (consumer, offset))

    def duplicates_total(self) -> int:
        return self._duplicates

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _open_sqlite(url: str, **options: object) -> SqliteLog:
    path = url.removeprefix("sqlite://")
    return SqliteLog(path.removeprefix("/") if path.startswith("//") else path, **options)  # type: ignore[arg-type]


register_log("sqlite", _open_sqlite)
register_log("memory", lambda url, **options: SqliteLog(None, **options))  # type: ignore[arg-type]
