"""The serving publication of a partition: what replicas need, and only that, as base + diff.

A partition's full snapshot (``RedisSnapshotStore``) is for the next owner of the partition:
online state of every user, every model's parameters including the MF user factors. Serving
replicas read each user's state from Redis per request, so they need the item side only: the
item ids, the item arrays of the state (events, category, price) and each model's parameters
without its per-user rows (MF user factors and counts are cut to zero rows; the per-user event
counter is left out). That is the *serving publication*, under ``<prefix>serve:p<partition>``.

Most of it does not change between two publications (the ranker's hashed tables are fixed in
size and a second of traffic touches few of their rows), so it is written as a **base** -- every
array whole -- and a **diff** against that base: for each array the rows that differ from the
base (new rows included), or the whole array when it is small or changed shape; the item ids
added since the base. Every publication replaces the diff (one MULTI/EXEC under WATCH of the
partition's lease: a worker that lost the partition cannot publish; atomic); when the diff grows
beyond a quarter of the base, a new base is written instead. A replica keeps the decoded
base it holds and fetches only the diff while the base is unchanged, so picking up a version
costs about the size of what changed.

>>> import numpy as np
>>> base = {"t": np.zeros((1000, 4), np.float32), "small": np.arange(3)}
>>> new = {"t": base["t"].copy(), "small": np.arange(4)}
>>> new["t"][7] = 1.0
>>> whole, rows, values = diff_arrays(base, new)
>>> sorted(whole), rows["t"].tolist(), values["t"].shape
(['small'], [7], (1, 4))
>>> out = apply_diff(base, whole, rows, values, {"t": 1000})
>>> bool((out["t"] == new["t"]).all()), out["small"].tolist()
(True, [0, 1, 2, 3])
>>> grown = {"t": np.ones((2000, 4), np.float32)}  # from no rows at all to 2000
>>> diff_arrays({"t": np.zeros((0, 4), np.float32)}, grown)[1]["t"].shape
(2000,)
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import numpy as np
import redis

from freshrec.errors import StorageError
from freshrec.registry.store import Snapshot
from freshrec.scaleout.snapshots import decode_arrays, encode_arrays, write_fenced
from freshrec.state import OnlineState

# item-side arrays of ``OnlineState.arrays()``; its per-user arrays go out with zero rows
ITEM_STATE = ("item_events", "item_category", "item_price", "item_price_bucket")
USER_STATE = (
    "last_ts",
    "session_no",
    "session_start",
    "session_events",
    "rec_item",
    "rec_type",
    "rec_session",
    "rec_ts",
    "rec_count",
    "session_key",
)
# per-user arrays of model parts (sent with zero rows) and parts left out altogether
USER_ROWS = ("mf/user_factors", "mf/user_events")
USER_PARTS = ("user_events",)
# parts with a publication of their own (``ContextPublisher``), left out of this one
SEPARATE_PARTS = ("context_popularity",)
SMALL_BYTES = 4096  # arrays smaller than this are always sent whole
REBASE_FRACTION = 0.25  # a diff larger than this share of the base makes a new base


def serving_key(prefix: str, partition: int) -> str:
    return f"{prefix}serve:p{partition}"


def serving_arrays(state: OnlineState, parts: list[Any]) -> dict[str, np.ndarray]:
    """What a replica needs of a partition's state and processor parts (models, live quality),
    as ``Processor.snapshot`` names them, without any per-user row."""
    ni = len(state.items)
    arrays = {f"state/{k}": getattr(state, k)[:ni] for k in ITEM_STATE}
    arrays.update({f"state/{k}": getattr(state, k)[:0] for k in USER_STATE})
    arrays["state/purchased_user"] = np.zeros(0, dtype=np.int32)
    arrays["state/purchased_item"] = np.zeros(0, dtype=np.int32)
    arrays["state/max_ts"] = np.asarray([state.max_ts])
    for part in parts:
        if part.name in USER_PARTS or part.name in SEPARATE_PARTS:
            continue
        for k, v in part.state_dict().items():
            name = f"{part.name}/{k}"
            arrays[name] = v[:0] if name in USER_ROWS else v
    return arrays


def diff_arrays(
    base: dict[str, np.ndarray], new: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(whole, rows, values)``: arrays sent whole, and for the others the indices of the rows
    that differ from ``base`` (rows past its end included) with their new values."""
    whole: dict[str, np.ndarray] = {}
    rows: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    for name, arr in new.items():
        old = base.get(name)
        if (
            old is None
            or arr.ndim == 0
            or arr.nbytes < SMALL_BYTES
            or old.dtype != arr.dtype
            or old.shape[1:] != arr.shape[1:]
            or arr.shape[0] < old.shape[0]
        ):
            whole[name] = arr
            continue
        n = old.shape[0]
        changed = arr[:n] != old
        if changed.ndim > 1:  # a row changed if any of its cells did
            changed = changed.any(axis=tuple(range(1, changed.ndim)))
        idx = np.concatenate([np.flatnonzero(changed), np.arange(n, arr.shape[0])])
        rows[name] = idx.astype(np.int64)
        values[name] = arr[idx]
    return whole, rows, values


