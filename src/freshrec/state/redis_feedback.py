"""Click attribution shared by the replicas of a scale-out deployment, in Redis.

The ``Remote`` of ``freshrec.engine.feedback.Feedback`` (which holds the logic; this is only
the Redis side). Keys, under the deployment's prefix:

- ``fb:r:<recommendation_id>``: a served response (msgpack ``[strategy, model_version,
  user_id, items, experiment, arm]``), written by the serving replica's next sync with a TTL
  of ``feedback_response_ttl_seconds``; read with one ``MGET`` per ingested batch by a replica
  that does not hold the response.
- ``fb:first:<recommendation_id>:<kind>``: "the response already had a click / purchase"
  (``SET NX`` with the same TTL), so that ``clicked`` and ``converted`` count once per
  response whichever replicas the events reach.
- ``fb:counts`` (hash ``strategy \\t version \\t counter`` -> int), ``fb:version`` (int) and
  ``fb:changes`` (sorted set ``strategy \\t version`` -> the version that last changed it):
  the deployment's counters, added to with ``HINCRBY`` at each sync; a sync reads back only
  the pairs changed since the version it saw (one ``GET`` when none did), as the shop's change
  feed does (``freshrec.state.redis_shop``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import redis

from freshrec.engine.feedback import COUNTERS, Pair, Record
from freshrec.errors import StorageError

# KEYS: counts, version, changes; ARGV: seen version, then (strategy, version, n1 .. n6) tuples
_SYNC = """
local names = {NAMES}
local width = 2 + #names
if #ARGV > 1 then
  local v = redis.call('INCR', KEYS[2])
  for i = 2, #ARGV, width do
    local pair = ARGV[i] .. '\\t' .. ARGV[i + 1]
    for j, name in ipairs(names) do
      local n = tonumber(ARGV[i + 1 + j])
      if n ~= 0 then redis.call('HINCRBY', KEYS[1], pair .. '\\t' .. name, n) end
    end
    redis.call('ZADD', KEYS[3], v, pair)
  end
end
local v = tonumber(redis.call('GET', KEYS[2]) or '0')
local seen = tonumber(ARGV[1])
local out = {v}
if v == seen then return out end
if v < seen then seen = 0 end
for _, pair in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. seen, v)) do
  local fields = {}
  for j, name in ipairs(names) do fields[j] = pair .. '\\t' .. name end
  out[#out + 1] = pair
  for _, n in ipairs(redis.call('HMGET', KEYS[1], unpack(fields))) do
    out[#out + 1] = n or '0'
  end
end
return out
""".replace("NAMES", ", ".join(f"'{name}'" for name in COUNTERS))


class RedisFeedback:
    """The responses and attribution counters of a deployment, in Redis under ``prefix``."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: float) -> None:
        self.redis = client
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.counts_key = f"{prefix}fb:counts"
        self.version_key = f"{prefix}fb:version"
        self.changes_key = f"{prefix}fb:changes"
        self._sync = client.register_script(_SYNC)
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder().decode

    def _response_key(self, rid: str) -> str:
        return f"{self.prefix}fb:r:{rid}"

    def fetch(self, rids: Sequence[str]) -> dict[str, Record]:
        try:
            blobs = self.redis.mget([self._response_key(rid) for rid in rids])
        except redis.RedisError as exc:
            raise StorageError(f"could not read responses from Redis: {exc}") from exc
        out: dict[str, Record] = {}
        for rid, blob in zip(rids, blobs, strict=True):
            if blob is not None:
                strategy, version, user, items, experiment, arm = self._decode(blob)
                out[rid] = (strategy, version, user, tuple(items), experiment, arm)
        return out

    def claim(self, firsts: Sequence[tuple[str, str]]) -> list[bool]:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for rid, kind in firsts:
                pipe.set(f"{self.prefix}fb:first:{rid}:{kind}", 1, nx=True, px=self.ttl_ms)
            return [bool(r) for r in pipe.execute()]
        except redis.RedisError as exc:
            raise StorageError(f"could not record first clicks in Redis: {exc}") from exc

    def push(
        self, responses: Sequence[tuple[str, Record]], added: dict[Pair, tuple[int, ...]], seen: int
    ) -> tuple[int, dict[Pair, tuple[int, ...]]]:
        args: list[Any] = [seen]
        for (strategy, version), counts in added.items():
            args += [strategy, version, *counts]
        try:
            pipe = self.redis.pipeline(transaction=False)
            for rid, record in responses:
                pipe.set(self._response_key(rid), self._encode(record), px=self.ttl_ms)
            self._sync(
                keys=[self.counts_key, self.version_key, self.changes_key], args=args, client=pipe
            )
            reply = pipe.execute()[-1]
        except redis.RedisError as exc:
            raise StorageError(f"could not share attribution counts through Redis: {exc}") from exc
        width = 1 + len(COUNTERS)
        changed: dict[Pair, tuple[int, ...]] = {}
        for i in range(1, len(reply), width):
            strategy, version = reply[i].decode().split("\t", 1)
            changed[(strategy, version)] = tuple(int(n) for n in reply[i + 1 : i + width])
        return int(reply[0]), changed
