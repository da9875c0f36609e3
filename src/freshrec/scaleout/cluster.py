"""``ClusterEngine``: what a stateless ``freshrec serve --redis-url`` replica serves.

It has the interface of ``Engine`` that the HTTP layer uses (ingest, recommend, similar, stats,
models_info, start/stop/close), over Redis:

- ingest validates and appends to the Redis log (``RedisLog``): durable in Redis before the
  202, or a 503 naming Redis when it cannot be reached -- never a silent drop;
- for each partition the replica holds an ``Engine`` restored from the partition's latest
  serving publication (``freshrec.scaleout.serving``: item-side models -- popularity,
  co-visitation, MF item factors, ranker -- and item ids, no per-user state), built by a
  background poller off the request path and swapped in whole within ``serving_poll_seconds``
  of its publication; the models are those of the user's partition (one writer per
  partition);
- each request reads the user's record from Redis (``freshrec.state.redis``): recent items,
  session, purchases and MF user factors as of the latest processed batch (the factors become
  the request's MF query vector; the loaded models are never written by requests). When Redis is
  unreachable the user is served as a newcomer (the cached popularity of their partition).
- the shop (catalogue, user profiles, experiments) is shared by every replica through Redis
  (``freshrec.state.redis_shop``, ``freshrec.scaleout.shop``): each partition's engine filters
  through a catalogue that follows the replica's one, and the other replicas' changes are
  taken in every ``shop_poll_seconds``. ``RecommendService`` serves a replica as it serves an
  embedded engine (cache keyed by the user's record version, time budget, fallback);
  its click attribution (``Feedback``) shares responses and counters with the other replicas
  through ``feedback_remote`` (``freshrec.state.redis_feedback``), synced with the shop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import redis
from prometheus_client.core import HistogramMetricFamily, Metric

from freshrec.engine import Engine
from freshrec.engine.coldstart import ColdStart
from freshrec.engine.filters import Filters
from freshrec.engine.ingest import LogIngest
from freshrec.engine.processor import Processor
from freshrec.engine.recommender import Recommendation, Recommender, Served
from freshrec.errors import StorageError, ValidationError
from freshrec.events import EventValidator, LoggedEvent
from freshrec.features.context import Context
from freshrec.log.redis import RedisLog, connect, partition_of, unavailable
from freshrec.scaleout.feed import ChunkFeed
from freshrec.scaleout.keys import Keys
from freshrec.scaleout.lifecycle import ClusterLifecycle
from freshrec.scaleout.partition import FRESHNESS_BUCKETS, UserEvents
from freshrec.scaleout.serving import ContextStore, ServingStore
from freshrec.scaleout.shop import ReplicaCatalogue, ShopSync
from freshrec.settings import Settings
from freshrec.state import OnlineState, UserView
from freshrec.state.catalogue import Catalogue
from freshrec.state.ids import IdMap
from freshrec.state.profiles import UserProfiles
from freshrec.state.redis import decode_record, record_view, user_key
from freshrec.state.redis_feedback import RedisFeedback
from freshrec.state.redis_shop import RedisShopStore

log = logging.getLogger(__name__)


class _SnapshotOnly(ChunkFeed):
    """A replica's processor only restores publications: the log ends where they do."""

    def __init__(self, store: ServingStore) -> None:
        super().__init__()
        self.store = store

    def end_offset(self) -> int:
        return int(self.store.loaded_meta.get("offset", 0))


class UserRecords:
    """The Redis read on the recommendation path, a user's record, held to a request's time:
    a short timeout (``redis_read_timeout_seconds``), and once a read has failed -- a stalled
    or lost Redis -- none for ``redis_read_pause_seconds``. Those requests are answered at once
    (the user as a newcomer: the replica's popular items), not each after a full timeout."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        assert settings.redis_url is not None
        self.client = connect(settings.redis_url, settings.redis_read_timeout_seconds)
        self.prefix = settings.redis_prefix
        self.pause = settings.redis_read_pause_seconds
        self.clock = clock
        self.skipped = 0  # reads not tried: Redis failed a read less than ``pause`` ago
        self._until = 0.0

    def get(self, user_id: str) -> bytes | None:
        """The user's record (None: no record); ``redis.RedisError`` when it is not read."""
        if self.clock() < self._until:
            self.skipped += 1
            raise redis.ConnectionError("not tried: Redis failed a read a moment ago")
        try:
            return self.client.get(user_key(self.prefix, user_id))  # type: ignore[return-value]
        except redis.RedisError:
            self._until = self.clock() + self.pause
            raise


