"""Embedded freshness: an event POSTed to the server, its effect in that shopper's recommendations.

Budget (DESIGN §4): p99 <= 50 ms from the acknowledgement (the 202) to the effect, embedded.

Method: the on-disk engine of ``bench.recommend_http`` (1M synthetic events, 100k users, 10k
items, a catalogue of every item) served by the real server (``freshrec serve``, default
settings: micro-batches of up to 5,000 events, snapshots every 60 s). Before the server
starts, the engine learns 40 item pairs ("x_k then y_k" sessions of 20 shoppers each) and that
version is promoted. A trial: a new shopper's view of ``x_k`` is
POSTed; the clock starts when the server answers 202 and stops when ``GET /v1/recommendations``
for that shopper first lists ``y_k`` *because you viewed x_k* (polled back to back over a
keep-alive connection).

Two phases:

- **idle**: trials one after another, nothing else sent;
- **loaded** (the headline): for ``--seconds`` (75, longer than the 60 s between snapshots, so
  the window holds at least one), a background client POSTs ``--rate`` (2,000) events/s (the
  data dir's synthetic workload again, with new event ids) in batches every 50 ms, while a
  trial starts every 200 ms, each on its own schedule and connection (a trial waiting out a
  stall does not hold back the next). Trials are spread evenly in time, so the share of them
  that meet a snapshot, a model version's gate or a long micro-batch is the share of time
  those take, as for a real shopper.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import busy_note, load_average, log, machine, make_result, parser, report
from bench.ingest_http import HOST, free_port, stop_server, wait_healthy
from bench.recommend import percentiles
from bench.recommend_http import _serve, _wait_ready, build_data_dir
from bench.synthetic import Workload, event_dicts, generate
from freshrec import Engine

PAIRS = 40
TICK = 0.05  # seconds between background batches
TRIAL_EVERY = 0.2  # seconds between the starts of loaded trials


def _train(data: Path) -> int:
    """Teach the engine in ``data`` the trials' item pairs and promote that version, so a
    later version's gate that rejects it, or a rollback, keeps them (the trials measure the
    freshness of a shopper's own event, not which version serves)."""
    then = time.time() - 60.0  # before any trial's event (a drift detection dates from here)
    train = [
        {"type": "view", "user_id": f"t{k}-{n}", "item_id": item, "timestamp": then + s}
        for k in range(PAIRS)
        for n in range(20)
        for s, item in enumerate((f"x{k}", f"y{k}"))
    ]
    with Engine.open(data) as engine:
        engine.ingest(train)
        engine.process()
        engine.processor.snapshot()
        engine.promote(engine.versions()[0]["version"])
    return len(train)


def _trial(http: httpx.Client, base: str, name: str, k: int) -> float:
    """Seconds from the 202 of a new shopper's view of ``x_k`` to ``y_k`` shown for it."""
    user = f"fresh-{name}"
    event = {"type": "view", "user_id": user, "item_id": f"x{k}"}
    http.post(f"{base}/v1/events", json=event).raise_for_status()
    t0 = time.perf_counter()
    while True:
        items = http.get(f"{base}/v1/recommendations", params={"user_id": user, "k": 3}).json()[
            "items"
        ]
        if any(i["item_id"] == f"y{k}" and i["reason"].get("item_id") == f"x{k}" for i in items):
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > 10:
            raise RuntimeError(f"trial {name}: effect not visible after 10 s")


def _loaded_trials(base: str, start: float, seconds: float) -> list[float]:
    """A trial every ``TRIAL_EVERY`` seconds, each on its own schedule and connection: one
    waiting out a stall (a snapshot) does not hold back the next, which starts on time and
    waits too -- as real shoppers would (no coordinated omission)."""
    local = threading.local()

    def trial(t: int) -> float:
        if not hasattr(local, "http"):
            local.http = httpx.Client(timeout=10.0)
        return _trial(local.http, base, f"load-{t}", t % PAIRS)

    futures = []
    with ThreadPoolExecutor(max_workers=64) as pool:
        t = 0
        while time.perf_counter() - start < seconds:
            if (wait := start + t * TRIAL_EVERY - time.perf_counter()) > 0:
                time.sleep(wait)
            futures.append(pool.submit(trial, t))
            t += 1
        return [f.result() for f in futures]