def apply_diff(
    base: dict[str, np.ndarray],
    whole: dict[str, np.ndarray],
    rows: dict[str, np.ndarray],
    values: dict[str, np.ndarray],
    lengths: dict[str, int],
) -> dict[str, np.ndarray]:
    """The arrays of the publication: ``base`` (left untouched) with the diff applied;
    ``lengths[name]`` is the number of rows of the new array."""
    out = dict(whole)
    for name, idx in rows.items():
        old = base[name]
        arr = np.empty((lengths[name], *old.shape[1:]), dtype=old.dtype)
        arr[: old.shape[0]] = old
        arr[idx] = values[name]
        out[name] = arr
    return out


class ServingPublisher:
    """Writes a partition's serving publications (in the worker's processing thread)."""

    def __init__(
        self, client: redis.Redis, prefix: str, partition: int, lease: str, token: str
    ) -> None:
        self.redis = client
        self.key = serving_key(prefix, partition)
        self.lease = lease  # the partition's lease key and the token that holds it
        self.token = token
        self.base: dict[str, np.ndarray] = {}  # copies of the arrays of the current base
        self.base_items = 0
        self.base_bytes = 0
        self.base_id = 0
        self.rebases = 0  # bases written by this publisher (a figure for tests and logs)

    def publish(
        self, offset: int, arrays: dict[str, np.ndarray], items: list[str], meta: dict[str, Any]
    ) -> int:
        """Write ``arrays`` (``serving_arrays``) and the partition's item ids as the next
        version; returns it. Raises ``redis.ResponseError`` (``LEASE ...``) when the lease is
        held by another worker (nothing is written then)."""
        whole, rows, values = diff_arrays(self.base, arrays) if self.base else (arrays, {}, {})
        diff_bytes = sum(a.nbytes for a in (*whole.values(), *rows.values(), *values.values()))
        rebase = not self.base or diff_bytes > REBASE_FRACTION * self.base_bytes
        version = int(self.redis.hincrby(self.key, "counter", 1))
        full_meta = {**meta, "offset": offset, "created_at": time.time()}
        mapping: dict[str, Any] = {"version": version}
        base_id, new_items = self.base_id, items[self.base_items :]
        if rebase:
            base = {k: np.array(v, copy=True) for k, v in arrays.items()}
            mapping["base"] = encode_arrays(base)
            mapping["base_items"] = msgspec.msgpack.encode(items)
            mapping["base_id"] = base_id = version
            whole, rows, values, new_items = {}, {}, {}, []
        mapping["diff"] = msgspec.msgpack.encode(
            {
                "base_id": base_id,
                "whole": encode_arrays(whole),
                "rows": encode_arrays(rows),
                "values": encode_arrays(values),
                "lengths": {k: int(arrays[k].shape[0]) for k in rows},
                "items": new_items,
                "meta": json.dumps(full_meta),
            }
        )
        self._write(mapping)
        if rebase:  # stored: later diffs are against it
            self.base, self.base_items, self.base_id = base, len(items), version
            self.base_bytes = sum(a.nbytes for a in base.values())
            self.rebases += 1
        return version

    def _write(self, mapping: dict[str, Any]) -> None:
        write_fenced(self.redis, self.lease, self.token, self.key, mapping)


