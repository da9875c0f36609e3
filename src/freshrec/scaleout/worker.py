"""``freshrec worker``: a member of the consumer group that processes partitions.

Membership and ownership live in Redis. Every worker heartbeats into a sorted set; the live
workers (heartbeat within ``worker_lease_seconds``), sorted by id, share the partitions
round-robin (partition ``p`` goes to live worker ``p mod n``), so when one joins or leaves each
recomputes the same assignment. A worker owns a partition only while it holds its lease
(``SET NX PX``, renewed every loop, written effects are fenced by it): a worker that gives a
partition up publishes a snapshot and deletes the lease; a worker that dies lets it expire, and
the next owner replays from the snapshot and reclaims the dead worker's pending chunks.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

import redis

from freshrec.errors import StorageError
from freshrec.log.redis import RedisLog
from freshrec.scaleout.keys import Keys
from freshrec.scaleout.partition import LeaseLost, PartitionRunner
from freshrec.settings import Settings
from freshrec.state.redis_shop import RedisShopStore

log = logging.getLogger(__name__)

COMMANDS_PER_ROUND = 16  # lifecycle commands a partition runs between two reads at most

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def assignment(workers: list[str], partitions: int, me: str) -> set[int]:
    """The partitions ``me`` should own when ``workers`` are alive.

    >>> sorted(assignment(["a", "b"], 5, "b")), sorted(assignment(["a"], 3, "a"))
    ([1, 3], [0, 1, 2])
    """
    live = sorted(set(workers) | {me})
    return {p for p in range(partitions) if live[p % len(live)] == me}


class Worker:
    """Processes the partitions assigned to it until ``stop``."""

    def __init__(self, settings: Settings, only: set[int] | None = None) -> None:
        if settings.redis_url is None:
            raise ValueError("redis_url: a worker needs the deployment's Redis")
        self.settings = settings
        self.log = RedisLog(
            settings.redis_url,
            settings.redis_partitions,
            settings.redis_prefix,
            timeout=max(settings.redis_timeout_seconds, 5.0),
            wait=True,  # a worker may start before Redis: ``run`` waits for it
        )
        self.redis = self.log.redis
        self.keys = Keys(settings.redis_prefix)
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.only = only  # restrict to these partitions (--partitions)
        self.lease_ms = int(settings.worker_lease_seconds * 1000)
        self.runners: dict[int, PartitionRunner] = {}
        self.processed = 0
        self._trimmed_at = time.monotonic()
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)
        self._stop = threading.Event()
        # the shop's user profiles (cold start's table learns them): taken in every
        # ``shop_poll_seconds`` from the deployment's store, between two rounds of processing
        self.shop = RedisShopStore(self.redis, settings.redis_prefix)
        self._shop_polled = 0.0
        self.archiver = None
        if settings.archive and settings.data_dir is not None:
            from freshrec.archive import ArchiveWriter

            self.archiver = ArchiveWriter(
                settings.data_dir,
                self.redis,
                self.keys,
                settings.archive_flush_rows,
                settings.archive_flush_seconds,
                settings.archive_queue_chunks,
            )

    # -- membership --------------------------------------------------------------------------
    def _heartbeat(self) -> list[str]:
        now = int(time.time() * 1000)
        pipe = self.redis.pipeline()
        pipe.zadd(self.keys.workers, {self.id: now})
        pipe.zremrangebyscore(self.keys.workers, "-inf", now - self.lease_ms)
        pipe.zrange(self.keys.workers, 0, -1)
        return [w.decode() for w in pipe.execute()[2]]

    def _rebalance(self) -> None:
        live = self._heartbeat()
        # --partitions: exactly these, whoever else is alive; else a fair share of all
        wanted = (
            self.only if self.only is not None else assignment(live, self.log.partitions, self.id)
        )
        for p in list(self.runners):
            renewed = self._renew(keys=[self.keys.lease(p)], args=[self.id, self.lease_ms])
            if not renewed:
                log.warning("lease of partition %d lost; dropping it", p)
                self._drop(p)
            elif p not in wanted:
                self._hand_over(p)
        for p in sorted(wanted - set(self.runners)):
            if self.redis.set(self.keys.lease(p), self.id, nx=True, px=self.lease_ms):
                runner = PartitionRunner(
                    self.log, p, self.settings, self.id, self.id, self.archiver, self.shop
                )
                self.runners[p] = runner
                try:  # building the engine may have taken a while: hold the lease anew
                    if not self._renew(keys=[self.keys.lease(p)], args=[self.id, self.lease_ms]):
                        self.runners.pop(p)
                        continue
                    runner.takeover()
                except BaseException:
                    self._drop(p)
                    self._release(keys=[self.keys.lease(p)], args=[self.id])
                    raise

    def _drop(self, p: int) -> None:
        """Forget partition ``p`` without handing it over (its lease is lost or lapsing)."""
        runner = self.runners.pop(p, None)
        if runner is not None:
            runner.close()
        if self.archiver is not None:
            self.archiver.forget(p)  # its next owner archives again from the recorded mark

    def _hand_over(self, p: int) -> None:
        """Give partition ``p`` to its new owner: publish a snapshot, then free the lease."""
        runner = self.runners[p]
        runner.engine.lifecycle.active = False  # the hand-over snapshot starts no gate
        try:
            runner.publish(force=True)
        except LeaseLost as exc:  # its lease lapsed (a stalled Redis): the new owner has it
            log.warning("partition %d not handed over: %s", p, exc)
            self._drop(p)
            return
        if self.archiver is not None:
            self.archiver.flush()
        self._release(keys=[self.keys.lease(p)], args=[self.id])
        self.runners.pop(p).close()
        log.info("partition %d handed over", p)

    # -- the loop ----------------------------------------------------------------------------
    def step(self, block_ms: int = 50) -> int:
        """One round: rebalance, take in the shop's profile changes, read and process what
        is new, publish; returns events."""
        self._rebalance()
        self.sync_shop()
        if not self.runners:
            self._stop.wait(block_ms / 1000)
            return 0
        streams = {self.log.stream(p): ">" for p in self.runners}
        reply = self.redis.xreadgroup(
            "workers",
            self.id,
            streams,
            count=self.settings.worker_read_chunks,
            block=block_ms,
        )
        by_stream = {self.log.stream(p): p for p in self.runners}
        total = 0
        for stream, entries in reply or ():
            name = stream.decode() if isinstance(stream, bytes) else stream
            p = by_stream[name]
            chunks = [self.log._chunk(e) for e in entries if e[1]]
            try:
                total += self.runners[p].process(chunks)
            except LeaseLost as exc:
                log.warning("%s", exc)
                self._drop(p)
            except StorageError as exc:  # this partition only: a takeover starts it afresh
                log.error("partition %d dropped, to be taken over again: %s", p, exc)
                self._drop(p)
        self._run_commands()
        # one partition publishes per round at most (the most overdue), so events arriving
        # meanwhile wait for one publication at most
        if self.runners:
            runner = min(self.runners.values(), key=lambda r: r.published_at)
            try:
                runner.publish()
            except LeaseLost as exc:
                log.warning("%s", exc)
                self._drop(runner.partition)
        if time.monotonic() - self._trimmed_at >= self.settings.worker_trim_seconds:
            for runner in self.runners.values():
                runner.trim()
            self._trimmed_at = time.monotonic()
        self.processed += total
        return total

    def _run_commands(self) -> None:
        """The promote / rollback commands replicas sent the partitions held here (one round
        trip for all of them)."""
        held = list(self.runners)
        pipe = self.redis.pipeline(transaction=False)
        for p in held:
            pipe.lpop(self.keys.commands(p), COMMANDS_PER_ROUND)
        for p, raw in zip(held, pipe.execute(), strict=True):
            if not raw or p not in self.runners:
                continue
            try:
                self.runners[p].handle_commands(raw)
            except LeaseLost as exc:
                log.warning("%s", exc)
                self._drop(p)

    def sync_shop(self, force: bool = False) -> int:
        """Apply the profile changes written since the last poll, when one is due (in this
        thread, between micro-batches: the models never see a profile change half-applied);
        returns how many changes."""
        now = time.monotonic()
        if not force and now - self._shop_polled < self.settings.shop_poll_seconds:
            return 0
        self._shop_polled = now
        try:
            changes = self.shop.poll()
        except StorageError as exc:
            log.warning("cannot read the shop's changes: %s", exc)
            return 0
        self.shop.dispatch(changes)
        return len(changes)

    def run(self) -> None:
        """Process until ``stop`` is called; Redis outages are waited out, a Redis not up yet
        at the start too."""
        if not self._wait_for_redis():  # stopped before Redis ever answered: nothing to hand
            self._close()
            return
        while not self._stop.is_set():
            try:
                self.step()
            except redis.RedisError as exc:
                log.warning("Redis unavailable (%s); retrying in 1 s", exc)
                for p in list(self.runners):  # leases may lapse meanwhile: take over afresh
                    self._drop(p)
                self._stop.wait(1.0)
        self.shutdown()

    def stop(self) -> None:
        self._stop.set()

    def _wait_for_redis(self) -> bool:
        """Check the log's partitions and create the consumer groups once Redis answers
        (logged when it does not, and when it does again); False if stopped meanwhile. A log
        with another partition count still raises: that is a setting to fix, not a wait."""
        waiting = False
        while not self._stop.is_set():
            try:
                self.log.check_partitions()
                for p in range(self.log.partitions):
                    self.log.ensure_group(p)
            except (redis.RedisError, StorageError) as exc:
                if isinstance(exc, StorageError) and not isinstance(
                    exc.__cause__, redis.RedisError
                ):
                    raise
                if not waiting:
                    log.warning("waiting for Redis: %s", exc)
                    waiting = True
                self._stop.wait(1.0)
                continue
            if waiting:
                log.info("Redis answers: processing")
            return True
        return False

    def shutdown(self) -> None:
        """Hand every partition over and leave the group (on SIGTERM / Ctrl-C)."""
        try:
            for p in list(self.runners):
                self._hand_over(p)
            self.redis.zrem(self.keys.workers, self.id)
        except redis.RedisError as exc:
            log.warning("could not hand partitions over cleanly (%s)", exc)
        finally:
            self._close()

    def _close(self) -> None:
        if self.archiver is not None:
            self.archiver.close()
        self.log.close()
