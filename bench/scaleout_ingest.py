"""Scale-out ingest: ``POST /v1/events`` (batches of 500) into Redis, one API process.

Budget (issue 4): >= 30,000 events/s per API process into Redis.

Method: one ``freshrec serve --redis-url`` replica (key prefix of its own on the local Redis,
4 partitions) as a subprocess, no worker running (so the 2 cores are shared by the replica, the
client and Redis only). Bodies of 500 synthetic events are pre-encoded and sent over 3
keep-alive connections with the raw client of ``bench.ingest_http``; 40 warm-up batches are not
counted; then 10 s. The figure is the sum of the responses' ``accepted`` over the window; the
log's length in Redis must equal what clients were acknowledged.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from bench import busy_note, load_average, log, machine, make_result, parser, report
from bench.ingest_http import BATCH, cpu_seconds, send
from bench.redis_deploy import Deployment
from bench.synthetic import generate, json_batches


def run(quick: bool = False, seed: int = 42, seconds: float | None = None, connections: int = 3):  # type: ignore[no-untyped-def]
    seconds = seconds or (3.0 if quick else 10.0)
    warm_batches = 10 if quick else 40
    n_bodies = warm_batches + int(100_000 * seconds / BATCH) + 1
    workload = generate(n_bodies * BATCH, 20_000 if quick else 100_000, 10_000, seed=seed)
    bodies = json_batches(workload, BATCH)
    log(f"pre-encoded {len(bodies):,} bodies of {BATCH} events")
    deploy = Deployment()
    try:
        proc, port = deploy.replica()
        stream = iter(bodies)
        warm, _ = asyncio.run(
            send(port, iter([next(stream) for _ in range(warm_batches)]), 30.0, connections)
        )
        load = load_average()
        cpu0 = cpu_seconds(proc.pid)
        redis_info0 = deploy.redis.info("cpu")
        tally, elapsed = asyncio.run(send(port, stream, seconds, connections))
        server_cpu = cpu_seconds(proc.pid) - cpu0
        redis_info1 = deploy.redis.info("cpu")
        accepted_in_redis = deploy.accepted()
    finally:
        deploy.close()
    rate = tally.accepted / elapsed
    lat = np.asarray(tally.latencies or [0.0]) * 1e3
    redis_cpu = (
        redis_info1["used_cpu_sys"]
        + redis_info1["used_cpu_user"]
        - redis_info0["used_cpu_sys"]
        - redis_info0["used_cpu_user"]
    )
    details = {
        "accepted": tally.accepted,
        "requests": tally.requests,
        "failed_requests": tally.failures,
        "seconds": round(elapsed, 3),
        "events_per_second": round(rate),
        "request_ms": {
            "p50": round(float(np.percentile(lat, 50)), 2),
            "p99": round(float(np.percentile(lat, 99)), 2),
        },
        "api_cpu_cores": round(server_cpu / elapsed, 2),
        "redis_cpu_cores": round(redis_cpu / elapsed, 2),
        "log_matches_acknowledged": accepted_in_redis == warm.accepted + tally.accepted,
        "load_average_at_start": load,
        "machine": machine(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    headline = (
        f"{rate:,.0f} events/s into Redis ({tally.requests:,} x {BATCH}-event POSTs, "
        f"request p99 {details['request_ms']['p99']} ms, API {details['api_cpu_cores']} cores, "
        f"Redis {details['redis_cpu_cores']} cores"
        f"{'' if details['log_matches_acknowledged'] else ', LOG MISMATCH'}){busy_note(load)}"
    )
    return make_result("scaleout_ingest", rate, headline, quick, details)


def main(argv: list[str] | None = None) -> int:
    p = parser("Ingest into Redis through one freshrec serve --redis-url replica.")
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--connections", type=int, default=3)
    args = p.parse_args(argv)
    return report(run(args.quick, args.seed, args.seconds, args.connections), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
