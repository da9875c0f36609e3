"""Full partition snapshots in Redis: what the next owner of a partition restores (serving
replicas load the lighter serving publication instead, ``freshrec.scaleout.serving``).

Same interface as ``freshrec.registry.SnapshotStore`` (``save`` / ``load_latest``), so the
``Processor`` writes and restores them unchanged. One hash per partition holds the arrays
(raw bytes with dtype and shape, msgpack-framed: never pickles), the ids (msgpack), the
metadata (JSON, with ``cursor``: the global first offset of the last chunk reflected, for
replay after it) and a ``version`` that increases with every save, all written by one ``HSET``
(atomic). Mostly-empty large arrays go in as their entries, as on disk
(``freshrec.registry.store.pack_sparse``).

Each save is also a model *version* of the partition (``freshrec.engine.lifecycle``: gate,
promotion, rollback, as in embedded mode): the parameters of every model and monitor -- not the
online state, which a version never puts back -- under ``<prefix>ver:p<N>:<folder>`` (``arrays``
with their SHA-256 in ``meta``, checked on load), indexed by the sorted set ``<prefix>vers:p<N>``
(folder -> offset). The newest ``keep`` are kept, and every version the partition's version book
(``RedisVersionBook``, ``<prefix>book:p<N>``) may roll back to.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import redis

from freshrec.errors import StorageError
from freshrec.registry.store import Snapshot, pack_sparse, unpack_sparse
from freshrec.registry.versions import VersionBook, next_folder, version_folder, version_name


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """Arrays as msgpack ``{name: [dtype, shape, raw bytes]}`` (no pickles, no zip to check).

    >>> out = decode_arrays(encode_arrays({"a": np.arange(6, dtype=np.int16).reshape(2, 3)}))
    >>> out["a"].tolist(), out["a"].dtype.name
    ([[0, 1, 2], [3, 4, 5]], 'int16')
    """
    return msgspec.msgpack.encode(
        {
            k: [np.ascontiguousarray(v).dtype.str, list(v.shape), np.ascontiguousarray(v).data]
            for k, v in arrays.items()
        }
    )


def decode_arrays(data: bytes) -> dict[str, np.ndarray]:
    """What ``encode_arrays`` wrote, as read-only views of ``data`` (loaders copy them)."""
    out = {}
    for k, (dtype, shape, raw) in msgspec.msgpack.decode(data).items():
        kind = np.dtype(dtype)
        if kind.hasobject:
            raise ValueError(f"snapshot array {k!r} has an object dtype")
        out[k] = np.frombuffer(raw, dtype=kind).reshape(shape)
    return out


WATCH_TRIES = 20  # a lease renewed between WATCH and EXEC makes the write try again


_SET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LEASE the partition is no longer held by this worker')
end
return redis.call('SET', KEYS[2], ARGV[2])
"""
# KEYS: lease, staging hash, snapshot key, version key, versions index
# ARGV: token, offset, folder
_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  redis.call('DEL', KEYS[2], KEYS[4])
  return redis.error_reply('LEASE the partition is no longer held by this worker')
