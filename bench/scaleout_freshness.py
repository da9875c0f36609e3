"""Scale-out freshness: an event POSTed to replica A, its effect seen on replica B.

Budget (DESIGN §4, issue 4): p99 <= 200 ms.

Method: a deployment with 2 replicas and 2 workers (own key prefix, 4 partitions) learns 40
item pairs ("x_k then y_k" sessions of 20 shoppers each) and publishes its models. Then, one
trial at a time, a new shopper's view of ``x_k`` is POSTed to A; the clock starts when A
answers 202 (acknowledged) and stops when B's ``/v1/recommendations`` for that shopper first
lists ``y_k`` *because you viewed x_k* (polled back to back over a keep-alive connection). The
effect is only visible once a worker has processed the event and written the shopper's state.
The workers' own figure, the ``freshrec_freshness_seconds`` histogram on ``/metrics``, is
reported next to it.
"""

from __future__ import annotations

import time

import httpx
import numpy as np

from bench import busy_note, load_average, log, machine, make_result, parser, report
from bench.ingest_http import HOST
from bench.redis_deploy import Deployment

PAIRS = 40


def run(quick: bool = False, seed: int = 42, trials: int | None = None):  # type: ignore[no-untyped-def]
    trials = trials or (50 if quick else 300)
    deploy = Deployment()  # default settings: publications every 1 s, polled every 0.25 s
    try:
        _, port_a = deploy.replica("a")
        _, port_b = deploy.replica("b")
        deploy.worker("w0")
        deploy.worker("w1")
        deploy.wait(lambda: len(deploy.owners()) == 2, 120, "two workers owning partitions")
        a, b = f"http://{HOST}:{port_a}", f"http://{HOST}:{port_b}"
        now = time.time()
        train = [
            {"type": "view", "user_id": f"t{k}-{n}", "item_id": item, "timestamp": now + s}
            for k in range(PAIRS)
            for n in range(20)
            for s, item in enumerate((f"x{k}", f"y{k}"))
        ]
        with httpx.Client(timeout=10.0) as http:
            http.post(f"{a}/v1/events", json={"events": train}).raise_for_status()
            deploy.wait(lambda: deploy.processed() >= len(train), 60, "training processed")
            time.sleep(3.0)  # models published and picked up by B
            load = load_average()
            seen: list[float] = []
            for t in range(trials):
                k = t % PAIRS
                user = f"fresh-{t}"
                event = {"type": "view", "user_id": user, "item_id": f"x{k}"}
                http.post(f"{a}/v1/events", json=event).raise_for_status()
                t0 = time.perf_counter()
                while True:
                    items = http.get(
                        f"{b}/v1/recommendations", params={"user_id": user, "k": 3}
                    ).json()["items"]
                    if any(
                        i["item_id"] == f"y{k}" and i["reason"].get("item_id") == f"x{k}"
                        for i in items
                    ):
                        seen.append(time.perf_counter() - t0)
                        break
                    if time.perf_counter() - t0 > 10:
                        raise RuntimeError(f"trial {t}: effect not visible on B after 10 s")
            metrics = http.get(f"{b}/metrics").text
    finally:
        deploy.close()
    ms = np.asarray(seen) * 1e3
    p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
    hist = [line for line in metrics.splitlines() if line.startswith("freshrec_freshness")]
    details = {
        "trials": trials,
        "ms": {"p50": round(p50, 1), "p99": round(p99, 1), "max": round(float(ms.max()), 1)},
        "worker_histogram": hist,
        "load_average_at_start": load,
        "machine": machine(),
    }
    log(f"freshness p50 {p50:.1f} ms, p99 {p99:.1f} ms over {trials} trials")
    headline = (
        f"{p99:.1f} ms p99 A->B (p50 {p50:.1f} ms, max {ms.max():.1f} ms, {trials} trials, "
        f"2 replicas + 2 workers){busy_note(load)}"
    )
    return make_result("scaleout_freshness", p99, headline, quick, details)


def main(argv: list[str] | None = None) -> int:
    p = parser("Freshness from a POST on replica A to the effect on replica B.")
    p.add_argument("--trials", type=int, default=None)
    args = p.parse_args(argv)
    return report(run(args.quick, args.seed, args.trials), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
