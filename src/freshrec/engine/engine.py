"""``Engine``: the Python API of DESIGN §3, and what the HTTP server is a thin layer over.

>>> engine = Engine.open()  # in memory
>>> result = engine.ingest([
...     {"type": "view", "user_id": "u1", "item_id": "shoe", "timestamp": 1000},
...     {"type": "view", "user_id": "u1", "item_id": "sock", "timestamp": 1010},
...     {"type": "view", "user_id": "u2", "item_id": "shoe", "timestamp": 1020}])
>>> result.accepted
3
>>> engine.process()
3
>>> [(r.item_id, r.reason) for r in engine.recommend("u2", k=1)]
[('sock', {'type': 'because_you_viewed', 'item_id': 'shoe'})]
>>> [(r.item_id, r.reason["type"]) for r in engine.recommend("someone new", k=2)]
[('shoe', 'popular'), ('sock', 'popular')]
>>> engine.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from freshrec.drift import DriftEvent, fast_members, fast_priors
from freshrec.drift.setup import build_alerts, build_monitor
from freshrec.engine.coldstart import ColdStart
from freshrec.engine.datadir import DataDirLock
from freshrec.engine.filters import Filters
from freshrec.engine.ingest import LogIngest
from freshrec.engine.lifecycle import Lifecycle, VersionStore
from freshrec.engine.processor import Processor
from freshrec.engine.quality import LiveQuality, model_top_k
from freshrec.engine.recommender import Recommendation, Recommender, Served
from freshrec.errors import NotFound
from freshrec.events import EventValidator, LoggedEvent
from freshrec.features import Context, enrich
from freshrec.log import EventLog, open_log
from freshrec.models import ContextRanker, CoVisitation, DecayedPopularity, Model, OnlineMF
from freshrec.models.contextpop import ContextPopularity
from freshrec.models.ensemble import Ensemble
from freshrec.registry import SnapshotStore
from freshrec.registry.versions import VersionBook
from freshrec.settings import Settings
from freshrec.state import OnlineState
from freshrec.state.catalogue import Catalogue
from freshrec.state.profiles import UserProfiles
from freshrec.state.shopstore import ShopStore

log = logging.getLogger(__name__)


class Engine(LogIngest):
    """An embedded freshrec: durable log, processor, models and recommendations in one process."""

    # where click attribution is shared with other processes (scale-out replicas: Redis, with
    # ``periodic``, the hooks their poller runs); an embedded engine is alone
    feedback_remote = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.blas_threads:
            # one matrix-vector product per request is faster on one thread than split over
            # cores that also serve requests and learn (p99 up to 10x worse with 2 threads)
            threadpool_limits(settings.blas_threads, user_api="blas")
        data = settings.data_dir
        self._dir_lock = None if data is None else DataDirLock(Path(data))
        self.log: EventLog = open_log(
            "memory://" if data is None else f"sqlite://{Path(data) / 'log.db'}",
            dedup_max_ids=settings.dedup_max_ids,
            dedup_window_seconds=settings.dedup_window_seconds,
        )
        self.validator = EventValidator()
        self.state = OnlineState(
            settings.recent_items,
            settings.session_window,
            settings.session_gap_seconds,
            settings.type_weight_vector(),
            settings.category_window,
        )
        self.popularity = DecayedPopularity(settings.popularity_half_life_seconds)
        self.covisitation = CoVisitation(
            settings.covis_neighbours,
            settings.covis_backward_weight,
            settings.covis_half_life_seconds,
            distance_exponent=settings.covis_distance_exponent,
            row_exponent=settings.covis_row_exponent,
            source_exponent=settings.covis_source_exponent,
        )
        self.lock = threading.RLock()
        snapshots = (
            None
            if data is None
            else SnapshotStore(Path(data) / "snapshots", settings.snapshots_kept)
        )
        self.mf = OnlineMF(
            factors=settings.mf_factors,
            learning_rate=settings.mf_learning_rate,
            regularization=settings.mf_regularization,
            loss=settings.mf_loss,
            negatives=settings.mf_negatives,
            negative_oversampling=settings.mf_negative_oversampling,
            recent_mix=settings.mf_recent_mix,
            seed=settings.mf_seed,
        )
        self.ranker = ContextRanker(
            factors=settings.ranker_factors,
            hash_bits=settings.ranker_hash_bits,
            learning_rate=settings.ranker_learning_rate,
            regularization=settings.ranker_regularization,
            negatives=settings.ranker_negatives,
            hour_buckets=settings.ranker_hour_buckets,
            seed=settings.ranker_seed,
        )
        self.fast_members = fast_members(settings)  # short time-window twins (freshrec.drift)
        self.models: list[Model] = [
            self.popularity,
            self.covisitation,
            self.mf,
            self.ranker,
            *self.fast_members,
        ]
        self.ensemble = Ensemble(
            self.models,
            fast_priors(settings),
            settings.ensemble_eta,
            settings.ensemble_min_weight,
            temperature=settings.ensemble_temperature,
        )
        # the shop's side (catalogue, user profiles, cold start): freshrec.engine.coldstart
        self.shop_store = ShopStore(None if data is None else Path(data) / "shop.db")
        self.catalogue = Catalogue(lambda: self.state.items, self.shop_store)
        self.profiles = UserProfiles(lambda: self.state.users, self.shop_store)
        self.context_popularity = ContextPopularity(
            settings.context_popularity_half_life_seconds,
            settings.trending_half_life_seconds,
            settings.context_popularity_max_keys,
            user_keys=self.profiles.keys,
            vocabulary=self.profiles.vocabulary,
        )
        self.recommender = Recommender(
            self.state,
            self.ensemble,
            self.covisitation,
            settings.exclude_recent,
            catalogue=self.catalogue,
            coldstart=ColdStart(self.context_popularity, self.popularity, self.catalogue),
            popularity=self.popularity,
            new_item_slots=settings.new_item_slots,
        )
        rankers = {m.name: model_top_k(m, self.ensemble) for m in self.models}
        rankers["ensemble"] = self.recommender.top_k
        self.quality = LiveQuality(
            self.state,
            rankers,
            self.recommender.excluded,
            settings.live_eval_k,
            settings.live_eval_window,
            settings.live_eval_every,
            on_update=self.ensemble.update_weights,
        )
        self.alerts = build_alerts(settings)
        decayed = [m for m in self.models if hasattr(m, "forget")]
        self.drift = build_monitor(
            settings,
            self.quality,
            self.popularity,
            decayed,  # type: ignore[arg-type]
            self.mf,
            self.ensemble,
            [m.name for m in self.fast_members],
            self.alerts,
        )
        watchers = [self.drift]  # detectors only with drift_detection; alerts always
        book = VersionBook(
            None if data is None else Path(data) / "registry.json",
            settings.registry_keep_promoted,
        )
        self.lifecycle = self.make_lifecycle(snapshots, book)
        self.processor = Processor(
            self.log,
            self.state,
            [*self.models, self.context_popularity],
            self.lock,
            snapshots,
            [self.quality, *watchers, self.lifecycle],
            settings.processor_batch_events,
            settings.snapshot_every_events,
            settings.snapshot_every_seconds,
            on_model_error=self.ensemble.disable,
            watchers=watchers,
            snapshot_meta=self.lifecycle.snapshot_meta,
            on_snapshot=self.lifecycle.on_snapshot,
            before_snapshot=self.lifecycle.settle,
            background_snapshots=settings.snapshot_in_background,
        )
        self.lifecycle.processor = self.processor
        self.rejected = 0
        self.ingest_listeners: list[Callable[[list[LoggedEvent]], object]] = []
        self.ready = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ingest_lock = threading.Lock()
        self._closed = False
        try:
            self.processor.restore()
            # no gates while the log written before this start is replayed: a snapshot of
            # those events re-creates what was served then (later ones are new versions)
            self.lifecycle.replay_end = self.log.end_offset()
        except BaseException:
            self.shop_store.close()
            self.log.close()
            if self._dir_lock is not None:
                self._dir_lock.release()
            raise

    def make_lifecycle(self, store: VersionStore | None, book: VersionBook) -> Lifecycle:
        """The model lifecycle of this engine's models over ``store``'s versions (a scale-out
        partition builds one over its Redis store)."""
        s = self.settings
        return Lifecycle(
            store,
            book,
            self.state,
            self.models,
            self.ensemble,
            self.quality,
            self.recommender,
            self.covisitation,
            k=s.live_eval_k,
            gate_events=s.registry_gate_events,
            gate_every=s.registry_gate_every,
            tolerance=s.registry_gate_tolerance,
            min_tests=s.registry_gate_min_tests,
            watch_events=s.registry_watch_events,
            rollback_drop=s.registry_rollback_drop,
            confidence=s.registry_confidence,
            drift_count=lambda: sum(self.drift.record.counts().values()),
        )

    @classmethod
    def open(cls, path: str | Path | None = None, **settings: Any) -> Engine:
        """Open (or create) an engine whose data lives in ``path`` (None = in memory)."""
        return cls(Settings(data_dir=path, **settings))

    # -- ingest (freshrec.engine.ingest) -----------------------------------------------------
    def _appended(self) -> None:
        self._wake.set()

    # -- processing --------------------------------------------------------------------------
    def process(self) -> int:
        """Drain the log through the processor; returns the number of events processed."""
        n = self.processor.drain()
        self.ready = True
        self.lifecycle.active = not self._closed
        return n

    def start(self) -> None:
        """Run the processor in a background thread (what a server does): a gate's frozen
        versions then load in a thread of their own, off the events' path."""
        if self._thread is None:
            self.lifecycle.background_gates = True
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="freshrec-processor", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        self.process()
        while not self._stop.is_set():
            try:
                n = self.processor.step()
            except Exception:  # keep serving; the batch is retried from the same offset
                log.exception("processor step failed; retrying")
                self._stop.wait(1.0)
                continue
            if n == 0:
                self._wake.wait(self.settings.processor_idle_seconds)
                self._wake.clear()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            self._thread = None
            self.lifecycle.background_gates = False

    # -- serving -----------------------------------------------------------------------------
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
        """Top-``k`` items for ``user_id`` with score and reason (popular ones for new users).

        ``context`` is the request's context (``device``, ``country``, ``tz_offset_minutes``,
        and ``timestamp`` -- unix seconds, default now -- as in events); ``user_agent`` and
        ``trusted_country`` fill in the device and country it does not name.
        """
        filters = self.default_filters(exclude=tuple(exclude or ()))
        served = self.serve(
            user_id, k, filters, context, user_agent=user_agent, trusted_country=trusted_country
        )
        return list(served.items)  # the Python API's list (``Served`` holds a tuple)

    def default_filters(self, **given: Any) -> Filters:
        """The request's filters over the shop-wide rules of the settings."""
        s = self.settings
        base = {
            "exclude_purchased": s.exclude_purchased,
            "max_per_category": s.max_per_category,
            "available_only": s.filter_unavailable,
            "excluded_categories": tuple(s.excluded_categories),
        }
        return Filters(**{**base, **{k: v for k, v in given.items() if v is not None}}).check()

    def serve(
        self,
        user_id: str,
        k: int,
        filters: Filters,
        context: Mapping[str, Any] | Context | None = None,
        strategy: str = "ensemble",
        *,
        user_agent: str | None = None,
        trusted_country: str | None = None,
    ) -> Served:
        """``recommend`` with filters and a strategy, saying how the list was made
        (``context`` may be one ``freshrec.features.enrich`` already made)."""
        if isinstance(context, Context):
            ctx = context
        else:
            stamp = (context or {}).get("timestamp")
            ts = float(stamp) if isinstance(stamp, int | float) else time.time()
            ctx = enrich(context, ts, user_agent=user_agent, trusted_country=trusted_country)
        profile = self.profiles.get(user_id)
        keys = profile.keys() if profile is not None else ()
        with self.lock:
            self.drift.served()
            return self.recommender.serve(user_id, k, filters, ctx, strategy, keys)

    def user_version(self, user_id: str) -> Any:
        """Changes with every event the processor applies to the user and every change of
        their profile (response caches compare it); None: unknown right now (do not cache)."""
        state = self.state
        revision = self.profiles.revisions.get(user_id, 0)
        u = state.users.get(user_id)
        if u is None:
            return (-1, -1, revision)
        try:  # read without the engine lock: arrays only grow, ints are read atomically
            return (int(state.session_no[u]), int(state.session_events[u]), revision)
        except IndexError:  # the processor is adding this user right now
            return None

    def has_pending(self) -> bool:
        """Whether the processor has events to apply (it may then hold the lock a while)."""
        return self.log.end_offset() > self.processor.offset

    def similar(self, item_id: str, k: int = 10) -> list[Recommendation]:
        """Items shoppers interact with around ``item_id`` (for a catalogue item no one has
        touched yet: popular items of its category); ``NotFound`` for an unknown item."""
        banned = self.settings.excluded_categories  # a shop rule: every list keeps it
        with self.lock:
            item = self.state.items.get(item_id)
            if item is None:
                found = self.recommender.similar_by_content(item_id, k, banned)
                if found is None:
                    raise NotFound(f"item_id: unknown item {item_id!r}")
                return found
            return self.recommender.similar(item, k, banned)

    def models_info(self) -> dict[str, Any]:
        """The serving models: parameters, live hit rates and ensemble weights."""
        with self.lock:
            rates = self.quality.hit_rates()
            weights = dict(self.ensemble.weights)
            return {
                "model_version": self.model_version,
                "live_eval": {
                    "k": self.quality.k,
                    "every": self.quality.every,
                    "window": self.quality.window,
                    "tests": self.quality.tests,
                },
                "ensemble": {
                    "hit_rate": rates["ensemble"],
                    "eta": self.ensemble.eta,
                    "min_weight": self.ensemble.min_weight,
                },
                "models": [
                    {
                        "name": m.name,
                        "params": m.params(),
                        "weight": weights[m.name],
                        "prior": self.ensemble.priors[m.name],
                        "hit_rate": rates[m.name],
                        "errors": self.ensemble.errors.get(m.name, 0),
                        "disabled": self.ensemble.disabled.get(m.name),
                    }
                    for m in self.models
                ],
            }

    @property
    def model_version(self) -> str:
        """The promoted model version the live models last started from ("live" before any)."""
        return self.lifecycle.model_version

    def versions(self) -> list[dict[str, Any]]:
        """Model versions on disk (newest first): metadata, validation metrics, status."""
        with self.lock:
            return self.lifecycle.versions()

    def promote(self, version: str) -> dict[str, Any]:
        """Serve ``version``'s exact parameters from now on (the models keep learning)."""
        with self.lock:
            return self.lifecycle.promote(version)

    def rollback(self) -> dict[str, Any]:
        """Back to the version promoted before the current one."""
        with self.lock:
            return self.lifecycle.rollback()

    def drift_events(self) -> list[DriftEvent]:
        """Every drift detection kept (``drift_events_kept``), oldest first, with its action."""
        with self.lock:
            return self.drift.events()

    def stats(self) -> dict[str, Any]:
        """Event counts, catalogue size and readiness, read consistently under the lock."""
        with self.lock:
            accepted = self.log.end_offset()
            processed = self.processor.offset
            users, items = len(self.state.users), len(self.state.items)
        return {
            "events_accepted": accepted,
            "events_processed": processed,
            "events_duplicate": self.log.duplicates_total(),
            "events_rejected": self.rejected,
            "processor_lag": accepted - processed,
            "users": users,
            "items": items,
            "model_version": self.model_version,
            "ready": self.ready,
        }

    def close(self) -> None:
        """Stop the processor, write a final snapshot and close the log (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        try:
            if self.settings.data_dir is not None:
                self.processor.drain()
                self.lifecycle.active = False
                # here, not forked: close returns once it is on disk (and waits for one
                # being written); nothing written if nothing is new since the last
                self.processor.poll_snapshot(block=True)
                self.processor.maybe_snapshot(force=True, background=False)
        finally:
            self.shop_store.close()
            self.alerts.close()
            self.log.close()
            if self._dir_lock is not None:
                self._dir_lock.release()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_processed(self, timeout: float = 5.0) -> bool:
        """Block until every accepted event is processed (for tests and tools)."""
        deadline = time.monotonic() + timeout
        while self.processor.offset < self.log.end_offset():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True
