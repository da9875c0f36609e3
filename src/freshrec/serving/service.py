"""What HTTP and gRPC share around ``Engine.serve``: cache, A/B arm, time budget, attribution.

One request: enrich the context; pick the strategy (the request's, else the running
experiment's arm for this user, else the ensemble); look in the response cache (keyed by user,
k, context, filters and strategy; valid while the user's and the catalogue's versions are
unchanged); on a miss, rank.

When the processor is idle the ranking runs right here -- a thread hop costs more than most
rankings -- waiting at most the budget for the engine, and its CPU time is measured. If the
processor has events to apply (it may hold the engine for a whole micro-batch), or
``GUARD_AFTER`` rankings in a row used more than ``recommend_budget_ms`` of CPU in the last
``GUARD_SECONDS`` (time lost to preemption on a busy machine does not count), it runs in a
worker thread and is waited for at most the budget. A ranking that raises or runs out of time
is abandoned and the response falls back to popular items through the same filters
(``Recommender.fallback``, no engine lock), marked with ``fallback``: recommendations never
fail while the process is healthy. (Python cannot stop a running computation: an inline ranking
over the budget is still served, counted in ``slow``, and two in a row put the next ones
under the deadline.) Every response gets a fresh ``recommendation_id``, remembered by
``Feedback`` for click attribution.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from freshrec.engine import Engine
from freshrec.engine.experiments import SETTINGS_EXPERIMENT, Arm, Experiments, ExperimentSpec
from freshrec.engine.feedback import Feedback
from freshrec.engine.filters import Filters
from freshrec.engine.recommender import STRATEGIES, Served
from freshrec.engine.warmup import rank_every_path
from freshrec.errors import FreshrecError, ValidationError
from freshrec.features import Context, enrich
from freshrec.serving.cache import ResponseCache

log = logging.getLogger(__name__)

_ids = random.Random()  # seeded from os.urandom; re-seeded in a forked child
os.register_at_fork(after_in_child=_ids.seed)


def recommendation_id() -> str:
    """A new response id: 128 random bits as 32 hex digits, as ``uuid.uuid4().hex`` gives,
    drawn from a generator seeded from the OS at start (no system call per response: with
    uuid4 each one read the kernel's entropy pool). Ids name responses for attribution; they
    are not secrets, as anyone who sends events can attribute clicks anyway."""
    return f"{_ids.getrandbits(128):032x}"


GUARD_SECONDS = 10.0  # after rankings over the budget, rank under a deadline for this long
GUARD_AFTER = 2  # consecutive rankings over the budget (one can be a garbage-collector pause)


@dataclass(slots=True)
class Request:
    user_id: str
    k: int
    filters: Filters
    context: Context
    strategy: str
    experiment: str | None
    arm: str | None
    key: tuple
    user_version: Any
    catalogue_version: int


class RecommendService:
    """Recommendations as a shop gets them, over one engine (shared by HTTP and gRPC)."""

    def __init__(self, engine: Engine) -> None:
        s = engine.settings
        self.engine = engine
        self.cache = ResponseCache(s.cache_max_entries, s.cache_ttl_seconds)
        self.experiments = Experiments(engine.shop_store)
        if s.experiment_arms:
            self._settings_experiment(s.experiment_arms)
        # scale-out: responses and counters shared with the other replicas, synced by the
        # replica's poller (``engine.periodic``); embedded: this process's only
        remote = engine.feedback_remote
        self.feedback = Feedback(
            s.feedback_max_responses, on_attributed=self.experiments.record, remote=remote
        )
        if remote is not None:
            engine.periodic.append(self.feedback.sync)
        engine.ingest_listeners.append(self.feedback.observe)
        self.budget = s.recommend_budget_ms / 1000.0
        self.pool = concurrent.futures.ThreadPoolExecutor(
            s.recommend_workers, thread_name_prefix="freshrec-recommend"
        )
        self.fallbacks: Counter[str] = Counter()
        self.slow = 0  # inline rankings that took longer than the budget
        self._guarded_until = 0.0  # until then (monotonic), rankings run under a deadline
        self._over_in_a_row = 0  # consecutive inline rankings over the budget

    def _settings_experiment(self, arms: Mapping[str, float]) -> None:
        running = self.experiments.running()
        if running is not None:
            log.warning("experiment_arms ignored: experiment %r is running", running.id)
            return
        self.experiments.by_id.pop(SETTINGS_EXPERIMENT, None)
        spec = ExperimentSpec(
            SETTINGS_EXPERIMENT, [Arm(name, name, float(p)) for name, p in arms.items()]
        )
        self.experiments.create(spec, persist=False)

    def warm_up(self) -> None:
        """Rank once along every path (``rank_every_path``), so the first shoppers do not pay
        for loading compiled kernels -- nor trip the budget guard."""
        try:
            rank_every_path(self.engine)
        except Exception:  # a warm-up must never stop the server
            log.exception("warm-up recommendation failed")

    def close(self) -> None:
        if self.feedback.observe in self.engine.ingest_listeners:
            self.engine.ingest_listeners.remove(self.feedback.observe)
        if self.feedback.remote is not None and self.feedback.sync in self.engine.periodic:
            self.engine.periodic.remove(self.feedback.sync)
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- one request ---------------------------------------------------------------------------
    def prepare(
        self,
        user_id: str,
        k: int,
        filters: Filters,
        context: Mapping[str, Any] | None = None,
        *,
        strategy: str | None = None,
        user_agent: str | None = None,
        trusted_country: str | None = None,
    ) -> Request:
        """Validate and describe a request (raises ``ValidationError`` naming the field)."""
        self.engine.recommender.check_known(filters.exclude)
        stamp = (context or {}).get("timestamp")
        ts = float(stamp) if isinstance(stamp, int | float) else time.time()
        ctx = enrich(context, ts, user_agent=user_agent, trusted_country=trusted_country)
        experiment = arm = None
        if strategy is None:
            running = self.experiments.running()
            chosen = running.arm_of(user_id) if running is not None else None
            if chosen is not None:
                experiment, arm, strategy = running.id, chosen.name, chosen.strategy  # type: ignore[union-attr]
        strategy = strategy or "ensemble"
        if strategy not in STRATEGIES:
            raise ValidationError(
                "strategy", f"unknown {strategy!r} (known: {', '.join(STRATEGIES)})"
            )
        key = (
            user_id,
            k,
            strategy,
            filters,
            (ctx.device, ctx.country, ctx.hour, ctx.weekday, ctx.tz_offset_minutes),
        )
        return Request(
            user_id,
            k,
            filters,
            ctx,
            strategy,
            experiment,
            arm,
            key,
            self._user_version(user_id),
            self.engine.catalogue.version,
        )

    def _prepare_or_fallback(
        self, user_id: str, k: int, filters: Filters, *args: Any, **kwargs: Any
    ) -> Request | dict[str, Any]:
        """``prepare``; a bad request still raises (4xx), but an unexpected failure answers
        with popular items instead of a 5xx."""
        try:
            return self.prepare(user_id, k, filters, *args, **kwargs)
        except FreshrecError:
            raise
        except Exception:
            log.exception("could not prepare a recommendation; serving popular items")
            ctx = enrich(None, time.time())
            req = Request(user_id, k, filters, ctx, "popular", None, None, (), None, -1)
            return self.finish(req, self.fallback(req, "error"))

    def _user_version(self, user_id: str) -> Any:
        """Changes with every event applied to the user and every profile change (embedded:
        the online state; scale-out: the user's record in Redis)."""
        return self.engine.user_version(user_id)

    def cached(self, req: Request) -> dict[str, Any] | None:
        if req.user_version is None:
            return None
        served = self.cache.get(req.key, req.user_version, req.catalogue_version)
        return None if served is None else self.finish(req, served, cached=True)

    def compute(self, req: Request) -> Served:
        return self.engine.serve(req.user_id, req.k, req.filters, req.context, req.strategy)

    def _guarded(self, req: Request, deadline: float) -> Served | None:
        """``compute`` in a worker, unless the deadline passes first: a ranking the caller no
        longer waits for is not started (abandoned work must not pile up behind the lock)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self.engine.lock.acquire(timeout=remaining):
            return None
        try:
            if time.monotonic() > deadline:
                return None
            return self.compute(req)
        finally:
            self.engine.lock.release()

    def fallback(self, req: Request, reason: str) -> Served:
        self.fallbacks[reason] += 1
        try:
            items = self.engine.recommender.fallback(req.user_id, req.k, req.filters)
        except Exception:  # never fail: an empty list beats a 5xx
            log.exception("popular fallback failed")
            items = []
        return Served(tuple(items), "popular", fallback=reason)

    def finish(self, req: Request, served: Served, cached: bool = False) -> dict[str, Any]:
        """The response; remembered for attribution under a new ``recommendation_id``."""
        if not cached and served.fallback is None and req.user_version is not None:
            self.cache.put(req.key, req.user_id, req.user_version, req.catalogue_version, served)
        rid = recommendation_id()
        version = self.engine.model_version
        self.feedback.served(
            rid,
            served.strategy,
            version,
            req.user_id,
            [r.item_id for r in served.items],
            req.experiment,
            req.arm,
        )
        if req.experiment is not None and req.arm is not None:
            self.experiments.record(req.experiment, req.arm, "response", True)
        return {
            "recommendation_id": rid,
            "model_version": version,
            "user_id": req.user_id,
            "strategy": served.strategy,
            "experiment": None
            if req.experiment is None
            else {"id": req.experiment, "arm": req.arm},
            "cold_start": served.cold_start,
            "fallback": served.fallback,
            "cached": cached,
            "items": served.items,
        }

    def _inline(self, req: Request) -> Served | None:
        """Rank in this thread unless a ranking ran over the budget lately or the processor
        is applying events (None: go to a worker under the deadline instead). With the
        processor idle, whoever holds the engine is another ranking: wait for it, at most
        the budget (sending this one to a worker would only add thread hops)."""
        if time.monotonic() < self._guarded_until:
            return None
        engine = self.engine
        if engine.has_pending():  # the processor has work
            if not engine.lock.acquire(False):
                return None
        elif not engine.lock.acquire(timeout=self.budget):
            return self.fallback(req, "timeout")
        # CPU time: being preempted on a busy machine is not slow. The thread's CPU clock is a
        # system call (no vDSO): read again only when the wall clock says it may be over.
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            served = self.compute(req)
        except Exception:
            log.exception("recommendation failed; serving popular items")
            return self.fallback(req, "error")
        finally:
            self.engine.lock.release()
        budget = self.budget  # (a thread's CPU time never exceeds the wall time it took)
        if time.perf_counter() - start > budget and time.thread_time() - cpu > budget:
            self.slow += 1  # served, but guard the next ones
            self._over_in_a_row += 1
            if self._over_in_a_row >= GUARD_AFTER:
                self._guarded_until = time.monotonic() + GUARD_SECONDS
        else:
            self._over_in_a_row = 0
        return served

    def _without_worker(
        self, *args: Any, **kwargs: Any
    ) -> dict[str, Any] | tuple[Request, Served | None]:
        """What both paths do before a worker: ``prepare`` (a fallback answer if it fails),
        the cache (a cached answer), the inline ranking. ``(req, None)``: rank in a worker."""
        req = self._prepare_or_fallback(*args, **kwargs)
        if isinstance(req, dict):
            return req
        hit = self.cached(req)
        if hit is not None:
            return hit
        return req, self._inline(req)

    def _worker_failed(self, req: Request, exc: Exception) -> Served | None:
        """A worker's ranking that timed out (None: popular items for "timeout") or raised."""
        if isinstance(exc, TimeoutError):  # concurrent.futures' and asyncio's alike
            return None
        log.error("recommendation failed; serving popular items", exc_info=exc)
        return self.fallback(req, "error")

    def _finish_ranked(self, req: Request, served: Served | None) -> dict[str, Any]:
        return self.finish(req, self.fallback(req, "timeout") if served is None else served)

    def recommend(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """``prepare`` + cache + ranking under the time budget (blocking; gRPC, Python)."""
        first = self._without_worker(*args, **kwargs)
        if isinstance(first, dict):
            return first
        req, served = first
        if served is None:
            future = self.pool.submit(self._guarded, req, time.monotonic() + self.budget)
            try:
                served = future.result(timeout=self.budget)
            except Exception as exc:
                served = self._worker_failed(req, exc)
        return self._finish_ranked(req, served)

    async def recommend_async(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The same without blocking the event loop on the engine lock (HTTP)."""
        first = self._without_worker(*args, **kwargs)
        if isinstance(first, dict):
            return first
        req, served = first
        if served is None:
            deadline = time.monotonic() + self.budget
            future = asyncio.wrap_future(self.pool.submit(self._guarded, req, deadline))
            try:
                served = await asyncio.wait_for(future, self.budget)
            except Exception as exc:
                served = self._worker_failed(req, exc)
        return self._finish_ranked(req, served)

    def stats(self) -> dict[str, Any]:
        """Attribution, cache and fallback counters (merged into ``GET /v1/stats``)."""
        running = self.experiments.running()
        return {
            "catalogue_items": len(self.engine.catalogue),
            "catalogue_unavailable": self.engine.catalogue.unavailable,
            "user_profiles": len(self.engine.profiles),
            "feedback": self.feedback.stats(),
            "feedback_unattributed": self.feedback.unattributed,
            "cache": {
                "entries": len(self.cache),
                "hits": self.cache.hits,
                "misses": self.cache.misses,
            },
            "fallbacks": dict(self.fallbacks),
            "slow_rankings": self.slow,
            "experiment": None if running is None else running.id,
        }
