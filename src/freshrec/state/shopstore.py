"""Durable shop documents: catalogue items, user profiles and experiments, one SQLite file.

Each document is a msgpack blob under its id in a table of its kind. Writes are one
transaction per call (a bulk upsert of 10,000 items is one commit), so a document is either
wholly stored or not at all; ``path=None`` keeps everything in memory (an in-memory engine).

>>> store = ShopStore(None)
>>> store.put_many("items", [("a", {"price": 1.0}), ("b", {"price": 2.0})])
>>> sorted(store.load("items"))
[('a', {'price': 1.0}), ('b', {'price': 2.0})]
>>> store.delete("items", "a")
>>> [key for key, _ in store.load("items")]
['b']
>>> store.close()
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from freshrec.errors import StorageError

KINDS = ("items", "users", "experiments")
Change = tuple[str, str, Any]  # (kind, id, document or None when deleted)


class ShopStore:
    """Documents of each kind in ``KINDS``, keyed by id, in ``path`` (None = memory)."""

    def __init__(self, path: str | Path | None) -> None:
        target = ":memory:" if path is None else str(path)
        try:
            self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            for kind in KINDS:
                self._db.execute(
                    f"CREATE TABLE IF NOT EXISTS {kind} (id TEXT PRIMARY KEY, doc BLOB NOT NULL)"
                )
        except sqlite3.Error as exc:
            raise StorageError(f"shop store {target}: {exc}") from exc
        self._lock = threading.Lock()
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder().decode

    def put_many(self, kind: str, docs: Iterable[tuple[str, Any]]) -> None:
        """Insert or replace documents ``(id, doc)`` in one transaction."""
        rows = [(key, self._encode(doc)) for key, doc in docs]
        if not rows:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    f"INSERT OR REPLACE INTO {_table(kind)} (id, doc) VALUES (?, ?)", rows
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StorageError(f"shop store: could not write {kind}: {exc}") from exc

    def delete(self, kind: str, key: str) -> None:
        with self._lock:
            try:
                self._db.execute(f"DELETE FROM {_table(kind)} WHERE id = ?", (key,))
            except sqlite3.Error as exc:
                raise StorageError(f"shop store: could not delete from {kind}: {exc}") from exc

    def load(self, kind: str) -> Iterator[tuple[str, Any]]:
        """Every document of ``kind`` in insertion order."""
        with self._lock:
            rows = self._db.execute(f"SELECT id, doc FROM {_table(kind)} ORDER BY rowid").fetchall()
        for key, blob in rows:
            yield key, self._decode(blob)

    def subscribe(self, kind: str, apply: Callable[[str, Any], None]) -> None:
        """For the interface of shared stores (``freshrec.state.redis_shop``): one process
        owns this file, so no one else's changes are ever reported."""
        _table(kind)

    def unsubscribe(self, kind: str, apply: Callable[[str, Any], None]) -> None:
        _table(kind)

    def poll(self) -> list[Change]:
        return []

    def dispatch(self, changes: list[Change]) -> None:
        """Nothing to apply: see ``subscribe``."""

    def count(self, exp_id: str, arm: str, added: dict[str, int]) -> None:
        """Experiment counters: one process serves, so its in-memory counts are the totals."""

    def totals(self, exp_id: str) -> dict[str, int] | None:
        return None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _table(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return kind
