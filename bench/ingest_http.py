"""Durable ingest over HTTP: ``POST /v1/events`` with batches of 500, one server process.

Budget (DESIGN §4): >= 50,000 events/s sustained, batch endpoint, durable (fsync'd before 202).

Method: start the real server (``freshrec serve --data-dir TMP --port P`` on 127.0.0.1) as a
subprocess and wait for ``/healthz``. Pre-encode ``{"events": [...]}`` bodies of 500 synthetic
events (each with an ``event_id``, so de-duplication is paid for, and a small context), then
send them over a few keep-alive connections from one asyncio loop with a minimal raw HTTP/1.1
client (pre-encoded request heads too, so the client stays cheap: it shares the 2 cores with the
server). A short warm-up is sent first and not counted. The figure is the sum of the responses'
``"accepted"`` over the measured window divided by its length; ``/v1/stats`` is checked at the
end. The server's own processor runs in the background during the run, as it would in
production, and competes for the same cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench import Result, busy_note, load_average, log, machine, make_result, parser, report
from bench.synthetic import generate, json_batches, summary

HOST = "127.0.0.1"
BATCH = 500
_HEAD = (
    b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def get_json(port: int, path: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as r:
        return json.loads(r.read())


def server_command(data_dir: Path, port: int) -> list[str]:
    script = Path(sys.executable).parent / "freshrec"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "freshrec.cli"]
    return [*head, "serve", "--data-dir", str(data_dir), "--host", HOST, "--port", str(port)]


def wait_healthy(proc: subprocess.Popen[bytes], port: int, timeout: float = 60.0) -> float:
    """Poll ``/healthz`` until it answers; returns seconds waited."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before /healthz")
        try:
            if get_json(port, "/healthz", timeout=1.0).get("status") == "ok":
                return time.monotonic() - t
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not healthy after {timeout:.0f} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split()[1])
    length = None
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ConnectionError("response without content-length")
    return status, await reader.readexactly(length)


