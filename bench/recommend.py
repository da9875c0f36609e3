"""In-process recommendation latency: ``Engine.recommend(user, k=10)``.

Budget (DESIGN §4): p99 <= 2 ms with 100k items and 100k users of history.

Method: build an in-memory engine whose log holds a few million synthetic events in which every
one of 100k users and 100k items appears (appended straight to the log in chunks of 500, then
``engine.process()``), warm up, then time 20,000 calls of ``engine.recommend(user, k=10)`` one
by one with ``time.perf_counter_ns``: 90 % for random known users, 10 % for unknown users (cold
start). The garbage collector stays on, as in a server. Reported: p50 / p95 / p99 / max in ms,
overall and per kind of user.
"""

from __future__ import annotations

import gc
import time

import numpy as np

from bench import Result, busy_note, load_average, log, machine, make_result, parser, report
from bench.synthetic import generate, logged_events, summary
from freshrec import Engine

CHUNK = 500
UNKNOWN_SHARE = 0.10
MAX_SECONDS = 180.0  # the timed loop stops here even if calls remain


def build_engine(n_events: int, n_users: int, n_items: int, seed: int) -> tuple[Engine, dict]:
    """An in-memory engine that has processed ``n_events`` synthetic events."""
    workload = generate(n_events, n_users, n_items, seed=seed)
    engine = Engine.open()
    t = time.perf_counter()
    step = 100_000
    for s in range(0, n_events, step):
        events = logged_events(workload, s, s + step)
        for c in range(0, len(events), CHUNK):
            engine.log.append(events[c : c + CHUNK])
    fill_s = time.perf_counter() - t
    t = time.perf_counter()
    processed = engine.process()
    process_s = time.perf_counter() - t
    info = {
        "workload": summary(workload),
        "log_fill_seconds": round(fill_s, 2),
        "process_seconds": round(process_s, 2),
        "events_processed": processed,
    }
    return engine, info


def percentiles(ms: np.ndarray) -> dict[str, float]:
    if ms.size == 0:
        return {}
    return {
        "p50": round(float(np.percentile(ms, 50)), 4),
        "p95": round(float(np.percentile(ms, 95)), 4),
        "p99": round(float(np.percentile(ms, 99)), 4),
        "max": round(float(ms.max()), 4),
        "mean": round(float(ms.mean()), 4),
        "calls": int(ms.size),
    }


class GcPauses:
    """Garbage-collector pauses while installed (a gen-2 pass inside a call shows in its p99)."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.max_ms = 0.0
        self._t = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter()
            return
        dt = time.perf_counter() - self._t
        g = info["generation"]
        self.count[g] += 1
        self.seconds[g] += dt
        self.max_ms = max(self.max_ms, dt * 1e3)

    def summary(self) -> dict[str, object]:
        return {
            "collections_by_generation": self.count,
            "ms_by_generation": [round(x * 1e3, 2) for x in self.seconds],
            "max_pause_ms": round(self.max_ms, 2),
        }


def time_calls(engine: Engine, users: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall and thread-CPU time of each call in ms (stops early after ``MAX_SECONDS``).

    CPU time far below wall time in the tail means the call was preempted (a busy machine),
    not slow code.
    """
    wall = np.zeros(len(users))
    cpu = np.zeros(len(users))
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    deadline = time.monotonic() + MAX_SECONDS
    n = 0
    for n, user in enumerate(users):
        c = cpu_clock()
        t = clock()
        engine.recommend(user, k=k)
        wall[n] = clock() - t
        cpu[n] = cpu_clock() - c
        if n % 1000 == 0 and time.monotonic() > deadline:
            break
    return wall[: n + 1] / 1e6, cpu[: n + 1] / 1e6


def run(quick: bool = False, seed: int = 42, calls: int | None = None, k: int = 10) -> Result:
    n_events, n_users, n_items = (
        (300_000, 20_000, 20_000) if quick else (2_000_000, 100_000, 100_000)
    )
    calls = calls or (5_000 if quick else 20_000)
    engine, info = build_engine(n_events, n_users, n_items, seed)
    try:
        stats = engine.stats()
        log(
            f"engine built: {stats['users']:,} users, {stats['items']:,} items, "
            f"{info['events_processed']:,} events processed in {info['process_seconds']:.1f} s"
        )
        rng = np.random.default_rng(seed + 7)
        unknown = rng.random(calls) < UNKNOWN_SHARE
        known_ids = rng.integers(0, n_users, size=calls)
        users = [
            f"new-user-{i}" if u else f"u{x}"
            for i, (u, x) in enumerate(zip(unknown.tolist(), known_ids.tolist(), strict=True))
        ]
        warm = [f"u{x}" for x in rng.integers(0, n_users, size=min(1_000, calls))]
        time_calls(engine, [*warm, "new-user-warm"], k)
        gc.collect()
        load = load_average()
        pauses = GcPauses()
        gc.callbacks.append(pauses)
        try:
            ms, cpu_ms = time_calls(engine, users, k)
        finally:
            gc.callbacks.remove(pauses)
        sample = engine.recommend(users[int(np.flatnonzero(~unknown)[0])], k=k)
        history = np.minimum(engine.state.rec_count[: stats["users"]], engine.state.recent_items)
    finally:
        engine.close()
    kinds = unknown[: ms.size]
    overall = percentiles(ms)
    details = {
        "ms": overall,
        "ms_known_users": percentiles(ms[~kinds]),
        "ms_unknown_users": percentiles(ms[kinds]),
        "thread_cpu_ms": percentiles(cpu_ms),
        "gc_during_timed_calls": pauses.summary(),
        "k": k,
        "calls": int(ms.size),
        "unknown_share": UNKNOWN_SHARE,
        "load_average_at_start": load,
        "users": stats["users"],
        "items": stats["items"],
        "recent_items_per_user_mean": round(float(history.mean()), 2),
        "sample_reasons": sorted({r.reason["type"] for r in sample}),
        **info,
        "machine": machine(),
    }
    headline = (
        f"p99 {overall['p99']:.3f} ms (p50 {overall['p50']:.3f}, p95 {overall['p95']:.3f}, "
        f"max {overall['max']:.2f}; {ms.size:,} calls, {stats['users']:,} users x "
        f"{stats['items']:,} items){busy_note(load)}"
    )
    return make_result("recommend", overall["p99"], headline, quick, details)


def main(argv: list[str] | None = None) -> int:
    p = parser("Engine.recommend latency with 100k users x 100k items of history.")
    p.add_argument("--calls", type=int, default=None, help="timed calls (default 20,000)")
    p.add_argument("--k", type=int, default=10, help="items per recommendation")
    args = p.parse_args(argv)
    return report(run(args.quick, args.seed, args.calls, args.k), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