end
redis.call('RENAME', KEYS[2], KEYS[3])
redis.call('PERSIST', KEYS[3])
redis.call('PERSIST', KEYS[4])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[3])
return 1
"""
UNCOMMITTED_TTL_SECONDS = 3600  # what a writer that died before its commit left expires


class LeaseLost(StorageError):
    """Another worker owns the partition now: this runner must stop."""


def write_fenced(
    client: redis.Redis, lease: str, token: str, key: str, mapping: dict[str, Any]
) -> None:
    """``HSET key mapping`` only while ``lease`` holds ``token``: WATCH the lease, check it,
    write in MULTI/EXEC (aborted if the lease changed meanwhile; for the worker's own thread,
    which renews the lease between its writes). Not a Lua script: a base of megabytes passed
    through Lua costs Redis about four times the CPU of a plain HSET. Raises
    ``redis.ResponseError`` (``LEASE ...``) when another worker holds the lease."""
    held = token.encode()
    for _ in range(WATCH_TRIES):
        with client.pipeline() as pipe:
            try:
                pipe.watch(lease)
                if pipe.get(lease) != held:
                    raise redis.ResponseError(
                        "LEASE the partition is no longer held by this worker"
                    )
                pipe.multi()
                pipe.hset(key, mapping=mapping)
                pipe.execute()
                return
            except redis.WatchError:
                continue  # renewed (or taken) between WATCH and EXEC: look again
    raise StorageError(f"{key}: the lease kept changing; publication not written")


class Fence:
    """The lease a partition's owner writes under (its key and this owner's token): a worker
    that lost the partition gets ``LeaseLost`` instead of writing. Small values only (``set``:
    checked and written by one script, whoever renews the lease meanwhile); the snapshot writer
    commits its large arrays with a script of its own (``RedisSnapshotStore``)."""

    def __init__(self, client: redis.Redis, lease: str, token: str) -> None:
        self.redis = client
        self.lease = lease
        self.token = token

    def set(self, key: str, value: str) -> None:
        """``SET key value`` while the lease is this owner's."""
        self.run(_SET, key, [key], [value])

    def run(self, script: str, what: str, keys: list[str], args: list[object]) -> None:
        """``script`` with the lease as ``KEYS[1]`` and this owner's token as ``ARGV[1]``
        (it answers ``LEASE ...`` when they differ: ``LeaseLost``)."""
        try:
            self.redis.eval(script, 1 + len(keys), self.lease, *keys, self.token, *args)
        except redis.ResponseError as exc:
            if "LEASE" in str(exc):
                raise LeaseLost(f"{what}: {exc}") from None
            raise


def snapshot_key(prefix: str, partition: int) -> str:
    return f"{prefix}snap:p{partition}"


def versions_key(prefix: str, partition: int) -> str:
    """Sorted set: the partition's stored versions (snapshot folder names) by log offset."""
    return f"{prefix}vers:p{partition}"


def book_key(prefix: str, partition: int) -> str:
    """The partition's version book (JSON: promotion history and each version's status)."""
    return f"{prefix}book:p{partition}"


class RedisVersionBook(VersionBook):
    """``VersionBook`` kept in Redis (one ``SET`` of its JSON per change): any worker that
    takes the partition over, and every replica, reads the same book."""

    def __init__(
        self, client: redis.Redis, key: str, keep_promoted: int = 3, fence: Fence | None = None
    ) -> None:
        super().__init__(None, keep_promoted)
        self.redis = client
        self.key = key
        self.fence = fence  # the owner's: a worker that lost the partition cannot write it
        raw = client.get(key)
        if raw is not None:
            doc = json.loads(raw)
            self.history = list(doc["history"])
            self.status = dict(doc["status"])

    def _save(self) -> None:
        doc = json.dumps({"history": self.history, "status": self.status})
        if self.fence is None:
            self.redis.set(self.key, doc)
        else:
            self.fence.set(self.key, doc)


class RedisVersions:
    """The stored versions of one partition (read side: replicas list them; the partition's
    ``RedisSnapshotStore`` writes them)."""

    def __init__(self, client: redis.Redis, prefix: str, partition: int) -> None:
        self.redis = client
        self.prefix = prefix
        self.partition = partition
        self.index = versions_key(prefix, partition)

    def key(self, folder: str) -> str:
        return f"{self.prefix}ver:p{self.partition}:{folder}"

    def folders(self) -> list[str]:
        """Stored snapshot folder names, newest first."""
        return [f.decode() for f in self.redis.zrevrange(self.index, 0, -1)]

    def has(self, version: str) -> bool:
        folder = version_folder(version)
        return folder is not None and self.redis.zscore(self.index, folder) is not None

    def names(self) -> list[str]:
        """Every stored version, newest first (``listing`` without reading any metadata)."""
        return [version_name(f) for f in self.folders()]

    def listing(self) -> list[tuple[str, dict[str, Any] | None]]:
        """Every stored version with its metadata (None if unreadable), newest first."""
        folders = self.folders()
        pipe = self.redis.pipeline(transaction=False)
        for folder in folders:
            pipe.hget(self.key(folder), "meta")
        out: list[tuple[str, dict[str, Any] | None]] = []
        for folder, raw in zip(folders, pipe.execute(), strict=True):
            try:
                meta = json.loads(raw) if raw is not None else None
            except ValueError:
                meta = None
            out.append((version_name(folder), meta))
        return out

    def load_version(self, version: str, mapped: bool = False) -> Snapshot:
        """``version``'s parameters, checksum verified (``ValueError`` if missing or damaged);
        always read into memory (``mapped`` is for stores on files)."""
        folder = version_folder(version)
        raw, meta_raw = self.redis.hmget(self.key(folder or version), ["arrays", "meta"])
        if raw is None or meta_raw is None:
            raise ValueError(f"version {version} of partition {self.partition} is not stored")
        try:
            meta = json.loads(meta_raw)
            if hashlib.sha256(raw).hexdigest() != meta["sha256"]:
                raise ValueError("checksum mismatch")
            arrays = unpack_sparse(decode_arrays(raw))
        except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
            damaged = f"damaged version {version} of partition {self.partition}: {exc}"
            raise ValueError(damaged) from exc
        return Snapshot(int(meta["offset"]), arrays, {}, meta)