class Background(threading.Thread):
    """POSTs ``rate`` events/s, a batch every ``TICK`` seconds: the data dir's own synthetic
    workload again (same seed, so the same shoppers, items and habits; new event ids), so the
    models see more of the same traffic. (Uniformly random views would look like a change of
    tastes: the drift detectors and the lifecycle's automatic rollback would act on them, and
    the rollback took the trials' item pairs away.)"""

    def __init__(self, base: str, rate: float, workload: Workload, snapshots: Path) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.snapshots = snapshots
        self.seen: set[str] = set()  # snapshot folders seen during the run
        self.per_tick = max(1, round(rate * TICK))
        self.workload = workload
        self.stop = threading.Event()
        self.sent = 0
        self.late_ticks = 0  # ticks the client could not keep up with

    def run(self) -> None:
        with httpx.Client(timeout=30.0) as http:
            due = time.perf_counter()
            while not self.stop.is_set():
                start = self.sent % len(self.workload)
                events = event_dicts(self.workload, start, start + self.per_tick)
                http.post(f"{self.base}/v1/events", json={"events": events}).raise_for_status()
                self.sent += len(events)
                self.seen.update(p.name for p in self.snapshots.iterdir())
                due += TICK
                wait = due - time.perf_counter()
                if wait > 0:
                    self.stop.wait(wait)
                else:
                    self.late_ticks += 1


def _summary(seconds: list[float]) -> dict[str, float]:
    found = percentiles(np.asarray(seconds) * 1e3)
    return {"trials": found.pop("calls"), **found}


def run(
    quick: bool = False,
    seed: int = 42,
    seconds: float | None = None,
    rate: float = 2000.0,
    trials: int | None = None,
):  # type: ignore[no-untyped-def]
    sizes = (200_000, 20_000, 5_000) if quick else (1_000_000, 100_000, 10_000)
    seconds = seconds or (15.0 if quick else 75.0)
    trials = trials or (50 if quick else 300)
    n_events, n_users, n_items = sizes
    tmp = Path(tempfile.mkdtemp(prefix="freshrec-bench-fresh-"))
    info = build_data_dir(tmp / "data", n_events, n_users, n_items, seed)
    log(f"data dir built in {info['build_seconds']} s: {info['users']:,} users, {n_items:,} items")
    trained = _train(tmp / "data")
    port = free_port()
    proc = _serve(tmp / "data", port, tmp / "server.log")
    base = f"http://{HOST}:{port}"
    try:
        wait_healthy(proc, port, timeout=120.0)
        _wait_ready(port)
        with httpx.Client(timeout=10.0) as http:
            load = load_average()
            idle = [_trial(http, base, f"idle-{t}", t % PAIRS) for t in range(trials)]
            log(f"idle: {_summary(idle)}")
            snapdir = tmp / "data" / "snapshots"
            before = {p.name for p in snapdir.iterdir()}
            again = generate(n_events, n_users, n_items, seed=seed, id_prefix="live-")
            background = Background(base, rate, again, snapdir)
            background.start()
            start = time.perf_counter()
            loaded = _loaded_trials(base, start, seconds)
            elapsed = time.perf_counter() - start
            background.stop.set()
            background.join()
            stats: dict[str, Any] = http.get(f"{base}/v1/stats").json()
    finally:
        code = stop_server(proc)
    snapshots = len(background.seen - before)
    shutil.rmtree(tmp, ignore_errors=True)
    idle_ms, loaded_ms = _summary(idle), _summary(loaded)
    details = {
        "idle_ms": idle_ms,
        "loaded_ms": loaded_ms,
        "background_rate_target": rate,
        "background_events_per_second": round(background.sent / elapsed, 1),
        "background_late_ticks": background.late_ticks,
        "loaded_seconds": round(elapsed, 1),
        "trained_events": trained,
        "snapshots_during_loaded_phase": snapshots,
        "events_processed": stats.get("events_processed"),
        "server_exit_code": code,
        "load_average_at_start": load,
        **info,
        "machine": machine(),
    }
    headline = (
        f"p99 {loaded_ms['p99']:.1f} ms under {background.sent / elapsed:,.0f} events/s "
        f"(p50 {loaded_ms['p50']:.1f}, max {loaded_ms['max']:.1f}, {loaded_ms['trials']} trials "
        f"over {elapsed:.0f} s, {snapshots} snapshot(s)); idle p99 {idle_ms['p99']:.1f} ms "
        f"(p50 {idle_ms['p50']:.1f}, {idle_ms['trials']} trials); {n_items:,} items"
        f"{busy_note(load)}"
    )
    return make_result("freshness", loaded_ms["p99"], headline, quick, details)


def main(argv: list[str] | None = None) -> int:
    p = parser("Embedded freshness: a POSTed event's effect in that shopper's recommendations.")
    p.add_argument("--seconds", type=float, default=None, help="loaded phase length")
    p.add_argument("--rate", type=float, default=2000.0, help="background events/s")
    p.add_argument("--trials", type=int, default=None, help="idle trials")
    args = p.parse_args(argv)
    return report(run(args.quick, args.seed, args.seconds, args.rate, args.trials), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
