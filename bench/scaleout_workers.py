"""Scale-out workers: events/s of 2 workers against 1, on the same pre-filled log.

Budget (issue 4): 2 workers >= 1.7 x the events/s of 1 worker (this machine has 2 cores,
shared with Redis).

Method: for each run a fresh deployment (own key prefix, 4 partitions) is filled with the same
synthetic events (batches of 500 appended straight to the Redis log, as replicas would), then
the workers start: one with ``--partitions 0,1,2,3``, or two with ``0,1`` and ``2,3`` (fixed
shares, so no hand-over during the run). The rate is measured between 10 % and 90 % of the
events processed (worker start-up -- engines built, numba cache loaded -- is excluded), from
the processed counts the workers write to Redis with their effects. Workers do everything they
do in production: state, every model, live quality, user records, serving publications every
second, full snapshots every 10 s. 1M events by default: with 300k, two workers finish in under
two seconds and the once-a-second publications weigh on a window that short (x1.3-2.7 between
runs); CPU per event of workers and Redis is reported (the machine's load changes it little),
with the ratio two cores allow at most given one worker's costs.
"""

from __future__ import annotations

import time

from bench import busy_note, load_average, log, machine, make_result, parser, report
from bench.ingest_http import cpu_seconds
from bench.redis_deploy import REDIS_URL, Deployment
from bench.synthetic import generate, logged_events
from freshrec.log import RedisLog


def measure(events: list, shares: list[str]) -> dict:  # type: ignore[type-arg]
    deploy = Deployment(worker_read_chunks="64", archive="false")
    try:
        log_ = RedisLog(REDIS_URL, 4, deploy.prefix)
        for start in range(0, len(events), 500):
            log_.append(events[start : start + 500])
        log_.close()
        total = len(events)
        workers = [deploy.worker(f"worker{n}", share) for n, share in enumerate(shares)]
        deploy.wait(lambda: deploy.processed() >= total * 0.1, 300, "10 % processed")
        t0, p0 = time.monotonic(), deploy.processed()
        w0, r0 = [cpu_seconds(w.pid) for w in workers], redis_cpu(deploy)
        deploy.wait(lambda: deploy.processed() >= total * 0.9, 600, "90 % processed")
        t1, p1 = time.monotonic(), deploy.processed()
        w1, r1 = [cpu_seconds(w.pid) for w in workers], redis_cpu(deploy)
        deploy.wait(lambda: deploy.processed() >= total, 300, "all processed")
    finally:
        deploy.close()
    done, elapsed = p1 - p0, t1 - t0
    worker_cpu = sum(b - a for a, b in zip(w0, w1, strict=True))
    return {
        "workers": len(shares),
        "events_per_second": round(done / elapsed),
        # CPU per event is what the machine's load does not change much: it bounds the ratio
        "worker_cpu_us_per_event": round(worker_cpu / done * 1e6, 2),
        "redis_cpu_us_per_event": round((r1 - r0) / done * 1e6, 2),
        "worker_cores": [round((b - a) / elapsed, 2) for a, b in zip(w0, w1, strict=True)],
        "redis_cores": round((r1 - r0) / elapsed, 2),
    }


def redis_cpu(deploy: Deployment) -> float:
    """CPU seconds the Redis server has used (all its threads)."""
    info = deploy.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run(quick: bool = False, seed: int = 42, events: int | None = None):  # type: ignore[no-untyped-def]
    n = events or (40_000 if quick else 1_000_000)
    workload = generate(n, 20_000 if quick else 100_000, 10_000, seed=seed)
    evs = logged_events(workload)
    load = load_average()
    one = measure(evs, ["0,1,2,3"])
    log(f"1 worker: {one['events_per_second']:,} events/s")
    two = measure(evs, ["0,1", "2,3"])
    log(f"2 workers: {two['events_per_second']:,} events/s")
    speedup = two["events_per_second"] / one["events_per_second"]
    # two workers and Redis share 2 cores: the best the machine allows, from one worker's costs
    per_event = one["worker_cpu_us_per_event"] + one["redis_cpu_us_per_event"]
    ceiling = min(2.0, 2e6 / per_event / one["events_per_second"]) if per_event else None
    details = {
        "events": n,
        "one_worker": one,
        "two_workers": two,
        "speedup": round(speedup, 2),
        "two_core_ceiling": None if ceiling is None else round(ceiling, 2),
        "load_average_at_start": load,
        "machine": machine(),
    }
    headline = (
        f"x{speedup:.2f} ({one['events_per_second']:,} events/s with 1 worker, "
        f"{two['events_per_second']:,} with 2; {n:,} events; per event: worker "
        f"{one['worker_cpu_us_per_event']} us + Redis {one['redis_cpu_us_per_event']} us CPU, "
        f"so 2 cores allow at most x{ceiling or 0:.2f}){busy_note(load)}"
    )
    return make_result("scaleout_workers", speedup, headline, quick, details)


def main(argv: list[str] | None = None) -> int:
    p = parser("1 vs 2 freshrec workers on the same Redis log.")
    p.add_argument("--events", type=int, default=None)
    args = p.parse_args(argv)
    return report(run(args.quick, args.seed, args.events), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
