"""``freshrec loadtest``: a simulated shop's traffic against a running server, measured.

Two open-loop streams run together for ``seconds``:

- **recommendations**: ``rate`` requests per second, each for a shopper browsing right now in
  the simulated shop (``ShopSimulator``) with its device and country, ``k`` items. Request ``i``
  is *due* at ``start + i / rate``, and its latency runs from when it was due to the end of its
  answer: a server that falls behind is charged for the queue it builds (no coordinated
  omission). At most ``connections`` requests are in flight; a request still waiting for a
  connection counts as waiting.
- **events**: ``event_rate`` events per second in batches every ``TICK`` seconds to
  ``POST /v1/events``, the simulated shop's views, clicks, carts and purchases; a shopper who
  is shown recommendations may click one (``ShopSimulator.follow``), and the click carries the
  ``recommendation_id``, so attribution is exercised too.

The report gives, per stream, what was sent and answered, the answers by status, the achieved
rate and latency percentiles, plus what the server counted meanwhile (``/v1/stats``: events
processed, cache hits, fallbacks). The client runs in one asyncio loop; it needs CPU of its own,
so on a small machine it shares the cores with the server it measures.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from freshrec.sim import ShopSimulator

TICK = 0.1  # seconds between event batches


@dataclass
class Stream:
    """One stream's requests: latencies (ms, from when each was due) and answers by status."""

    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    sent: int = 0  # requests
    events: int = 0  # events in them (the event stream)

    def report(self, seconds: float) -> dict[str, Any]:
        ms = np.asarray(self.latencies)
        answered = int(ms.size)
        out: dict[str, Any] = {
            "sent": self.sent,
            "answered": answered,
            "per_second": round(answered / seconds, 1) if seconds > 0 else 0.0,
            "statuses": dict(sorted(self.statuses.items())),
        }
        if self.events:
            out["events"] = self.events
            out["events_per_second"] = round(self.events / seconds, 1) if seconds > 0 else 0.0
        if answered:
            p50, p95, p99 = np.percentile(ms, [50, 95, 99])
            out["ms"] = {
                "p50": round(float(p50), 2),
                "p95": round(float(p95), 2),
                "p99": round(float(p99), 2),
                "max": round(float(ms.max()), 2),
            }
        return out