class RedisSnapshotStore:
    """Snapshots of one partition under ``<prefix>snap:p<partition>``.

    With ``background``, ``save`` copies the arrays (milliseconds) and a thread encodes and
    writes them (tens of milliseconds for a large partition), so the worker goes on processing
    meanwhile; ``saved_cursor`` only moves once a snapshot is in Redis, and a save requested
    while one is being written is skipped (``busy``).
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        partition: int,
        background: bool = False,
        keep: int = 2,
        fence: Fence | None = None,
    ) -> None:
        self.redis = client
        self.fence = fence  # the owner's: a worker that lost the partition writes nothing
        self.key = snapshot_key(prefix, partition)
        self.stored = RedisVersions(client, prefix, partition)
        self.keep = keep
        self.pinned: set[str] = set()  # folders never pruned (versions a rollback may need)
        self.unwanted: Callable[[str], str | None] = lambda name: None  # the lifecycle's
        self.taken: Callable[[str], bool] = lambda name: False  # ... and names it still knows
        self.cursor = -1  # set by the owner before each save
        self.saved_cursor = -1  # cursor of the latest snapshot stored in Redis
        self.loaded_meta: dict[str, Any] = {}
        self.background = background
        self.error: BaseException | None = None
        self._writer: threading.Thread | None = None
        self._written: deque[str] = deque()  # folders stored, not yet taken (``take_written``)
        self.last_folder = ""  # the folder of the latest save

    @property
    def busy(self) -> bool:
        return self._writer is not None and self._writer.is_alive()

    def wait(self) -> None:
        """Until the snapshot being written (if any) is in Redis; re-raises its error."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def save(
        self,
        offset: int,
        arrays: dict[str, np.ndarray],
        documents: dict[str, Any],
        meta: dict[str, Any],
    ) -> str:
        """Write a snapshot (in the background if so built); returns its version's folder
        name, decided here: a second save at the same offset is ``<offset>-1``..."""
        self.wait()  # also orders the names: the one being written is in the index
        names = self.stored.folders()
        folder = next_folder(offset, names, lambda f: f in names or self.taken(f))
        self.last_folder = folder
        if not self.background:
            self._write(offset, arrays, documents, meta, self.cursor, folder)
            return folder
        copies = {k: np.array(v, copy=True) for k, v in arrays.items()}
        self._writer = threading.Thread(
            target=self._write_logged,
            args=(offset, copies, documents, meta, self.cursor, folder),
            name=f"freshrec-{self.key}",
            daemon=True,
        )
        self._writer.start()
        return folder

    def _write_logged(self, *args: Any) -> None:
        try:
            self._write(*args)
        except BaseException as exc:
            self.error = exc

    def _write(
        self,
        offset: int,
        arrays: dict[str, np.ndarray],
        documents: dict[str, Any],
        meta: dict[str, Any],
        cursor: int,
        folder: str,
    ) -> None:
        sparse = pack_sparse(arrays)  # mostly-empty tables as their entries
        packed = encode_arrays(sparse)
        full_meta = {**meta, "offset": offset, "cursor": cursor, "created_at": time.time()}
        version = int(self.redis.hincrby(self.key, "counter", 1))
        params = encode_arrays({k: v for k, v in sparse.items() if not k.startswith("state/")})
        latest = {
            "arrays": packed,
            "documents": msgspec.msgpack.encode(documents),
            "meta": json.dumps(full_meta),
            "version": version,
            "counter": version,  # a fenced write replaces the whole hash
        }
        digest = hashlib.sha256(params).hexdigest()
        stored = {"arrays": params, "meta": json.dumps({**full_meta, "sha256": digest})}

        if self.fence is None:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(self.key, mapping=latest)
            pipe.hset(self.stored.key(folder), mapping=stored)
            pipe.zadd(self.stored.index, {folder: offset})
            pipe.execute()
        else:
            self._commit_fenced(latest, stored, folder, offset)
        self.saved_cursor = cursor
        self._written.append(folder)
        self.prune()

    def _commit_fenced(
        self, latest: dict[str, Any], stored: dict[str, Any], folder: str, offset: int
    ) -> None:
        """Write under the owner's lease. This runs in the writer thread while the worker's
        thread renews the lease every round, so a WATCH of the lease would abort nearly every
        time; and tens of megabytes passed through a Lua script cost Redis several times a plain
        HSET. So the arrays go to keys nobody reads yet (a staging hash, the version's own key),
        and a small script checks the lease and makes them current: ``RENAME`` of the staging
        hash onto the snapshot key and the version into the index; a worker that lost the
        partition has both deleted instead (``LeaseLost``). Until the commit both expire, so a
        writer killed in between leaves nothing behind for long."""
        fence = self.fence
        assert fence is not None
        staging = f"{self.key}:staging:{uuid.uuid4().hex}"
        version_key = self.stored.key(folder)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(staging, mapping=latest)
        pipe.hset(version_key, mapping=stored)
        for key in (staging, version_key):  # the commit removes these; a crash before it not
            pipe.expire(key, UNCOMMITTED_TTL_SECONDS)
        pipe.execute()
        keys = [staging, self.key, version_key, self.stored.index]
        fence.run(_COMMIT, self.key, keys, [offset, folder])

    # -- versions (``freshrec.engine.lifecycle.VersionStore``) -------------------------------
    def has(self, version: str) -> bool:
        return self.stored.has(version)

    def load_version(self, version: str, mapped: bool = False) -> Snapshot:
        return self.stored.load_version(version, mapped)

    def take_written(self) -> list[str]:
        """The folders stored since the last call, oldest first (the owner hands them to its
        lifecycle: a version exists for it once it is in Redis, not when it is asked for)."""
        out = []
        while self._written:
            out.append(self._written.popleft())
        return out

    def listing(self) -> list[tuple[str, dict[str, Any] | None]]:
        return self.stored.listing()

    def names(self) -> list[str]:
        return self.stored.names()

    def prune(self) -> None:
        """Drop the versions beyond the newest ``keep``, except pinned ones."""
        old = [f for f in self.stored.folders()[self.keep :] if f not in self.pinned]
        if old:
            pipe = self.redis.pipeline(transaction=True)
            pipe.zrem(self.stored.index, *old)
            pipe.delete(*(self.stored.key(f) for f in old))
            pipe.execute()

    def version(self) -> int:
        """The version of the stored snapshot (0 = none)."""
        return int(self.redis.hget(self.key, "version") or 0)

    def load_latest(self, mapped: bool = False) -> Snapshot | None:
        """The newest snapshot stored, or None (read into memory: ``mapped`` is for files)."""
        found = self.redis.hmget(self.key, ["arrays", "documents", "meta", "version"])
        if found[0] is None:
            return None
        arrays = unpack_sparse(decode_arrays(found[0]))
        meta = json.loads(found[2])
        meta["version"] = int(found[3])
        self.loaded_meta = meta
        self.cursor = self.saved_cursor = int(meta["cursor"])
        return Snapshot(int(meta["offset"]), arrays, msgspec.msgpack.decode(found[1]), meta)
