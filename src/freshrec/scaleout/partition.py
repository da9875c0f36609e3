"""One partition in a worker: the embedded engine's processor fed by a Redis stream.

A ``PartitionRunner`` holds, in memory, the partition's ``OnlineState`` and models -- an
``Engine`` wired exactly as in embedded mode -- and keeps them in step with the stream:

1. ``takeover``: restore the partition's latest snapshot from Redis, replay the chunks after
   its cursor up to ``done`` (the last chunk whose effects are in Redis), then claim the chunks
   a dead owner left pending (``XAUTOCLAIM``) and process them;
2. ``process``: apply new chunks with the ``Processor`` (test-then-learn, state, models), then
   write the effects -- each touched user's record, the partition's ``done`` and processed
   counts, the freshness histogram -- in **one Lua script fenced by the lease** (a worker that
   lost its lease cannot write), and only then ``XACK`` the chunks;
3. ``drift``: the partition's drift detections since the last batch are appended to the
   cluster's drift stream, which any replica lists at ``GET /v1/drift/events`` (a detection
   replayed by a new owner after a crash is sent again; readers drop the repeats);
4. ``publish``: every ``scaleout_publish_seconds``, the serving publication (item side only,
   as a diff against a base: ``freshrec.scaleout.serving``) for replicas; every
   ``scaleout_snapshot_seconds`` and on hand-over, the full snapshot (state, every model) for the
   next owner.

A chunk redelivered after a crash is recognised by ``done`` (written atomically with its
effects) and only acknowledged: nothing is applied twice.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np
import redis

from freshrec.drift.events import DriftEvent
from freshrec.engine import Engine
from freshrec.engine.processor import Processor
from freshrec.errors import BadRequest, FreshrecError, StorageError
from freshrec.log.redis import Chunk, RedisLog
from freshrec.scaleout.feed import ChunkFeed
from freshrec.scaleout.keys import Keys
from freshrec.scaleout.serving import ContextPublisher, ServingPublisher, serving_arrays
from freshrec.scaleout.snapshots import (
    Fence,
    LeaseLost,
    RedisSnapshotStore,
    RedisVersionBook,
    book_key,
)
from freshrec.settings import Settings
from freshrec.state.arrays import grow
from freshrec.state.profiles import UserProfiles
from freshrec.state.redis import encode_records, user_key
from freshrec.state.redis_shop import RedisShopStore

log = logging.getLogger(__name__)

REPLY_TTL_SECONDS = 60  # a lifecycle command's answer waits this long for its replica
FRESHNESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)

# KEYS: lease, parts hash, items set, freshness hash, user keys...
# ARGV: token, partition, done, processed, users, lease ms, n_items, items..., n_chunks,
#       (acked_at, events)..., records...
_EFFECTS = r"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LEASE partition ' .. ARGV[2] .. ' is no longer held by this worker')
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local p = ARGV[2]
redis.call('HSET', KEYS[2], 'done:' .. p, ARGV[3], 'processed:' .. p, ARGV[4],
           'users:' .. p, ARGV[5])
local n_items = tonumber(ARGV[7])
for s = 1, n_items, 5000 do
  redis.call('SADD', KEYS[3], unpack(ARGV, 8 + s - 1, 8 + math.min(s + 4999, n_items) - 1))
end
local at = 8 + n_items
local n_chunks = tonumber(ARGV[at])
local tm = redis.call('TIME')
local now = tonumber(tm[1]) + tonumber(tm[2]) / 1e6
local bounds = {@BOUNDS@}
local names = {@NAMES@}
for c = 0, n_chunks - 1 do
  local d = now - tonumber(ARGV[at + 1 + 2 * c])
  local n = tonumber(ARGV[at + 2 + 2 * c])
  local field = 'le:+Inf'
  for j, b in ipairs(bounds) do
    if d <= b then field = 'le:' .. names[j]; break end
  end
  redis.call('HINCRBY', KEYS[4], field, n)
  redis.call('HINCRBY', KEYS[4], 'count', n)
  redis.call('HINCRBYFLOAT', KEYS[4], 'sum', d * n)
end
local first = at + 1 + 2 * n_chunks
for k = 5, #KEYS do
  redis.call('SET', KEYS[k], ARGV[first + k - 5])
end
return 1
""".replace("@BOUNDS@", ", ".join(repr(b) for b in FRESHNESS_BUCKETS)).replace(
    "@NAMES@", ", ".join(f"'{b!r}'" for b in FRESHNESS_BUCKETS)
)