class LoadTest:
    """Drive ``base_url`` with a simulated shop's traffic; ``run()`` returns the report."""

    def __init__(
        self,
        base_url: str,
        rate: float = 100.0,
        event_rate: float = 500.0,
        seconds: float = 30.0,
        connections: int = 16,
        k: int = 10,
        shoppers: int = 2000,
        items: int = 3000,
        seed: int = 0,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if rate < 0 or event_rate < 0 or rate + event_rate <= 0:
            raise ValueError("rate and event_rate must be >= 0, and one of them > 0")
        if seconds <= 0 or connections < 1 or k < 1:
            raise ValueError("seconds must be > 0, connections and k >= 1")
        self.base_url = base_url.rstrip("/")
        self.rate = rate
        self.event_rate = event_rate
        self.seconds = seconds
        self.connections = connections
        self.k = k
        self.timeout_seconds = timeout_seconds
        self.transport = transport
        self.shop = ShopSimulator(
            n_items=items,
            n_shoppers=shoppers,
            seed=seed,
            start_time=time.time(),
            mean_gap_seconds=1.0 / max(event_rate, 1.0),
            run_id=f"lt-{uuid.uuid4().hex[:8]}",
        )
        self.recommendations = Stream("recommendations")
        self.events = Stream("events")
        self._clicks: list[dict[str, Any]] = []  # follow-up clicks, sent with the next batch
        self.followed = 0

    def run(self) -> dict[str, Any]:
        return asyncio.run(self._run())

    async def _run(self) -> dict[str, Any]:
        limits = httpx.Limits(max_connections=self.connections + 2)
        async with httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.timeout_seconds,
            limits=limits,
            transport=self.transport,
        ) as client:
            before = await _stats(client)
            start = time.perf_counter()
            await asyncio.gather(
                self._recommend_stream(client, start), self._event_stream(client, start)
            )
            elapsed = time.perf_counter() - start
            after = await _stats(client)
        return {
            "url": self.base_url,
            "seconds": round(elapsed, 2),
            "target": {
                "recommendations_per_second": self.rate,
                "events_per_second": self.event_rate,
            },
            "recommendations": self.recommendations.report(elapsed),
            "events": self.events.report(elapsed),
            "clicks_on_recommendations": self.followed,
            "server": _delta(before, after),
        }

    # -- recommendations -----------------------------------------------------------------------
    async def _recommend_stream(self, client: httpx.AsyncClient, start: float) -> None:
        if self.rate <= 0:
            return
        total = int(self.rate * self.seconds)
        slots = asyncio.Semaphore(self.connections)
        tasks = []
        for i in range(total):
            due = start + i / self.rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            await slots.acquire()
            tasks.append(asyncio.create_task(self._recommend(client, due, slots)))
        await asyncio.gather(*tasks)

    async def _recommend(
        self, client: httpx.AsyncClient, due: float, slots: asyncio.Semaphore
    ) -> None:
        user = self.shop.browsing_shopper()
        params = {"user_id": user, "k": self.k, **self.shop.context_of(user)}
        self.recommendations.sent += 1
        try:
            r = await client.get("/v1/recommendations", params=params)
        except httpx.HTTPError as exc:
            self.recommendations.statuses[type(exc).__name__] += 1
            return
        finally:
            slots.release()
        self.recommendations.latencies.append((time.perf_counter() - due) * 1e3)
        self.recommendations.statuses[str(r.status_code)] += 1
        if r.status_code == 200:
            click = self.shop.follow(user, r.json())
            if click is not None:
                self._clicks.append(click)
                self.followed += 1

    # -- events --------------------------------------------------------------------------------
    async def _event_stream(self, client: httpx.AsyncClient, start: float) -> None:
        if self.event_rate <= 0:
            return
        ticks = int(self.seconds / TICK)
        owed = 0.0
        pending: list[asyncio.Task[None]] = []
        for t in range(ticks):
            due = start + t * TICK
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            owed += self.event_rate * TICK
            n, owed = int(owed), owed - int(owed)
            batch = self.shop.take(n) + self._clicks
            self._clicks = []
            if batch:
                pending.append(asyncio.create_task(self._post(client, batch, due)))
        await asyncio.gather(*pending)

    async def _post(
        self, client: httpx.AsyncClient, batch: list[dict[str, Any]], due: float
    ) -> None:
        self.events.sent += 1
        self.events.events += len(batch)
        try:
            r = await client.post("/v1/events", json={"events": batch})
        except httpx.HTTPError as exc:
            self.events.statuses[type(exc).__name__] += 1
            return
        self.events.latencies.append((time.perf_counter() - due) * 1e3)
        self.events.statuses[str(r.status_code)] += 1


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    try:
        r = await client.get("/v1/stats")
        return r.json() if r.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the server counted during the run (``/v1/stats`` after minus before)."""
    out: dict[str, Any] = {}
    for key in ("events_accepted", "events_processed", "events_duplicate", "events_rejected"):
        if isinstance(after.get(key), int) and isinstance(before.get(key), int):
            out[key] = after[key] - before[key]
    cache_a, cache_b = after.get("cache") or {}, before.get("cache") or {}
    for key in ("hits", "misses"):
        if key in cache_a:
            out[f"cache_{key}"] = cache_a[key] - cache_b.get(key, 0)
    falls_a, falls_b = after.get("fallbacks") or {}, before.get("fallbacks") or {}
    out["fallbacks"] = {
        k: v - falls_b.get(k, 0) for k, v in falls_a.items() if v - falls_b.get(k, 0)
    }
    if "processor_lag" in after:
        out["processor_lag_at_end"] = after["processor_lag"]
    return out