class ServingStore:
    """A replica's reader of one partition's serving publications: ``load_latest`` gives the
    newest as a ``Snapshot`` (for ``Processor.restore``), fetching the base only when it
    changed since the one held."""

    def __init__(self, client: redis.Redis, prefix: str, partition: int) -> None:
        self.redis = client
        self.key = serving_key(prefix, partition)
        self.loaded_meta: dict[str, Any] = {}
        self.base_id = 0
        self.base: dict[str, np.ndarray] = {}
        self.base_items: list[str] = []
        self.bases_loaded = 0  # how many times a base was fetched (a figure for tests)

    def version(self) -> int:
        """The version of the newest publication (0 = none)."""
        return int(self.redis.hget(self.key, "version") or 0)

    def load_latest(self, mapped: bool = False) -> Snapshot | None:
        """The newest snapshot stored, or None (read into memory: ``mapped`` is for files)."""
        version, base_id, diff = self.redis.hmget(self.key, ["version", "base_id", "diff"])
        if diff is None:
            return None
        if int(base_id) != self.base_id:  # a new base: fetch it with its diff, atomically
            found = self.redis.hmget(self.key, ["version", "base_id", "diff", "base", "base_items"])
            version, base_id, diff = found[:3]
            self.base = decode_arrays(found[3])
            self.base_items = msgspec.msgpack.decode(found[4])
            self.base_id = int(base_id)
            self.bases_loaded += 1
        d = msgspec.msgpack.decode(diff)
        if d["base_id"] != self.base_id:
            raise StorageError(
                f"{self.key}: diff against base {d['base_id']}, base {self.base_id} stored"
            )
        arrays = {
            **self.base,
            **apply_diff(
                self.base,
                decode_arrays(d["whole"]),
                decode_arrays(d["rows"]),
                decode_arrays(d["values"]),
                d["lengths"],
            ),
        }
        documents = {
            "users": [],
            "items": self.base_items + d["items"],
            "session_users": [],
            "session_ids": [],
        }
        meta = json.loads(d["meta"])
        meta["version"] = int(version)
        self.loaded_meta = meta
        return Snapshot(int(meta["offset"]), arrays, documents, meta)


def context_key(prefix: str, partition: int) -> str:
    return f"{prefix}serve:p{partition}:context"


class ContextPublisher:
    """Writes a partition's cold-start table (``ContextPopularity``: one row per context or
    profile key x every item, and the trending counts) whole, on a slower cadence of its own
    (``scaleout_context_publish_seconds``): most of its rows change with every second of
    traffic, so in the serving publication it would make nearly every version a new base."""

    def __init__(
        self, client: redis.Redis, prefix: str, partition: int, lease: str, token: str
    ) -> None:
        self.redis = client
        self.key = context_key(prefix, partition)
        self.lease = lease
        self.token = token

    def publish(self, offset: int, arrays: dict[str, np.ndarray]) -> int:
        """Write ``arrays`` (``ContextPopularity.state_dict``) as the next version."""
        version = int(self.redis.hincrby(self.key, "counter", 1))
        mapping = {"version": version, "offset": offset, "arrays": encode_arrays(arrays)}
        write_fenced(self.redis, self.lease, self.token, self.key, mapping)
        return version


class ContextStore:
    """A replica's reader of one partition's cold-start table publications."""

    def __init__(self, client: redis.Redis, prefix: str, partition: int) -> None:
        self.redis = client
        self.key = context_key(prefix, partition)
        self.version = 0  # of the arrays held
        self.arrays: dict[str, np.ndarray] | None = None

    def load(self, version: int) -> bool:
        """Fetch the publication if ``version`` (read by the caller) is not the one held;
        returns whether new arrays were loaded."""
        if not version or version == self.version:
            return False
        found, blob = self.redis.hmget(self.key, ["version", "arrays"])
        if found is None or blob is None:
            return False
        self.arrays = decode_arrays(blob)
        self.version = int(found)
        return True