# KEYS: drift seen hash, drift counts hash; ARGV: the detection's key, "<detector>|<signal>"
_COUNT_DRIFT = """
if redis.call('HSETNX', KEYS[1], ARGV[1], 1) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
end
return 1
"""


def drift_fields(event: DriftEvent) -> dict[str, str]:
    """A drift detection as the fields of a stream entry."""
    return {
        "detector": event.detector,
        "signal": event.signal,
        "at_event": str(event.at_event),
        "at_time": repr(event.at_time),
        "action": event.action,
    }


class UserEvents:
    """Events processed per user of the partition; rides in snapshots as a processor part."""

    name = "user_events"

    def __init__(self) -> None:
        self.events = np.zeros(0, dtype=np.int64)
        self._n = 0

    def add(self, users: np.ndarray, n_users: int) -> None:
        self.events = grow(self.events, n_users)
        self._n = max(self._n, n_users)
        np.add.at(self.events, users, 1)

    def due(self, first_offset: int, n: int) -> np.ndarray:
        return np.zeros(0, dtype=np.int64)  # observes no event: it counts after each batch

    def observe(self, event: object, offset: int) -> None:  # pragma: no cover - never due
        pass

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"events": self.events[: self._n]}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self.events = arrays["events"].astype(np.int64, copy=True)
        self._n = self.events.shape[0]


