"""The shop documents of a scale-out deployment (catalogue, profiles, experiments) in Redis.

The interface of ``ShopStore`` (``put_many``, ``delete``, ``load``, ``subscribe``, ``close``),
shared by every replica of a deployment, plus a change feed so that each replica sees the
others' writes: every write runs one Lua script that stores the documents (a hash per kind),
bumps the deployment's shop version and scores each changed ``kind:id`` with that version in a
sorted set. A replica's ``poll`` reads the version (one ``GET``); when it moved, it reads the
ids changed since the version it saw and their current documents, and ``dispatch`` hands them
to the subscribers (``Catalogue``, ``UserProfiles``, ``Experiments``) -- O(changes), never a
reload of the catalogue. The sorted set keeps one member per document (its latest version),
so it is as large as the number of documents ever written.

Keys (under the deployment's prefix): ``shop:<kind>`` (hash id -> msgpack document),
``shop:version`` (int), ``shop:changes`` (sorted set ``kind:id`` -> version).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec
import redis

from freshrec.errors import StorageError
from freshrec.state.shopstore import KINDS, Change, _table

log = logging.getLogger(__name__)

# KEYS: version, changes, the kind's hash; ARGV: kind, then id, doc (empty = delete) pairs
_WRITE = """
local v = redis.call('INCR', KEYS[1])
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[3], ARGV[i])
  else
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  end
  redis.call('ZADD', KEYS[2], v, ARGV[1] .. ':' .. ARGV[i])
