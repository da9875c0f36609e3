"""A cached recommendation, in-process: ``RecommendService.recommend`` answered from the cache.

Budget (issue 6): a cache hit <= 1 ms in-process.

Method: an in-memory engine that processed synthetic events (``bench.recommend.build_engine``)
behind the service HTTP and gRPC share (``freshrec.serving.service``: context enrichment, A/B
arm, cache lookup against the user's version, a fresh ``recommendation_id``, attribution
bookkeeping). 2,000 users (10 % unknown) are asked once each with filters and a context (cache
misses, timed too), then the same requests are repeated 10 times in random order (cache hits).
Reported: p50 / p95 / p99 / max of the hits, and of the misses for comparison.
"""

from __future__ import annotations

import gc
import time

import numpy as np

from bench import Result, busy_note, load_average, log, machine, make_result, parser, report
from bench.recommend import build_engine, percentiles
from freshrec.serving.service import RecommendService

USERS = 2_000
REPEATS = 10


def run(quick: bool = False, seed: int = 42) -> Result:
    n_events, n_users, n_items = (
        (300_000, 20_000, 20_000) if quick else (1_000_000, 100_000, 100_000)
    )
    engine, info = build_engine(n_events, n_users, n_items, seed)
    service = RecommendService(engine)
    try:
        rng = np.random.default_rng(seed + 3)
        known = rng.choice(n_users, USERS, replace=False)
        users = [f"new-{n}" if rng.random() < 0.1 else f"u{known[n]}" for n in range(USERS)]
        filters = engine.default_filters(max_per_category=3, exclude_viewed=True)
        context = {"device": "mobile", "country": "DE", "tz_offset_minutes": 60}
        clock = time.perf_counter_ns
        miss = np.zeros(USERS)
        for n, user in enumerate(users):
            t = clock()
            body = service.recommend(user, 10, filters, context)
            miss[n] = clock() - t
        order = rng.permutation(np.tile(np.arange(USERS), REPEATS))
        gc.collect()
        load = load_average()
        hit = np.zeros(order.shape[0])
        cached = 0
        for n, u in enumerate(order.tolist()):
            t = clock()
            body = service.recommend(users[u], 10, filters, context)
            hit[n] = clock() - t
            cached += body["cached"]
    finally:
        service.close()
        engine.close()
    hits, misses = percentiles(hit / 1e6), percentiles(miss / 1e6)
    log(f"{cached:,} of {order.shape[0]:,} repeated requests were cache hits")
    details = {
        "ms_hits": hits,
        "ms_misses": misses,
        "hits": cached,
        "repeated_requests": int(order.shape[0]),
        "load_average_at_start": load,
        **info,
        "machine": machine(),
    }
    headline = (
        f"p99 {hits['p99']:.3f} ms (p50 {hits['p50']:.3f}, max {hits['max']:.2f}; "
        f"{cached:,} hits; a miss: p50 {misses['p50']:.2f}, p99 {misses['p99']:.2f} ms)"
        f"{busy_note(load)}"
    )
    return make_result("cache_hit", hits["p99"], headline, quick, details)


def main(argv: list[str] | None = None) -> int:
    args = parser("A cache hit of RecommendService.recommend, in-process.").parse_args(argv)
    return report(run(args.quick, args.seed), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
