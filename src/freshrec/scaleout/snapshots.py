"""Full partition snapshots in Redis: what the next owner of a partition restores (serving
replicas load the lighter serving publication instead, ``freshrec.scaleout.serving``).

Same interface as ``freshrec.registry.SnapshotStore`` (``save`` / ``load_latest``), so the
``Processor`` writes and restores them unchanged. One hash per partition holds the arrays
(raw bytes with dtype and shape, msgpack-framed: never pickles), the ids (msgpack), the
metadata (JSON, with ``cursor``: the global first offset of the last chunk reflected, for
replay after it) and a ``version`` that increases with every save, all written by one ``HSET``
(atomic). Mostly-empty large arrays go in as their entries, as on disk
(``freshrec.registry.store.pack_sparse``).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import msgspec
import numpy as np
import redis

from freshrec.registry.store import Snapshot, pack_sparse, unpack_sparse


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


def snapshot_key(prefix: str, partition: int) -> str:
    return f"{prefix}snap:p{partition}"


class RedisSnapshotStore:
    """Snapshots of one partition under ``<prefix>snap:p<partition>``.

    With ``background``, ``save`` copies the arrays (milliseconds) and a thread encodes and
    writes them (tens of milliseconds for a large partition), so the worker goes on processing
    meanwhile; ``saved_cursor`` only moves once a snapshot is in Redis, and a save requested
    while one is being written is skipped (``busy``).
    """

    def __init__(
        self, client: redis.Redis, prefix: str, partition: int, background: bool = False
    ) -> None:
        self.redis = client
        self.key = snapshot_key(prefix, partition)
        self.cursor = -1  # set by the owner before each save
        self.saved_cursor = -1  # cursor of the latest snapshot stored in Redis
        self.loaded_meta: dict[str, Any] = {}
        self.background = background
        self.error: BaseException | None = None
        self._writer: threading.Thread | None = None

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
        if not self.background:
            return self._write(offset, arrays, documents, meta, self.cursor)
        self.wait()
        copies = {k: np.array(v, copy=True) for k, v in arrays.items()}
        self._writer = threading.Thread(
            target=self._write_logged,
            args=(offset, copies, documents, meta, self.cursor),
            name=f"freshrec-{self.key}",
            daemon=True,
        )
        self._writer.start()
        return self.key

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
    ) -> str:
        packed = encode_arrays(pack_sparse(arrays))  # mostly-empty tables as their entries
        full_meta = {**meta, "offset": offset, "cursor": cursor, "created_at": time.time()}
        version = int(self.redis.hincrby(self.key, "counter", 1))
        self.redis.hset(
            self.key,
            mapping={
                "arrays": packed,
                "documents": msgspec.msgpack.encode(documents),
                "meta": json.dumps(full_meta),
                "version": version,
            },
        )
        self.saved_cursor = cursor
        return f"{self.key}@{version}"

    def version(self) -> int:
        """The version of the stored snapshot (0 = none)."""
        return int(self.redis.hget(self.key, "version") or 0)

    def load_latest(self) -> Snapshot | None:
        found = self.redis.hmget(self.key, ["arrays", "documents", "meta", "version"])
        if found[0] is None:
            return None
        arrays = unpack_sparse(decode_arrays(found[0]))
        meta = json.loads(found[2])
        meta["version"] = int(found[3])
        self.loaded_meta = meta
        self.cursor = self.saved_cursor = int(meta["cursor"])
        return Snapshot(int(meta["offset"]), arrays, msgspec.msgpack.decode(found[1]), meta)