class Tally:
    """What the clients saw (accepted counts only inside the measured window)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.duplicates = 0
        self.requests = 0
        self.failures: dict[str, int] = {}
        self.latencies: list[float] = []


async def _client(port: int, bodies: Iterator[bytes], stop_at: float, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while time.perf_counter() < stop_at:
            body = next(bodies, None)
            if body is None:
                return
            t = time.perf_counter()
            writer.write(_HEAD % len(body) + body)
            status, payload = await _read_response(reader)
            tally.latencies.append(time.perf_counter() - t)
            tally.requests += 1
            if status != 202:
                key = f"{status}: {payload[:120].decode(errors='replace')}"
                tally.failures[key] = tally.failures.get(key, 0) + 1
                continue
            answer = json.loads(payload)
            tally.accepted += answer["accepted"]
            tally.duplicates += answer["duplicates"]
    finally:
        writer.close()


async def send(
    port: int, bodies: Iterator[bytes], seconds: float, connections: int
) -> tuple[Tally, float]:
    """Send bodies over ``connections`` keep-alive connections for at most ``seconds``."""
    tally = Tally()
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*(_client(port, bodies, stop_at, tally) for _ in range(connections)))
    return tally, time.perf_counter() - start


def wait_processed(port: int, timeout: float) -> tuple[dict[str, Any], float]:
    """Poll /v1/stats until the processor has caught up (or ``timeout``)."""
    t = time.monotonic()
    stats = get_json(port, "/v1/stats")
    while stats["processor_lag"] > 0 and time.monotonic() - t < timeout:
        time.sleep(0.05)
        stats = get_json(port, "/v1/stats")
    return stats, time.monotonic() - t


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 120.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def run(
    quick: bool = False, seed: int = 42, seconds: float | None = None, connections: int = 3
) -> Result:
    seconds = seconds or (3.0 if quick else 10.0)
    warm_batches = 10 if quick else 40
    # enough bodies for 200k events/s over the window; if the server is faster the run ends
    # early (bounded by count as well as time) and says so
    n_bodies = warm_batches + int(200_000 * seconds / BATCH) + 1
    n_users, n_items = (20_000, 10_000) if quick else (100_000, 100_000)
    t = time.perf_counter()
    workload = generate(n_bodies * BATCH, n_users, n_items, seed=seed)
    bodies = json_batches(workload, BATCH)
    log(
        f"pre-encoded {len(bodies):,} bodies of {BATCH} events "
        f"({sum(map(len, bodies)) / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s"
    )
    tmp = Path(tempfile.mkdtemp(prefix="freshrec-bench-ingest-"))
    port = free_port()
    server_log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        server_command(tmp / "data", port),
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        startup = wait_healthy(proc, port)
        stream = iter(bodies)
        warm, _ = asyncio.run(
            send(port, iter([next(stream) for _ in range(warm_batches)]), 30.0, connections)
        )
        stats, _ = wait_processed(port, 30.0)
        log(
            f"server up in {startup:.1f} s; warm-up {warm.accepted:,} events, "
            f"processor caught up ({stats['events_processed']:,})"
        )
        load = load_average()
        cpu0, wall0 = cpu_seconds(proc.pid), time.process_time()
        tally, elapsed = asyncio.run(send(port, stream, seconds, connections))
        server_cpu, client_cpu = cpu_seconds(proc.pid) - cpu0, time.process_time() - wall0
        after = get_json(port, "/v1/stats")
        drained, drain_s = wait_processed(port, 120.0)
    finally:
        code = stop_server(proc)
        server_log.close()
    ran_out = tally.requests + warm.requests >= len(bodies)
    rate = tally.accepted / elapsed
    lat = np.asarray(tally.latencies) * 1e3 if tally.latencies else np.zeros(1)
    expected = warm.accepted + tally.accepted
    details = {
        "accepted": tally.accepted,
        "duplicates": tally.duplicates,
        "requests": tally.requests,
        "failed_requests": tally.failures,
        "seconds": round(elapsed, 3),
        "events_per_second": round(rate),
        "requests_per_second": round(tally.requests / elapsed, 1),
        "batch_events": BATCH,
        "connections": connections,
        "body_bytes_mean": round(sum(map(len, bodies)) / len(bodies)),
        "request_ms": {
            "p50": round(float(np.percentile(lat, 50)), 2),
            "p99": round(float(np.percentile(lat, 99)), 2),
            "max": round(float(lat.max()), 2),
        },
        "server_cpu_cores": round(server_cpu / elapsed, 2),
        "client_cpu_cores": round(client_cpu / elapsed, 2),
        "load_average_at_start": load,
        "ran_out_of_bodies": ran_out,
        "stats_after": after,
        "stats_match_acknowledged": after["events_accepted"] == expected,
        "processor_lag_at_end": after["processor_lag"],
        "processor_catch_up_seconds": round(drain_s, 2),
        "processor_caught_up": drained["processor_lag"] == 0,
        "server_startup_seconds": round(startup, 2),
        "server_exit_code": code,
        "workload": summary(workload),
        "machine": machine(),
    }
    if after["events_accepted"] != expected:
        log(
            f"WARNING: /v1/stats says {after['events_accepted']:,} accepted, clients were "
            f"acknowledged {expected:,}"
        )
    if tally.failures:
        log(f"WARNING: failed requests: {tally.failures}; server log in {tmp / 'server.log'}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    p99 = details["request_ms"]["p99"]
    headline = (
        f"{rate:,.0f} events/s ({tally.requests:,} x {BATCH}-event POSTs, "
        f"{connections} conns, {elapsed:.1f} s, request p99 {p99} ms"
        f"{', ran out of bodies' if ran_out else ''}"
        f"{'' if details['stats_match_acknowledged'] else ', /v1/stats MISMATCH'}){busy_note(load)}"
    )
    return make_result("ingest_http", rate, headline, quick, details)


def main(argv: list[str] | None = None) -> int:
    p = parser("Durable ingest through POST /v1/events (batches of 500) on a real server.")
    p.add_argument("--seconds", type=float, default=None, help="measured window (default 10)")
    p.add_argument("--connections", type=int, default=3, help="concurrent keep-alive connections")
    args = p.parse_args(argv)
    return report(run(args.quick, args.seed, args.seconds, args.connections), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