class RedisUserViews:
    """Stands in for ``OnlineState`` in a replica's ``Recommender``: users come from Redis,
    items from the partition's snapshot."""

    def __init__(self, engine: Engine, records: UserRecords) -> None:
        self.engine = engine
        self.items: IdMap = engine.state.items
        self.records = records
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        """Item-side arrays (categories, prices) and the (empty) user index: the snapshot's."""
        return getattr(self.engine.state, name)

    def view(self, user_id: str, max_items: int | None = None, context: Context | None = None):  # type: ignore[no-untyped-def]
        state = self.engine.state
        try:
            data = self.records.get(user_id)
        except redis.RedisError:
            self.failures += 1  # serve them as a newcomer: the partition's popular items
            data = None
        if data is None:
            return state.view(f"\x00unknown:{user_id}", context=context)
        rec = decode_record(data)
        view: UserView = record_view(
            rec, self.items, state.session_gap_seconds, state.max_ts, context
        )
        if rec.mf is not None:  # the user's factors, as fresh as their record
            p_u = np.frombuffer(rec.mf, dtype=np.float32)
            view.memo["mf/p"] = self.engine.mf.query_vector(p_u, view.recent_items)
        return view


class ClusterEngine(LogIngest):
    """A serving replica of a scale-out deployment (state and log in Redis)."""

    def __init__(self, settings: Settings) -> None:
        if settings.redis_url is None:
            raise ValueError("redis_url: scale-out serving needs the deployment's Redis")
        self.settings = settings
        self.log = RedisLog(
            settings.redis_url,
            settings.redis_partitions,
            settings.redis_prefix,
            settings.dedup_max_ids,
            settings.dedup_window_seconds,
            timeout=settings.redis_timeout_seconds,
            wait=True,  # a replica starts, and answers 503, while Redis is down
        )
        self.redis = self.log.redis
        self.records = UserRecords(settings)  # the recommendation path's reads
        self.keys = Keys(settings.redis_prefix)
        self.lifecycle = ClusterLifecycle(
            self.redis,
            settings.redis_prefix,
            self.log.partitions,
            settings.registry_keep_promoted,
        )
        self.validator = EventValidator()
        self.rejected = 0
        self._ingest_lock = threading.Lock()
        self.lock = threading.RLock()
        self.partitions: list[Engine | None] = [None] * self.log.partitions
        self.partition_versions = [0] * self.log.partitions
        self._stores = [
            ServingStore(self.redis, settings.redis_prefix, p) for p in range(self.log.partitions)
        ]
        # each partition's cold-start table, published apart (``ContextPublisher``)
        self._contexts = [
            ContextStore(self.redis, settings.redis_prefix, p) for p in range(self.log.partitions)
        ]
        # the shop, shared by every replica through Redis (freshrec.scaleout.shop)
        self.shop_store = RedisShopStore(self.redis, settings.redis_prefix)
        self.catalogue = ReplicaCatalogue(self.shop_store, self._seen_in_events)
        self.profiles = UserProfiles(IdMap(), self.shop_store)
        self.shop_sync = ShopSync(self.shop_store, self.lock, settings.shop_poll_seconds)
        # click attribution shared by the replicas: the service's ``Feedback`` pushes and
        # reads through it from ``periodic`` (run by the shop's poller)
        self.feedback_remote = RedisFeedback(
            self.redis, settings.redis_prefix, settings.feedback_response_ttl_seconds
        )
        self.periodic = self.shop_sync.also
        self.ingest_listeners: list[Callable[[list[LoggedEvent]], object]] = []
        self.recommender = _Recommenders(self)
        self._empty = self._shop_engine(self._engine())
        self._last_stats: dict[str, Any] = {}
        self.reachable = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    @property
    def model_version(self) -> str:
        """ "live": a replica serves what the workers publish -- the models as they learn,
        from whichever version each partition last promoted (listed by ``versions``). One name
        for the deployment keeps attribution to one pair of counters per strategy, where the
        partitions' versions, each moving on its own, would split it."""
        return "live"

    @property
    def ready(self) -> bool:
        return self.reachable

    def _engine(self) -> Engine:
        return Engine(self.settings.model_copy(update={"data_dir": None, "redis_url": None}))

    def _shop_engine(self, engine: Engine) -> Engine:
        """Serve ``engine`` (a partition's) through the replica's shop: a catalogue following
        the replica's, the shared profiles, cold start and filters as embedded."""
        engine.catalogue = Catalogue(lambda: engine.state.items)
        engine.profiles = self.profiles
        engine.recommender = Recommender(
            RedisUserViews(engine, self.records),  # type: ignore[arg-type]
            engine.ensemble,
            engine.covisitation,
            self.settings.exclude_recent,
            catalogue=engine.catalogue,
            coldstart=ColdStart(engine.context_popularity, engine.popularity, engine.catalogue),
            popularity=engine.popularity,
            new_item_slots=self.settings.new_item_slots,
        )
        with self.lock:
            self.catalogue.follow(engine.catalogue)
        return engine

    def _seen_in_events(self, item_id: str) -> bool:
        return any(e is not None and item_id in e.state.items for e in self.partitions)

    @property
    def state(self) -> OnlineState:
        """The item side of the first loaded partition (replicas hold no per-user state)."""
        return next((e for e in self.partitions if e is not None), self._empty).state

    # -- model snapshots ---------------------------------------------------------------------
    def refresh(self) -> int:
        """Load every partition's publication newer than the one held (partitions whose
        version did not change are left alone); returns how many loaded."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            for store in self._stores:
                pipe.hget(store.key, "version")
            for context in self._contexts:
                pipe.hget(context.key, "version")
            found = [int(v or 0) for v in pipe.execute()]
            self.reachable = True
        except redis.RedisError:
            self.reachable = False
            return 0
        n = len(self._stores)
        versions, context_versions = found[:n], found[n:]
        loaded = 0
        for p, version in enumerate(versions):
            fresh_context = self._load_context(p, context_versions[p])
            if version and version != self.partition_versions[p]:
                engine = self._load(p)
                if engine is not None:
                    self._apply_context(p, engine)
                    with self.lock:
                        old = self.partitions[p]
                        if old is not None:
                            self.catalogue.unfollow(old.catalogue)
                        self.partitions[p] = engine
                        self.partition_versions[p] = int(self._stores[p].loaded_meta["version"])
                    loaded += 1
            elif fresh_context and (engine := self.partitions[p]) is not None:
                self._apply_context(p, engine)
        return loaded

    def _load_context(self, p: int, version: int) -> bool:
        """Fetch partition ``p``'s cold-start table if ``version`` is new; whether it was."""
        try:
            return self._contexts[p].load(version)
        except (redis.RedisError, StorageError) as exc:
            log.warning("cannot load the cold-start table of partition %d: %s", p, exc)
            return False

    def _apply_context(self, p: int, engine: Engine) -> None:
        """Give ``engine`` (partition ``p``'s) the partition's latest cold-start table, cut to
        the items the engine knows (the table may be newer than its serving publication)."""
        arrays = self._contexts[p].arrays
        if arrays is None:
            return
        n = len(engine.state.items)
        arrays = {**arrays, "counts": arrays["counts"][:, :n], "trend": arrays["trend"][:n]}
        with engine.lock:
            engine.context_popularity.load_state_dict(arrays)

    def _load(self, p: int) -> Engine | None:
        engine = self._engine()
        store = self._stores[p]
        processor = Processor(
            _SnapshotOnly(store),
            engine.state,
            engine.models,
            engine.lock,
            store,
            [engine.quality, UserEvents()],
            on_model_error=engine.ensemble.disable,
        )
        try:
            processor.restore()
        except (redis.RedisError, StorageError) as exc:
            log.warning("cannot load the snapshot of partition %d: %s", p, exc)
            return None
        engine.ready = True
        return self._shop_engine(engine)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, name="freshrec-models", daemon=True)
            self._thread.start()
        self.shop_sync.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.serving_poll_seconds):
            try:
                self.refresh()
            except Exception:
                log.exception("loading model snapshots failed; retrying")

    def stop(self) -> None:
        self.shop_sync.stop()
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        self.stop()
        self.log.close()

    # -- ingest: freshrec.engine.ingest.LogIngest -------------------------------------------

    # -- serving -----------------------------------------------------------------------------
    def _partition(self, user_id: str) -> Engine:
        engine = self.partitions[partition_of(user_id, self.log.partitions)]
        return engine if engine is not None else self._empty

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        context: Mapping[str, Any] | None = None,
        exclude: Iterable[str] | None = None,
        *,
        user_agent: str | None = None,
        trusted_country: str | None = None,
    ) -> list[Recommendation]:
        """As ``Engine.recommend``, with the user's state read from Redis now."""
        return self._partition(user_id).recommend(
            user_id,
            k,
            context,
            exclude,
            user_agent=user_agent,
            trusted_country=trusted_country,
        )

    def default_filters(self, **given: Any) -> Filters:
        return self._empty.default_filters(**given)

    def serve(
        self,
        user_id: str,
        k: int,
        filters: Filters,
        context: Mapping[str, Any] | Context | None = None,
        strategy: str = "ensemble",
        **kwargs: Any,
    ) -> Served:
        """As ``Engine.serve``, with the user's state read from Redis now."""
        return self._partition(user_id).serve(user_id, k, filters, context, strategy, **kwargs)

    def user_version(self, user_id: str) -> Any:
        """The user's record version in Redis (events processed, last event) and profile
        revision: moves with every event a worker applies; None (not cached) when Redis is
        unreachable."""
        revision = self.profiles.revisions.get(user_id, 0)
        try:
            data = self.records.get(user_id)
        except redis.RedisError:
            return None
        if data is None:
            return (-1, -1.0, revision)
        rec = decode_record(data)
        return (rec.events, rec.last_ts, revision)

    # Drift detection and the model lifecycle run where the models learn: in each partition's
    # engine on the workers. A replica has no detectors and no versions of its own: it lists
    # the detections the workers wrote to the cluster's drift stream, and the partitions'
    # versions, and sends promote / rollback to their owners (``ClusterLifecycle``).
    drift = None

    def drift_events(self) -> list[dict[str, Any]]:
        """The latest ``drift_events_kept`` detections of every partition, oldest first, each
        with its ``partition`` (``at_event`` counts that partition's events); a detection a
        new owner replayed after a crash is listed once. ``StorageError`` without Redis."""
        try:
            entries = self.redis.xrevrange(
                self.keys.drift, count=4 * self.settings.drift_events_kept
            )
        except redis.RedisError as exc:
            raise StorageError(f"drift events: Redis unreachable ({exc})") from None
        seen: set[tuple[int, int, str, str]] = set()
        out: list[dict[str, Any]] = []
        for _, fields in entries:
            f = {k.decode(): v.decode() for k, v in fields.items()}
            event = {
                "detector": f["detector"],
                "signal": f["signal"],
                "at_event": int(f["at_event"]),
                "at_time": float(f["at_time"]),
                "action": f["action"],
                "partition": int(f["partition"]),
            }
            key = (event["partition"], event["at_event"], event["detector"], event["signal"])
            if key not in seen:
                seen.add(key)
                out.append(event)
        out.sort(key=lambda e: (e["at_time"], e["partition"], e["at_event"]))
        return out[-self.settings.drift_events_kept :]

    def drift_counts(self) -> dict[tuple[str, str], int]:
        """Detections so far in the deployment by ``(detector, signal)``, each counted once
        (for ``/metrics``); empty when Redis is unreachable."""
        try:
            raw = self.redis.hgetall(self.keys.drift_counts)
        except redis.RedisError:
            return {}
        out = {}
        for key, n in raw.items():
            detector, _, signal = key.decode().partition("|")
            out[(detector, signal)] = int(n)
        return out

    def versions(self) -> list[dict[str, Any]]:
        """Every partition's model versions (``freshrec.scaleout.lifecycle``), newest first."""
        try:
            return self.lifecycle.versions()
        except redis.RedisError as exc:
            raise StorageError(f"model versions: Redis unreachable ({exc})") from None

    def promote(self, version: str) -> dict[str, Any]:
        """Have the partition's worker serve ``p<N>-v<offset>``'s exact parameters."""
        try:
            return self.lifecycle.promote(version)
        except redis.RedisError as exc:
            raise StorageError(f"promote: Redis unreachable ({exc})") from None

    def rollback(self) -> dict[str, Any]:
        """Every partition back to the version it promoted before its current one."""
        try:
            return self.lifecycle.rollback()
        except redis.RedisError as exc:
            raise StorageError(f"rollback: Redis unreachable ({exc})") from None

    def has_pending(self) -> bool:
        """Replicas apply no events (workers do): a ranking never waits for a micro-batch."""
        return False

    def similar(self, item_id: str, k: int = 10) -> list[Recommendation]:
        """Co-visitation partners of ``item_id`` summed over every partition's model."""
        scores: dict[str, float] = {}
        known = False
        for engine in self.partitions:
            if engine is None or engine.state.items.get(item_id) is None:
                continue
            known = True
            for rec in engine.similar(item_id, k):
                scores[rec.item_id] = scores.get(rec.item_id, 0.0) + rec.score
        if not known:  # a catalogue item no shopper touched yet: its category's popular items
            return self._empty_or_first().similar(item_id, k)
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        reason = {"type": "also_viewed", "item_id": item_id}
        return [Recommendation(item, score, reason) for item, score in best]

    def _empty_or_first(self) -> Engine:
        return next((e for e in self.partitions if e is not None), self._empty)

    def models_info(self) -> dict[str, Any]:
        """The models of the first loaded partition, and every partition's snapshot version."""
        engine = next((e for e in self.partitions if e is not None), self._empty)
        info = engine.models_info()
        info["model_version"] = self.model_version
        info["partitions"] = [
            {"partition": p, "version": v, "loaded": e is not None}
            for p, (v, e) in enumerate(zip(self.partition_versions, self.partitions, strict=True))
        ]
        return info

    def stats(self) -> dict[str, Any]:
        """Cluster-wide counts from Redis; when Redis is unreachable, the last known ones with
        ``ready`` false and the reason."""
        n = self.log.partitions
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hmget(self.log.meta_key, ["end", "duplicates"])
            pipe.hgetall(self.keys.parts)
            pipe.scard(self.keys.items)
            (end, duplicates), parts, items = pipe.execute()
        except redis.RedisError as exc:
            self.reachable = False
            zeros = dict.fromkeys(
                ("events_accepted", "events_processed", "events_duplicate", "processor_lag"), 0
            )
            return {
                **zeros,
                "users": 0,
                "items": 0,
                "model_version": self.model_version,
                **self._last_stats,
                "events_rejected": self.rejected,
                "user_reads_skipped": self.records.skipped,
                "ready": False,
                "reason": str(unavailable(self.settings.redis_url or "", exc)),
            }
        self.reachable = True
        fields = {k.decode(): int(v) for k, v in parts.items()}
        accepted = int(end or 0)
        processed = sum(fields.get(f"processed:{p}", 0) for p in range(n))
        self._last_stats = {
            "events_accepted": accepted,
            "events_processed": processed,
            "events_duplicate": int(duplicates or 0),
            "events_rejected": self.rejected,
            "processor_lag": accepted - processed,
            "users": sum(fields.get(f"users:{p}", 0) for p in range(n)),
            "items": int(items),
            "model_version": self.model_version,
            "partitions": n,
            "ready": True,
        }
        return {**self._last_stats, "user_reads_skipped": self.records.skipped}

    def extra_metrics(self) -> Iterator[Metric]:
        """The cluster's freshness histogram: acknowledged -> visible to serving."""
        try:
            raw = self.redis.hgetall(self.keys.fresh)
        except redis.RedisError:
            return
        fields = {k.decode(): float(v) for k, v in raw.items()}
        cumulative, buckets = 0.0, []
        for bound in FRESHNESS_BUCKETS:
            cumulative += fields.get(f"le:{bound!r}", 0.0)
            buckets.append((repr(bound), cumulative))
        buckets.append(("+Inf", fields.get("count", 0.0)))
        yield HistogramMetricFamily(
            "freshrec_freshness_seconds",
            "Time from an event's acknowledgement to its effect being visible to serving.",
            buckets=buckets,
            sum_value=fields.get("sum", 0.0),
        )

    def wait_processed(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats()
            if s.get("ready") and s["events_processed"] >= s["events_accepted"]:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)


class _Recommenders:
    """What the serving layer asks of ``Engine.recommender``, over the replica's partitions."""

    def __init__(self, cluster: ClusterEngine) -> None:
        self.cluster = cluster

    def check_known(self, ids: Iterable[str], field: str = "exclude") -> None:
        """``ValidationError`` naming ``field`` unless every id is in the catalogue or in a
        partition's snapshot."""
        cluster = self.cluster
        unknown = [
            i
            for i in ids
            if i not in cluster.catalogue.ids
            and not any(e is not None and i in e.state.items for e in cluster.partitions)
        ]
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:5])
            more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
            raise ValidationError(field, f"unknown item ids {shown}{more}")

    def fallback(self, user_id: str, k: int, filters: Filters) -> list[Recommendation]:
        return self.cluster._partition(user_id).recommender.fallback(user_id, k, filters)
