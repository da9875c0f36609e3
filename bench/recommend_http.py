"""Recommendations over HTTP: latency at a fixed rate (100k items) and throughput (10k items).

Budgets (DESIGN §4 and issue 6): ``GET /v1/recommendations`` p99 <= 10 ms at 500 req/s with
filters and explanations on, one process, a 100k-item catalogue; >= 2,000 req/s with a
10k-item catalogue.

Method: an on-disk engine is built in this process -- synthetic events appended to its log and
processed (``bench.synthetic``: every user and item appears), a catalogue of every item upserted
(200 categories, prices 1-500, 2 % unavailable), then closed (snapshot) -- and the real server
(``freshrec serve``) is started on that data directory as a subprocess. Requests are
pre-encoded: 90 % known users, 10 % unknown (cold start); each carries filters (``category`` on
30 %, a price range on 30 %, ``exclude_viewed`` on 20 %, ``max_per_category=2`` on half) and a
device/country context; explanations are always on. Every request is for a different
``(user, filters, context)`` than the previous few thousand, so nearly all are cache misses (the
hit rate is reported). The client is a minimal raw HTTP/1.1 client over keep-alive connections in
one asyncio loop.

- **latency** (``recommend_http``): open loop at ``--rate`` (500) requests/s for ``--seconds``
  (20): request i is due at ``start + i / rate``; its latency runs from when it was *due* to the
  end of its response, so a server that falls behind is charged for the queue (no coordinated
  omission). 32 connections.
- **throughput** (``recommend_http_throughput``): closed loop, ``--connections`` (16)
  connections each sending its next request as soon as the previous answer arrives, for
  ``--seconds`` (10); the figure is responses/s.

Both report the status codes seen, the server's fallbacks (``/v1/stats``) and the CPU time of
server and client (they share the machine's cores).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import Result, busy_note, load_average, log, machine, make_result, parser, report
from bench.ingest_http import (
    HOST,
    _read_response,
    cpu_seconds,
    free_port,
    get_json,
    server_command,
    stop_server,
    wait_healthy,
)
from bench.recommend import percentiles
from bench.synthetic import generate, logged_events, summary
from freshrec import Engine
from freshrec.state.catalogue import Item

CHUNK = 500
CATEGORIES = 200


def build_data_dir(
    path: Path, n_events: int, n_users: int, n_items: int, seed: int
) -> dict[str, Any]:
    """An on-disk engine with ``n_events`` processed and a catalogue of every item."""
    workload = generate(n_events, n_users, n_items, seed=seed)
    t = time.perf_counter()
    engine = Engine.open(path)
    try:
        for s in range(0, n_events, 100_000):
            events = logged_events(workload, s, s + 100_000)
            for c in range(0, len(events), CHUNK):
                engine.log.append(events[c : c + CHUNK])
        engine.process()
        rng = np.random.default_rng(seed + 1)
        cats = rng.integers(0, CATEGORIES, n_items)
        prices = np.round(rng.uniform(1, 500, n_items), 2)
        hidden = rng.random(n_items) < 0.02
        items = [
            Item(
                f"i{i}",
                category=f"c{cats[i]}",
                price=float(prices[i]),
                brand=f"b{i % 50}",
                available=not hidden[i],
            )
            for i in range(n_items)
        ]
        with engine.lock:
            engine.catalogue.upsert(items)
        stats = engine.stats()
    finally:
        engine.close()
    return {
        "workload": summary(workload),
        "build_seconds": round(time.perf_counter() - t, 1),
        "users": stats["users"],
        "items": stats["items"],
        "catalogue_items": n_items,
        "unavailable": int(hidden.sum()),
    }


def request_lines(n: int, n_users: int, seed: int) -> list[bytes]:
    """``n`` pre-encoded GET requests with filters and context (see the module docstring)."""
    rng = np.random.default_rng(seed + 2)
    devices = ["mobile", "desktop", "tablet"]
    countries = ["DE", "FR", "GB", "US", "ES", "IT"]
    out = []
    for i in range(n):
        user = f"new-{i}" if rng.random() < 0.10 else f"u{rng.integers(n_users)}"
        q = [f"user_id={user}", "k=10"]
        q.append(f"device={devices[i % 3]}&country={countries[i % 6]}")
        if rng.random() < 0.30:
            q.append(f"category=c{rng.integers(CATEGORIES)}")
        if rng.random() < 0.30:
            lo = int(rng.integers(1, 300))
            q.append(f"min_price={lo}&max_price={lo + 150}")
        if rng.random() < 0.20:
            q.append("exclude_viewed=true")
        if rng.random() < 0.50:
            q.append("max_per_category=2")
        line = f"GET /v1/recommendations?{'&'.join(q)} HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
        out.append(line.encode())
    return out


async def _read(reader: asyncio.StreamReader) -> int:
    """The status of the next response (its body read and dropped)."""
    status, _ = await _read_response(reader)
    return status


async def open_loop(
    port: int, requests: list[bytes], rate: float, connections: int
) -> tuple[np.ndarray, dict[int, int], float]:
    """Send request i at ``start + i / rate``; latency from when it was due (ms)."""
    latencies = np.full(len(requests), np.nan)
    statuses: dict[int, int] = {}
    next_index = [0]
    start = time.perf_counter() + 0.1

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while True:
                i = next_index[0]
                if i >= len(requests):
                    return
                next_index[0] += 1
                due = start + i / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(requests[i])
                status = await _read(reader)
                latencies[i] = (time.perf_counter() - due) * 1e3
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies, statuses, time.perf_counter() - start


async def closed_loop(
    port: int, requests: list[bytes], seconds: float, connections: int
) -> tuple[int, dict[int, int], float, np.ndarray]:
    """Each connection sends its next request when the previous answer arrives."""
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    next_index = [0]
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while time.perf_counter() < stop_at:
                i = next_index[0] % len(requests)
                next_index[0] += 1
                t = time.perf_counter()
                writer.write(requests[i])
                status = await _read(reader)
                latencies.append((time.perf_counter() - t) * 1e3)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return sum(statuses.values()), statuses, time.perf_counter() - start, np.asarray(latencies)


def _serve(data: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as out:
        return subprocess.Popen(
            server_command(data, port), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_ready(port: int, timeout: float = 300.0) -> None:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        try:
            if get_json(port, "/v1/stats")["ready"]:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready")


def run(
    mode: str,
    quick: bool = False,
    seed: int = 42,
    seconds: float | None = None,
    rate: float = 500.0,
    connections: int | None = None,
) -> Result:
    if mode == "latency":
        sizes = (200_000, 20_000, 20_000) if quick else (1_000_000, 100_000, 100_000)
        seconds = seconds or (5.0 if quick else 20.0)
        connections = connections or 32
    else:
        sizes = (200_000, 10_000, 10_000) if quick else (1_000_000, 100_000, 10_000)
        seconds = seconds or (3.0 if quick else 10.0)
        connections = connections or 16
    n_events, n_users, n_items = sizes
    tmp = Path(tempfile.mkdtemp(prefix="freshrec-bench-rechttp-"))
    info = build_data_dir(tmp / "data", n_events, n_users, n_items, seed)
    log(
        f"data dir built in {info['build_seconds']} s: {info['users']:,} users, "
        f"{info['items']:,} items, catalogue {info['catalogue_items']:,}"
    )
    n_requests = int(rate * seconds) if mode == "latency" else 50_000
    requests = request_lines(n_requests + 2_000, n_users, seed)
    warm, requests = requests[:2_000], requests[2_000:]
    port = free_port()
    proc = _serve(tmp / "data", port, tmp / "server.log")
    try:
        startup = wait_healthy(proc, port, timeout=120.0)
        _wait_ready(port)
        asyncio.run(open_loop(port, warm, 400.0, 8))
        before = get_json(port, "/v1/stats")
        load = load_average()
        cpu0, client0 = cpu_seconds(proc.pid), time.process_time()
        if mode == "latency":
            ms, statuses, elapsed = asyncio.run(open_loop(port, requests, rate, connections))
            done = int(np.isfinite(ms).sum())
        else:
            done, statuses, elapsed, ms = asyncio.run(
                closed_loop(port, requests, seconds, connections)
            )
        server_cpu = cpu_seconds(proc.pid) - cpu0
        client_cpu = time.process_time() - client0
        after = get_json(port, "/v1/stats")
    finally:
        code = stop_server(proc)
    lat = percentiles(ms[np.isfinite(ms)])
    fallbacks = {k: v - before["fallbacks"].get(k, 0) for k, v in after["fallbacks"].items()}
    hits = after["cache"]["hits"] - before["cache"]["hits"]
    misses = after["cache"]["misses"] - before["cache"]["misses"]
    details = {
        "mode": mode,
        "ms": lat,
        "responses": done,
        "seconds": round(elapsed, 2),
        "responses_per_second": round(done / elapsed, 1),
        "statuses": {str(k): v for k, v in statuses.items()},
        "fallbacks": fallbacks,
        "cache_hit_rate": round(hits / max(hits + misses, 1), 4),
        "slow_rankings": after["slow_rankings"] - before["slow_rankings"],
        "connections": connections,
        "target_rate": rate if mode == "latency" else None,
        "server_cpu_cores": round(server_cpu / elapsed, 2),
        # independent of how much of the machine others took: CPU the server spent per answer
        "server_cpu_ms_per_response": round(server_cpu / max(done, 1) * 1e3, 3),
        "client_cpu_cores": round(client_cpu / elapsed, 2),
        "server_startup_seconds": round(startup, 2),
        "server_exit_code": code,
        "load_average_at_start": load,
        **info,
        "machine": machine(),
    }
    shutil.rmtree(tmp, ignore_errors=True)
    bad = sum(v for k, v in statuses.items() if k != 200)
    tail = (
        f"{', ' + str(bad) + ' non-200' if bad else ''}"
        f"{', fallbacks ' + str(fallbacks) if any(fallbacks.values()) else ''}"
    )
    if mode == "latency":
        headline = (
            f"p99 {lat['p99']:.2f} ms at {rate:.0f} req/s (p50 {lat['p50']:.2f}, "
            f"max {lat['max']:.1f}; {done:,} requests, {info['catalogue_items']:,} items, "
            f"filters on, server {details['server_cpu_cores']} cores, "
            f"{details['server_cpu_ms_per_response']} ms CPU/response{tail}){busy_note(load)}"
        )
        return make_result("recommend_http", lat["p99"], headline, quick, details)
    rps = done / elapsed
    headline = (
        f"{rps:,.0f} req/s ({done:,} responses in {elapsed:.1f} s over {connections} conns, "
        f"p99 {lat['p99']:.1f} ms, {info['catalogue_items']:,} items, filters on, "
        f"server {details['server_cpu_cores']} cores, "
        f"{details['server_cpu_ms_per_response']} ms CPU/response{tail})"
        f"{busy_note(load)}"
    )
    return make_result("recommend_http_throughput", rps, headline, quick, details)


def main(argv: list[str] | None = None, mode: str = "latency") -> int:
    p = parser(f"GET /v1/recommendations over HTTP on a real server ({mode}).")
    p.add_argument("--seconds", type=float, default=None, help="measured window")
    p.add_argument("--rate", type=float, default=500.0, help="requests/s (latency mode)")
    p.add_argument("--connections", type=int, default=None, help="keep-alive connections")
    args = p.parse_args(argv)
    result = run(mode, args.quick, args.seed, args.seconds, args.rate, args.connections)
    return report(result, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
