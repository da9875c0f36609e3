"""Partition snapshots in Redis: what a worker publishes and what serving replicas load.

Same interface as ``freshrec.registry.SnapshotStore`` (``save`` / ``load_latest``), so the
``Processor`` writes and restores them unchanged. One hash per partition holds the arrays
(``.npz`` bytes, never pickles), the ids (msgpack), the metadata (JSON, with ``cursor``: the
global first offset of the last chunk reflected, for replay after it) and a ``version`` that
increases with every save, all written by one ``HSET`` (atomic).
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import msgspec
import numpy as np
import redis

from freshrec.registry.store import Snapshot


def snapshot_key(prefix: str, partition: int) -> str:
    return f"{prefix}snap:p{partition}"


class RedisSnapshotStore:
    """Snapshots of one partition under ``<prefix>snap:p<partition>``."""

    def __init__(self, client: redis.Redis, prefix: str, partition: int) -> None:
        self.redis = client
        self.key = snapshot_key(prefix, partition)
        self.cursor = -1  # set by the owner before each save
        self.loaded_meta: dict[str, Any] = {}

    def save(
        self,
        offset: int,
        arrays: dict[str, np.ndarray],
        documents: dict[str, Any],
        meta: dict[str, Any],
    ) -> str:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        full_meta = {**meta, "offset": offset, "cursor": self.cursor, "created_at": time.time()}
        version = int(self.redis.hincrby(self.key, "counter", 1))
        self.redis.hset(
            self.key,
            mapping={
                "arrays": buffer.getvalue(),
                "documents": msgspec.msgpack.encode(documents),
                "meta": json.dumps(full_meta),
                "version": version,
            },
        )
        return f"{self.key}@{version}"

    def version(self) -> int:
        """The version of the stored snapshot (0 = none)."""
        return int(self.redis.hget(self.key, "version") or 0)

    def load_latest(self) -> Snapshot | None:
        found = self.redis.hmget(self.key, ["arrays", "documents", "meta", "version"])
        if found[0] is None:
            return None
        with np.load(io.BytesIO(found[0]), allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(found[2])
        meta["version"] = int(found[3])
        self.loaded_meta = meta
        self.cursor = int(meta["cursor"])
        return Snapshot(int(meta["offset"]), arrays, msgspec.msgpack.decode(found[1]), meta)