class PartitionRunner:
    """The in-memory engine of one partition and its exchange with Redis."""

    def __init__(
        self,
        log_: RedisLog,
        partition: int,
        settings: Settings,
        consumer: str,
        token: str,
        archiver: object | None = None,
        shop: RedisShopStore | None = None,
    ) -> None:
        self.log = log_
        self.redis = log_.redis
        self.partition = partition
        self.settings = settings
        self.consumer = consumer
        self.token = token
        self.archiver = archiver
        self.keys = Keys(log_.prefix)
        self.engine = Engine(settings.model_copy(update={"data_dir": None, "redis_url": None}))
        self.feed = ChunkFeed()
        self.counter = UserEvents()
        fence = Fence(self.redis, self.keys.lease(partition), token)
        self.store = RedisSnapshotStore(
            self.redis,
            log_.prefix,
            partition,
            background=True,
            keep=settings.snapshots_kept,
            fence=fence,
        )
        e = self.engine
        # cold start's table learns the shoppers' profiles: the deployment's, taken in from
        # the shop store (``shop``: the worker's ``RedisShopStore``, polled by the worker)
        if shop is not None:
            e.profiles = UserProfiles(lambda: e.state.users, shop)  # type: ignore[arg-type]
            e.context_popularity.user_keys = e.profiles.keys
            e.context_popularity.vocabulary = e.profiles.vocabulary
        # the embedded engine's watchers (the drift monitor: detectors if drift_detection) and
        # its model lifecycle run here too, where the models learn: each full snapshot is a
        # version of the partition, gated, promoted and rolled back as in embedded mode, with
        # its versions and book in Redis (replicas list them and send promote/rollback here)
        watchers = list(e.processor.watchers)
        book = RedisVersionBook(
            self.redis, book_key(log_.prefix, partition), settings.registry_keep_promoted, fence
        )
        lifecycle = e.lifecycle = e.make_lifecycle(self.store, book)
        lifecycle.snapshot_soon = self._restored
        lifecycle.active = False  # no gates while the stream is replayed in ``takeover``
        self._restore_due = False
        self.processor = Processor(
            self.feed,
            e.state,
            [*e.models, e.context_popularity],
            e.lock,
            self.store,
            [e.quality, *watchers, lifecycle, self.counter],
            settings.processor_batch_events,
            snapshot_every_events=2**62,  # snapshots are published by ``publish``, after effects
            snapshot_every_seconds=float("inf"),
            on_model_error=e.ensemble.disable,
            watchers=watchers,
            snapshot_meta=lifecycle.snapshot_meta,  # versions: ``_versions_written``
        )
        lifecycle.processor = self.processor
        self.lease_ms = int(settings.worker_lease_seconds * 1000)
        self.done = -1  # global first offset of the last chunk whose effects are in Redis
        self.published_at = 0.0  # serving publication
        self.served_offset = -1
        self.snapshot_at = 0.0  # full snapshot
        self.serving = ServingPublisher(
            self.redis, log_.prefix, partition, self.keys.lease(partition), token
        )
        self.context = ContextPublisher(
            self.redis, log_.prefix, partition, self.keys.lease(partition), token
        )
        self.context_at = 0.0  # cold-start table publication
        self.context_offset = -1
        self._effects = self.redis.register_script(_EFFECTS)
        self._count_drift = self.redis.register_script(_COUNT_DRIFT)
        self._drift_sent: object | None = None  # the last drift event sent to the stream

    # -- start -------------------------------------------------------------------------------
    def takeover(self) -> int:
        """Restore, replay up to ``done``, then process what a previous owner left pending;
        returns the number of events replayed."""
        p = self.partition
        self.log.ensure_group(p)
        self.feed = ChunkFeed(end=self.log.partition_end(p))
        self.processor.log = self.feed
        self.processor.restore()
        cursor = self.store.cursor
        done = self.redis.hget(self.keys.parts, f"done:{p}")
        self.done = int(done) if done is not None else -1
        archived = self._archived()
        if self.archiver is not None:
            self.archiver.discard_after(p, archived)  # type: ignore[attr-defined]
        replayed = 0
        if self.done > cursor:
            chunks = self.log.range_after(p, cursor, self.done)
            for chunk in chunks:
                self._apply([chunk])
                replayed += len(chunk.events)
            if chunks and chunks[-1].first != self.done:
                raise StorageError(
                    f"partition {p}: the stream no longer holds the chunks after the snapshot "
                    f"(replayed up to {chunks[-1].first}, effects written up to {self.done})"
                )
        if self.archiver is not None and archived < self.done:  # processed, never archived
            for chunk in self.log.range_after(p, archived, self.done):
                self.archiver.put(p, chunk)  # type: ignore[attr-defined]
        self.store.cursor = max(cursor, self.done)
        pending = self.log.claim_pending(p, self.consumer, 0)
        self.process(pending)
        self.engine.lifecycle.active = True
        log.info(
            "partition %d taken over at offset %d (%d events replayed, %d chunks reclaimed)",
            p,
            self.processor.offset,
            replayed,
            len(pending),
        )
        return replayed

    def _archived(self) -> int:
        value = self.redis.hget(self.keys.parts, f"archived:{self.partition}")
        return int(value) if value is not None else -1

    # -- processing --------------------------------------------------------------------------
    def _apply(self, chunks: list[Chunk]) -> np.ndarray:
        """Run the processor over ``chunks``; returns the indices of the users they touched."""
        n = 0
        for chunk in chunks:
            if chunk.local_first != self.processor.offset + n:
                raise StorageError(
                    f"partition {self.partition}: chunk at offset {chunk.local_first}, "
                    f"expected {self.processor.offset + n}"
                )
            self.feed.push(chunk)
            n += len(chunk.events)
        if n == 0:
            return np.zeros(0, dtype=np.int32)
        done = self.processor.step(max_events=n)
        if done != n:
            raise StorageError(f"partition {self.partition}: processed {done} of {n} events")
        state = self.engine.state
        users = state.users.indices(
            [e.user_id for c in chunks for e in c.events], add=False
        ).astype(np.int64)
        self.counter.add(users, len(state.users))
        self.store.cursor = chunks[-1].first
        return np.unique(users)

    def _fill_gap(self, chunks: list[Chunk]) -> tuple[list[Chunk], list[Chunk]]:
        """Chunks missing before ``chunks``: a worker that had lost this partition (paused past
        its lease between its lease check and its read) read them, and they wait unacknowledged
        under its name. Claim every pending chunk of the partition, as a takeover does."""
        claimed = self.log.claim_pending(self.partition, self.consumer, 0)
        if claimed:
            log.warning(
                "partition %d: %d chunks read by its previous owner after it lost the lease, "
                "claimed",
                self.partition,
                len(claimed),
            )
        seen = {c.entry_id for c in chunks}
        chunks = sorted(
            chunks + [c for c in claimed if c.entry_id not in seen], key=lambda c: c.first
        )
        return chunks, [c for c in chunks if c.first > self.done]

    def process(self, chunks: list[Chunk]) -> int:
        """Apply the new ones of ``chunks``, write their effects, acknowledge all of them;
        returns the number of events applied."""
        if not chunks:
            return 0
        self._versions_written()
        chunks = sorted(chunks, key=lambda c: c.first)
        fresh = [c for c in chunks if c.first > self.done]
        if fresh and fresh[0].local_first > self.processor.offset:
            chunks, fresh = self._fill_gap(chunks)
        events = 0
        if fresh:
            users = self._apply(fresh)
            self._write_effects(fresh, users)
            self._send_drift()
            events = sum(len(c.events) for c in fresh)
        self.log.ack(self.partition, *(c.entry_id for c in chunks))
        if self.archiver is not None:
            for chunk in fresh:
                self.archiver.put(self.partition, chunk)  # type: ignore[attr-defined]
        self._write_restored()
        return events

    def _write_effects(self, chunks: list[Chunk], users: np.ndarray) -> None:
        state = self.engine.state
        records = encode_records(state, users, self.counter.events[users], self.engine.mf)
        user_ids = state.users.keys()
        items = sorted({e.item_id for c in chunks for e in c.events})
        args: list[object] = [
            self.token,
            self.partition,
            chunks[-1].first,
            self.processor.offset,
            len(state.users),
            self.lease_ms,
            len(items),
            *items,
            len(chunks),
        ]
        for c in chunks:
            args += [repr(c.acked_at), len(c.events)]
        args += records
        keys = [self.keys.lease(self.partition), self.keys.parts, self.keys.items, self.keys.fresh]
        keys += [user_key(self.log.prefix, user_ids[u]) for u in users.tolist()]
        try:
            self._effects(keys=keys, args=args)
        except redis.ResponseError as exc:
            if "LEASE" in str(exc):
                raise LeaseLost(str(exc)) from None
            raise
        self.done = chunks[-1].first

    def _send_drift(self) -> int:
        """Append the detections made since the last call to the cluster's drift stream;
        returns how many."""
        held = self.engine.drift.events() if self.engine.drift is not None else []
        start = 0
        for i in range(len(held) - 1, -1, -1):  # the newest first: usually none are new
            if held[i] is self._drift_sent:
                start = i + 1
                break
        new = held[start:]
        if not new:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for event in new:
            pipe.xadd(
                self.keys.drift,
                {"partition": self.partition, **drift_fields(event)},
                maxlen=self.settings.drift_events_kept * self.log.partitions,
                approximate=True,
            )
            seen = f"{self.partition}:{event.at_event}:{event.detector}:{event.signal}"
            self._count_drift(
                keys=[self.keys.drift_seen, self.keys.drift_counts],
                args=[seen, f"{event.detector}|{event.signal}"],
                client=pipe,
            )
        pipe.execute()
        self._drift_sent = new[-1]
        return len(new)

    # -- model lifecycle ---------------------------------------------------------------------
    def _restored(self) -> None:
        """The lifecycle put a version's parameters back (maybe in the middle of a chunk):
        its snapshot is written once the chunk's effects are (``_write_restored``)."""
        self._restore_due = True

    def _write_restored(self) -> None:
        """Snapshot and publish restored parameters: a new owner resumes from them, and the
        replicas serve them at their next refresh."""
        if not self._restore_due:
            return
        self._restore_due = False
        self.store.cursor = self.done
        self.processor.snapshot()
        # in Redis before the replica is answered: listed at once, restored by a new owner
        self.store.wait()
        self._versions_written(restored=self.store.last_folder)
        self.snapshot_at = time.monotonic()
        self.publish_serving()

    def _versions_written(self, restored: str | None = None) -> None:
        """Hand the snapshots stored in Redis since the last call to the lifecycle, as new
        versions (here, between chunks, under the engine lock): a version exists for it once
        it is stored, never while a background write may still fail or be cut short.
        ``restored``: the snapshot holding parameters just put back; one taken before the put
        back that was stored meanwhile is stale (superseded, never gated)."""
        written = self.store.take_written()
        if not written:
            return
        lifecycle = self.engine.lifecycle
        with self.engine.lock:
            for folder in written:
                lifecycle.on_snapshot(folder, stale=restored is not None and folder != restored)

    def handle_commands(self, raw: list[bytes]) -> int:
        """Run the promote / rollback commands replicas sent this partition (``raw``: taken
        from its command list by the worker, between chunks: what a version puts back is
        snapshotted and published at once); each answer goes to the command's reply list.
        Returns how many ran."""
        pipe = self.redis.pipeline(transaction=False)
        for item in raw:
            command = json.loads(item)
            if command.get("expires_at", float("inf")) < time.time():
                log.warning("partition %d: dropping expired command %s", self.partition, command)
                continue
            answer = self._run_command(command)
            reply = self.keys.reply(command["id"])
            pipe.rpush(reply, json.dumps(answer))
            pipe.expire(reply, REPLY_TTL_SECONDS)
        pipe.execute()
        return len(raw)

    def _run_command(self, command: dict[str, Any]) -> dict[str, Any]:
        e = self.engine
        self.store.wait()  # every version stored so far is known before one is put back
        self._versions_written()
        try:
            if command["op"] == "promote":
                result = e.promote(command["version"])
            elif command["op"] == "rollback":
                result = e.rollback()
            else:
                raise BadRequest(f"unknown lifecycle command {command['op']!r}")
            self._write_restored()
        except FreshrecError as exc:
            return {"status": exc.status_code, "error": str(exc)}
        return {"status": 200, "result": {"partition": self.partition, **result}}

    # -- publishing --------------------------------------------------------------------------
    def publish(self, force: bool = False) -> bool:
        """Publish for serving if anything changed since the last publication (and one is
        due); save the full snapshot when due (written in the background) or when ``force``
        (which waits until it is in Redis). Returns False when a full snapshot is still being
        written."""
        now = time.monotonic()
        offset = self.processor.offset
        if offset != self.served_offset and (
            force or now - self.published_at >= self.settings.scaleout_publish_seconds
        ):
            self.publish_serving()
        if offset != self.context_offset and (
            force or now - self.context_at >= self.settings.scaleout_context_publish_seconds
        ):
            self.publish_context()
        if force:
            self.store.wait()
        elif self.store.busy:
            return False
        else:
            self.store.wait()  # re-raise what went wrong with the previous one, if anything
        self._versions_written()
        due = now - self.snapshot_at >= self.settings.scaleout_snapshot_seconds
        changed = offset != self.processor._snapshot_offset
        if (changed and due) or (force and self.store.saved_cursor != self.done):
            self.store.cursor = self.done
            self.processor.snapshot()
            self.snapshot_at = now
        if force:
            self.store.wait()
            self._versions_written()
        return True

    def publish_serving(self) -> int:
        """Write the serving publication of the partition as of now; returns its version."""
        e = self.engine
        with e.lock:
            arrays = serving_arrays(e.state, self.processor._parts)
            meta = {"models": {m.name: m.params() for m in e.models}}
        try:
            version = self.serving.publish(
                self.processor.offset, arrays, e.state.items.keys(), meta
            )
        except redis.ResponseError as exc:
            if "LEASE" in str(exc):
                raise LeaseLost(f"partition {self.partition}: {exc}") from None
            raise
        self.served_offset = self.processor.offset
        self.published_at = time.monotonic()
        return version

    def publish_context(self) -> int:
        """Write the partition's cold-start table as of now; returns its version."""
        e = self.engine
        with e.lock:
            arrays = e.context_popularity.state_dict()  # only this thread changes it
        offset = self.processor.offset
        try:
            version = self.context.publish(offset, arrays)
        except redis.ResponseError as exc:
            if "LEASE" in str(exc):
                raise LeaseLost(f"partition {self.partition}: {exc}") from None
            raise
        self.context_offset = offset
        self.context_at = time.monotonic()
        return version

    def close(self) -> None:
        """The partition left this worker: stop taking in the shop's profile changes."""
        self.engine.profiles.close()

    def trim(self) -> int:
        """Drop stream entries nobody needs any more: reflected in the published snapshot
        (a new owner replays after it), acknowledged by every reader of the group and, with an
        archive, archived. Returns the number of entries removed."""
        keep = self.store.saved_cursor + 1  # the first chunk after the snapshot is needed
        pending = self.log.oldest_pending(self.partition)
        if pending is not None:
            keep = min(keep, pending)
        if self.archiver is not None:
            keep = min(keep, self._archived() + 1)
        return self.log.trim_before(self.partition, keep) if keep > 0 else 0
