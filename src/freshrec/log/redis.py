"""Scale-out log: Redis Streams, one stream per partition of users (``redis://host:6379/0``).

An appended batch is split by ``partition_of(user_id)`` and stored by **one Lua script** -- so
the de-duplication, the events and the counters of a batch are written together or not at all
(Redis runs a script atomically). Each partition receives one stream entry per batch (a chunk:
the partition's events of the batch, msgpack-encoded), so an append costs one ``XADD`` per
partition it touches, not one per event.

Offsets: the log keeps the contract of ``EventLog`` -- offset ``n`` is the n-th accepted event.
Within a batch, events are laid out partition by partition (stable within a partition, so each
user's events keep their order), which makes every chunk a contiguous run of global offsets. A
chunk's stream id is ``0-<first global offset + 1>``, and it carries ``l``, its first offset
*within its partition* (the partition's dense sequence, which a worker processes), ``n`` and
``t``, the Redis time at which it was acknowledged (for the freshness metric).

Workers read partitions through the consumer group ``group`` (``XREADGROUP``), acknowledge with
``XACK`` once a chunk's effects are written, reclaim a dead worker's pending chunks with
``XAUTOCLAIM``, and trim with ``XTRIM MINID`` only below what every reader still needs.

All keys live under ``prefix`` (default ``freshrec:``), so deployments -- and tests -- can share
one Redis.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import redis

from freshrec.errors import StorageError
from freshrec.events import LoggedEvent
from freshrec.log.base import AppendResult, EventLog, register_log

log = logging.getLogger(__name__)

GROUP = "workers"

# KEYS: meta hash, dedup gen 0 set, dedup gen 1 set, partition streams...
# ARGV: now, dedup_max_ids, dedup_window, n_events, then per event: partition (1-based),
#       event_id ("" = none), encoded event
_APPEND = r"""
local meta, n = KEYS[1], tonumber(ARGV[4])
local now, max_ids, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local gen = tonumber(redis.call('HGET', meta, 'dedup_gen') or '0')
local started = tonumber(redis.call('HGET', meta, 'dedup_started') or ARGV[1])
local count = tonumber(redis.call('HGET', meta, 'dedup_count') or '0')
local ids, pos = {}, {}
for i = 1, n do
  local eid = ARGV[4 + (i - 1) * 3 + 2]
  if eid ~= '' then ids[#ids + 1] = eid; pos[#ids] = i end
end
local dup = {}
if #ids > 0 then
  local seen = {}
  for g = 2, 3 do
    for s = 1, #ids, 5000 do
      local part = {}
      for j = s, math.min(s + 4999, #ids) do part[#part + 1] = ids[j] end
      local found = redis.call('SMISMEMBER', KEYS[g], unpack(part))
      for j = 1, #found do if found[j] == 1 then seen[ids[s + j - 1]] = true end end
    end
  end
  local new = {}
  for j = 1, #ids do
    if seen[ids[j]] then dup[pos[j]] = true else seen[ids[j]] = true; new[#new + 1] = ids[j] end
  end
  if #new > 0 then
    if count >= max_ids or now - started >= window then
      gen = 1 - gen; redis.call('DEL', KEYS[2 + gen]); started = now; count = 0
    end
    for s = 1, #new, 5000 do
      redis.call('SADD', KEYS[2 + gen], unpack(new, s, math.min(s + 4999, #new)))
    end
    count = count + #new
  end
end
local parts, order = {}, {}
local accepted, duplicates = 0, 0
local mask = {}
for i = 1, n do
  if dup[i] then
    duplicates = duplicates + 1; mask[i] = 0
  else
    local p = tonumber(ARGV[4 + (i - 1) * 3 + 1])
    if parts[p] == nil then parts[p] = {}; order[#order + 1] = p end
    local t = parts[p]; t[#t + 1] = ARGV[4 + (i - 1) * 3 + 3]
    accepted = accepted + 1; mask[i] = 1
  end
end
table.sort(order)
local first = tonumber(redis.call('HGET', meta, 'end') or '0')
local offset = first
local tm = redis.call('TIME')
local stamp = string.format('%d.%06d', tm[1], tm[2])
for _, p in ipairs(order) do
  local t = parts[p]
  local m = #t
  local head
  if m < 16 then head = string.char(0x90 + m)
  elseif m < 65536 then head = string.char(0xdc, math.floor(m / 256), m % 256)
  else head = string.char(0xdd, math.floor(m / 16777216) % 256, math.floor(m / 65536) % 256,
                          math.floor(m / 256) % 256, m % 256) end
  local local_first = redis.call('HINCRBY', meta, 'pend:' .. (p - 1), m) - m
  redis.call('XADD', KEYS[3 + p], '0-' .. (offset + 1), 'l', local_first, 'n', m,
             't', stamp, 'b', head .. table.concat(t))
  offset = offset + m
end
redis.call('HSET', meta, 'end', offset, 'dedup_gen', gen, 'dedup_started', started,
           'dedup_count', count)
redis.call('HINCRBY', meta, 'duplicates', duplicates)
return {first, accepted, duplicates, mask}
"""


def partition_of(user_id: str, partitions: int) -> int:
    """The partition of a user: a stable hash (CRC-32 of the UTF-8 id) modulo ``partitions``.

    >>> partition_of("u1", 4), partition_of("u1", 4) == partition_of("u1", 4)
    (2, True)
    """
    return zlib.crc32(user_id.encode()) % partitions


@dataclass(frozen=True, slots=True)
class Chunk:
    """One stream entry: a partition's events of one appended batch."""

    entry_id: str  # "0-<global first + 1>"
    first: int  # global offset of the first event
    local_first: int  # offset of the first event within its partition
    acked_at: float  # Redis time of the acknowledgement (unix seconds)
    events: list[LoggedEvent]

    @property
    def seq(self) -> int:
        return self.first + 1


def connect(url: str, timeout: float = 2.0) -> redis.Redis:
    """A client for ``url`` with short timeouts, so an outage turns into an error quickly."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=10,
    )


def unavailable(url: str, exc: Exception) -> StorageError:
    """The error every Redis outage becomes: a 503 that names the server."""
    return StorageError(f"event log unavailable: Redis at {_where(url)} is unreachable ({exc})")


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


class RedisLog(EventLog):
    """The event log in Redis Streams, ``partitions`` streams keyed by user hash."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        partitions: int = 4,
        prefix: str = "freshrec:",
        dedup_max_ids: int = 10_000_000,
        dedup_window_seconds: float = 7 * 86_400.0,
        clock: Callable[[], float] = time.time,
        timeout: float = 2.0,
        wait: bool = False,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.url = url
        self.partitions = partitions
        self.prefix = prefix
        self.dedup_max_ids = dedup_max_ids
        self.dedup_window_seconds = dedup_window_seconds
        self._clock = clock
        self.redis = connect(url, timeout)
        self.meta_key = f"{prefix}log:meta"
        self.offsets_key = f"{prefix}log:offsets"
        self.dedup_keys = [f"{prefix}log:dedup:0", f"{prefix}log:dedup:1"]
        self.streams = [f"{prefix}log:p{p}" for p in range(partitions)]
        self._append_script = self.redis.register_script(_APPEND)
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(list[LoggedEvent])
        self._checked = False  # the partition count agreed with the log's (before any append)
        self.check_partitions(wait=wait)

    def check_partitions(self, wait: bool = False) -> None:
        """The log's partition count must be this one's (set by the first to open it). With
        ``wait`` (a replica), a Redis that cannot be reached now is only logged: the check
        runs again before the first append, which is refused until it passes."""
        if self._checked:
            return
        try:
            stored = self.redis.hget(self.meta_key, "partitions")
            if stored is None:
                self.redis.hsetnx(self.meta_key, "partitions", self.partitions)
            elif int(stored) != self.partitions:
                raise StorageError(
                    f"the log at {_where(self.url)} (prefix {self.prefix!r}) has {int(stored)} "
                    f"partitions, not {self.partitions}: use the same partitions setting everywhere"
                )
        except redis.RedisError as exc:
            if not wait:
                raise unavailable(self.url, exc) from exc
            log.warning("%s; partitions checked once it answers", unavailable(self.url, exc))
            return
        self._checked = True

    def stream(self, partition: int) -> str:
        return self.streams[partition]

    # -- the EventLog contract ---------------------------------------------------------------
    def append(self, events: list[LoggedEvent]) -> AppendResult:
        self.check_partitions()
        if not events:
            return AppendResult(self.end_offset(), 0, 0, ())
        args: list[Any] = [
            repr(self._clock()),
            self.dedup_max_ids,
            repr(self.dedup_window_seconds),
            len(events),
        ]
        encode, parts = self._encoder.encode, self.partitions
        for e in events:
            args.append(zlib.crc32(e.user_id.encode()) % parts + 1)
            args.append(e.event_id or "")
            args.append(encode(e))
        try:
            first, accepted, duplicates, mask = self._append_script(
                keys=[self.meta_key, *self.dedup_keys, *self.streams], args=args
            )
        except redis.TimeoutError as exc:
            # the script was sent: Redis may have run it (all of it) before the answer was late
            raise StorageError(
                f"event log did not answer in time: Redis at {_where(self.url)} may have stored "
                f"the batch; send it again with the same event_ids (duplicates are dropped) ({exc})"
            ) from exc
        except redis.RedisError as exc:
            raise unavailable(self.url, exc) from exc
        return AppendResult(int(first), int(accepted), int(duplicates), tuple(m == 1 for m in mask))

    def read(self, offset: int, max_events: int) -> list[LoggedEvent]:
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        max_events = max(1, max_events)
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key in self.streams:
                pipe.xrevrange(key, f"0-{offset + 1}", "-", count=1)
                pipe.xrange(key, f"(0-{offset + 1}", f"0-{offset + max_events}", count=max_events)
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise unavailable(self.url, exc) from exc
        chunks = sorted(
            (self._chunk(entry) for reply in replies for entry in reply),
            key=lambda c: c.first,
        )
        out: list[LoggedEvent] = []
        for chunk in chunks:
            end = chunk.first + len(chunk.events)
            if end <= offset:
                continue
            skip = max(0, offset - chunk.first)
            if chunk.first > offset + len(out):  # trimmed away: nothing contiguous after
                break
            out.extend(chunk.events[skip:])
            if len(out) >= max_events:
                break
        return out[:max_events]

    def end_offset(self) -> int:
        try:
            return int(self.redis.hget(self.meta_key, "end") or 0)
        except redis.RedisError as exc:
            raise unavailable(self.url, exc) from exc

    def committed(self, consumer: str) -> int:
        try:
            return int(self.redis.hget(self.offsets_key, consumer) or 0)
        except redis.RedisError as exc:
            raise unavailable(self.url, exc) from exc

    def commit(self, consumer: str, offset: int) -> None:
        try:
            self.redis.hset(self.offsets_key, consumer, offset)
        except redis.RedisError as exc:
            raise unavailable(self.url, exc) from exc

    def duplicates_total(self) -> int:
        try:
            return int(self.redis.hget(self.meta_key, "duplicates") or 0)
        except redis.RedisError as exc:
            raise unavailable(self.url, exc) from exc

    def close(self) -> None:
        self.redis.close()

    # -- partitions and the consumer group ---------------------------------------------------
    def _chunk(self, entry: tuple[bytes, dict[bytes, bytes]]) -> Chunk:
        entry_id, fields = entry
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        return Chunk(
            eid,
            int(eid.split("-", 1)[1]) - 1,
            int(fields[b"l"]),
            float(fields[b"t"]),
            self._decoder.decode(fields[b"b"]),
        )

    def partition_end(self, partition: int) -> int:
        """Events accepted so far in ``partition`` (its next local offset)."""
        return int(self.redis.hget(self.meta_key, f"pend:{partition}") or 0)

    def ensure_group(self, partition: int) -> None:
        """Create the workers' consumer group on the partition's stream (idempotent)."""
        try:
            self.redis.xgroup_create(self.streams[partition], GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_group(
        self, partition: int, consumer: str, count: int, block_ms: int | None = None
    ) -> list[Chunk]:
        """New chunks of ``partition`` delivered to ``consumer`` (they stay pending until acked)."""
        reply = self.redis.xreadgroup(
            GROUP, consumer, {self.streams[partition]: ">"}, count=count, block=block_ms
        )
        return [self._chunk(e) for _, entries in reply or () for e in entries if e[1]]

    def claim_pending(self, partition: int, consumer: str, min_idle_ms: int) -> list[Chunk]:
        """Every chunk of ``partition`` pending for ``min_idle_ms`` or more (delivered to a
        worker that did not acknowledge it), now owned by ``consumer``, in stream order.
        Entries trimmed meanwhile are dropped from the pending list."""
        out: list[Chunk] = []
        start = "0-0"
        while True:
            reply = self.redis.xautoclaim(
                self.streams[partition], GROUP, consumer, min_idle_ms, start_id=start, count=1000
            )
            start, entries = reply[0], reply[1]
            out.extend(self._chunk(e) for e in entries if e[1])
            if start in (b"0-0", "0-0"):
                break
        return sorted(out, key=lambda c: c.first)

    def ack(self, partition: int, *entry_ids: str) -> None:
        if entry_ids:
            self.redis.xack(self.streams[partition], GROUP, *entry_ids)

    def range_after(self, partition: int, after_first: int, until_first: int) -> list[Chunk]:
        """Chunks of ``partition`` with ``after_first < first <= until_first`` (replay)."""
        out: list[Chunk] = []
        start = f"(0-{after_first + 1}" if after_first >= 0 else "-"
        while True:
            entries = self.redis.xrange(
                self.streams[partition], start, f"0-{until_first + 1}", count=500
            )
            if not entries:
                return out
            chunks = [self._chunk(e) for e in entries]
            out.extend(chunks)
            start = f"(0-{chunks[-1].seq}"

    def oldest_pending(self, partition: int) -> int | None:
        """Global first offset of the oldest unacknowledged chunk of ``partition``, if any."""
        summary = self.redis.xpending(self.streams[partition], GROUP)
        low = summary.get("min")
        if not summary.get("pending") or low is None:
            return None
        low = low.decode() if isinstance(low, bytes) else low
        return int(low.split("-", 1)[1]) - 1

    def trim_before(self, partition: int, first: int) -> int:
        """Drop the chunks of ``partition`` that start before global offset ``first``."""
        return int(
            self.redis.xtrim(self.streams[partition], minid=f"0-{first + 1}", approximate=False)
        )

    def stream_length(self, partition: int) -> int:
        return int(self.redis.xlen(self.streams[partition]))


def _open_redis(url: str, **options: Any) -> RedisLog:
    """``redis://host:port/db?partitions=4&prefix=freshrec:`` (query overrides options)."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if "partitions" in query:
        options["partitions"] = int(query.pop("partitions"))
    if "prefix" in query:
        options["prefix"] = query.pop("prefix")
    base = parts._replace(query="").geturl()
    return RedisLog(base, **options)


register_log("redis", _open_redis)