end
return v
"""


class RedisShopStore:
    """Documents of each kind in ``KINDS`` in Redis under ``prefix``, with a change feed."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix
        self.version_key = f"{prefix}shop:version"
        self.changes_key = f"{prefix}shop:changes"
        self._write = client.register_script(_WRITE)
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder().decode
        self._lock = threading.Lock()
        self._own: set[int] = set()  # versions this store wrote (already applied locally)
        self._subscribers: dict[str, list[Callable[[str, Any], None]]] = {k: [] for k in KINDS}
        self._added: dict[str, Counter[str]] = {}  # experiment counts not sent to Redis yet
        self._totals: dict[str, dict[str, int]] = {}  # deployment's counts at the last poll
        try:  # documents loaded from here on include every change up to this version
            self.seen = self.version()
        except StorageError as exc:  # start anyway: the first poll that reaches Redis loads all
            log.warning("%s; the shop's documents load when Redis is back", exc)
            self.seen = 0

    def _hash(self, kind: str) -> str:
        return f"{self.prefix}shop:{_table(kind)}"

    def _run(self, kind: str, pairs: list[tuple[str, bytes]]) -> None:
        argv: list[Any] = [kind]
        for key, blob in pairs:
            argv += [key, blob]
        try:
            version = int(
                self._write(keys=[self.version_key, self.changes_key, self._hash(kind)], args=argv)
            )
        except redis.RedisError as exc:
            raise StorageError(f"shop store: could not write {kind} to Redis: {exc}") from exc
        with self._lock:
            self._own.add(version)

    def put_many(self, kind: str, docs: Iterable[tuple[str, Any]]) -> None:
        """Insert or replace documents ``(id, doc)`` in one atomic script."""
        pairs = [(key, self._encode(doc)) for key, doc in docs]
        if pairs:
            self._run(kind, pairs)

    def delete(self, kind: str, key: str) -> None:
        self._run(kind, [(key, b"")])

    def load(self, kind: str) -> Iterator[tuple[str, Any]]:
        """Every document of ``kind`` (in no particular order; none while Redis cannot be
        reached -- the next successful ``poll`` then brings every document)."""
        try:
            docs = self.redis.hgetall(self._hash(kind))
        except redis.RedisError as exc:  # none now; the first poll that reaches Redis has all
            log.warning("shop store: could not read %s from Redis: %s", kind, exc)
            self.seen = 0
            return
        for key, blob in docs.items():
            yield key.decode(), self._decode(blob)

    def subscribe(self, kind: str, apply: Callable[[str, Any], None]) -> None:
        """Have ``apply(id, doc)`` called for each document of ``kind`` another replica
        writes (``doc`` None: deleted), from ``dispatch``."""
        self._subscribers[_table(kind)].append(apply)

    def unsubscribe(self, kind: str, apply: Callable[[str, Any], None]) -> None:
        """Stop calling ``apply`` (one subscribed with ``subscribe``)."""
        subscribers = self._subscribers[_table(kind)]
        if apply in subscribers:
            subscribers.remove(apply)

    # -- experiment counters, summed over the replicas ---------------------------------------
    def _counts_key(self, exp_id: str) -> str:
        return f"{self.prefix}shop:counts:{exp_id}"

    def count(self, exp_id: str, arm: str, added: dict[str, int]) -> None:
        """Add to an arm's counters (memory only: ``poll`` sends them with ``HINCRBY``)."""
        with self._lock:
            pending = self._added.setdefault(exp_id, Counter())
            for name, n in added.items():
                pending[f"{arm}:{name}"] += n

    def totals(self, exp_id: str) -> dict[str, int] | None:
        """The deployment's ``arm:counter`` totals as of the last poll plus this replica's
        counts since (read from Redis the first time; None when it cannot be reached)."""
        with self._lock:
            known = self._totals.get(exp_id)
        if known is None:
            try:
                raw = self.redis.hgetall(self._counts_key(exp_id))
            except redis.RedisError:
                return None
            known = {k.decode(): int(v) for k, v in raw.items()}
        with self._lock:
            self._totals.setdefault(exp_id, known)
            total = Counter(self._totals[exp_id])
            total.update(self._added.get(exp_id, Counter()))
        return dict(total)

    def _send_counts(self) -> None:
        """Send the counts added since the last poll, and read the totals of the experiments
        read out here (one pipeline; on failure the counts are kept for the next poll)."""
        with self._lock:
            added, self._added = self._added, {}
            wanted = list(self._totals)
        if not added and not wanted:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for exp_id, pending in added.items():
                for name, n in pending.items():
                    pipe.hincrby(self._counts_key(exp_id), name, n)
            for exp_id in wanted:
                pipe.hgetall(self._counts_key(exp_id))
            replies = pipe.execute()
        except redis.RedisError as exc:
            with self._lock:
                for exp_id, pending in added.items():
                    self._added.setdefault(exp_id, Counter()).update(pending)
            raise StorageError(f"shop store: could not count in Redis: {exc}") from exc
        fresh = replies[len(replies) - len(wanted) :]
        with self._lock:
            for exp_id, raw in zip(wanted, fresh, strict=True):
                self._totals[exp_id] = {k.decode(): int(v) for k, v in raw.items()}

    def version(self) -> int:
        try:
            return int(self.redis.get(self.version_key) or 0)
        except redis.RedisError as exc:
            raise StorageError(f"shop store: could not read Redis: {exc}") from exc

    def poll(self) -> list[Change]:
        """The documents other replicas changed since the last poll (one ``GET`` when none).
        Raises ``StorageError`` when Redis cannot be reached (the next poll catches up).
        Experiment counts added here since the last poll are sent first."""
        self._send_counts()
        version = self.version()
        if version <= self.seen:
            return []
        try:
            members = self.redis.zrangebyscore(
                self.changes_key, self.seen, version, start=None, num=None, withscores=True
            )
        except redis.RedisError as exc:
            raise StorageError(f"shop store: could not read Redis: {exc}") from exc
        with self._lock:
            own = self._own
            wanted = [
                m.decode().split(":", 1)
                for m, score in members
                if self.seen < score <= version and int(score) not in own
            ]
            self._own = {v for v in own if v > version}
        by_kind: dict[str, list[str]] = {}
        for kind, key in wanted:
            if kind in self._subscribers:
                by_kind.setdefault(kind, []).append(key)
        changes: list[Change] = []
        try:
            pipe = self.redis.pipeline(transaction=False)
            for kind, keys in by_kind.items():
                pipe.hmget(self._hash(kind), keys)
            for (kind, keys), blobs in zip(by_kind.items(), pipe.execute(), strict=True):
                for key, blob in zip(keys, blobs, strict=True):
                    changes.append((kind, key, None if blob is None else self._decode(blob)))
        except redis.RedisError as exc:
            raise StorageError(f"shop store: could not read Redis: {exc}") from exc
        self.seen = version
        return changes

    def dispatch(self, changes: list[Change]) -> None:
        """Apply ``changes`` (from ``poll``) through the subscribers."""
        for kind, key, doc in changes:
            for apply in self._subscribers[kind]:
                apply(key, doc)

    def close(self) -> None:
        """The client belongs to the caller (the deployment's connection pool)."""
