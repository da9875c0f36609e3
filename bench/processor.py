"""Processor throughput: ``engine.process()`` over a pre-filled durable log.

Budget (DESIGN §4): >= 100,000 events/s on one core, micro-batched, with every model learning
(today: online state + decayed popularity + co-visitation).

Method: generate ~1M synthetic events, append them to the SQLite log of an on-disk engine in
chunks of 500 (what ``POST /v1/events`` batches of 500 produce), then time ``engine.process()``
alone: log read + msgpack decode, id mapping and sessions, both models, offset commits and the
periodic snapshots. numba kernels are warmed up on a small in-memory engine first so compile (or
cache-load) time is excluded (``freshrec.engine.warmup``, as a server does before it listens).
The micro-batch size is ``Settings.processor_batch_events`` (override with
``FRESHREC_PROCESSOR_BATCH_EVENTS``).
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench import Result, busy_note, load_average, log, machine, make_result, parser, report
from bench.synthetic import generate, logged_events, summary
from freshrec import Engine
from freshrec.engine.warmup import compile_kernels

CHUNK = 500  # events per log append, as an HTTP batch of 500 would write


def _timed(table: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            table[name] += time.perf_counter() - t
            table[f"{name} (calls)"] += 1

    return wrapper


def instrument(engine: Engine) -> dict[str, float]:
    """Accumulate wall time per stage of ``Processor.step`` (a few calls per micro-batch)."""
    table: dict[str, float] = defaultdict(float)
    p = engine.processor
    p.log.read = _timed(table, "log.read", p.log.read)  # type: ignore[method-assign]
    p.log.commit = _timed(table, "log.commit", p.log.commit)  # type: ignore[method-assign]
    p.state.advance = _timed(table, "state.advance", p.state.advance)  # type: ignore[method-assign]
    for model in p.models:
        model.learn = _timed(table, f"{model.name}.learn", model.learn)  # type: ignore[method-assign]
    for monitor in getattr(p, "monitors", ()):
        name = f"{getattr(monitor, 'name', 'monitor')}.observe"
        monitor.observe = _timed(table, name, monitor.observe)  # type: ignore[method-assign]
    p.snapshot = _timed(table, "snapshot", p.snapshot)  # type: ignore[method-assign]
    return table


def fill(
    engine: Engine, workload: Any, chunk: int = CHUNK, start: int = 0, stop: int | None = None
) -> float:
    """Append the workload's events ``start:stop`` (all by default) to the engine's log in
    chunks; returns seconds taken."""
    t = time.perf_counter()
    step = 50_000  # materialise LoggedEvents a slice at a time
    stop = len(workload) if stop is None else stop
    for s in range(start, stop, step):
        events = logged_events(workload, s, min(s + step, stop))
        for c in range(0, len(events), chunk):
            engine.log.append(events[c : c + chunk])
    return time.perf_counter() - t


def run(quick: bool = False, seed: int = 42) -> Result:
    n_events, n_users, n_items = (
        (100_000, 20_000, 10_000) if quick else (1_000_000, 100_000, 100_000)
    )
    warm = compile_kernels()
    log(f"numba warm-up {warm:.1f} s (excluded)")
    workload = generate(n_events, n_users, n_items, seed=seed)
    with tempfile.TemporaryDirectory(prefix="freshrec-bench-proc-") as tmp:
        engine = Engine.open(tmp)
        try:
            fill_s = fill(engine, workload)
            log(f"log filled with {n_events:,} events in {fill_s:.1f} s")
            batch = engine.settings.processor_batch_events
            stages = instrument(engine)
            gc.collect()
            load = load_average()
            cpu, t = time.process_time(), time.perf_counter()
            processed = engine.process()
            elapsed = time.perf_counter() - t
            cpu = time.process_time() - cpu
            stages = dict(stages)  # before close(), which snapshots once more
            stats = engine.stats()
        finally:
            engine.close()
    rate = processed / elapsed
    calls = {k.removesuffix(" (calls)"): int(v) for k, v in stages.items() if k.endswith("(calls)")}
    seconds = {k: v for k, v in stages.items() if not k.endswith("(calls)")}
    other = elapsed - sum(seconds.values())
    details = {
        "events_processed": processed,
        "seconds": round(elapsed, 3),
        "events_per_second": round(rate),
        "cpu_seconds": round(cpu, 3),
        "events_per_cpu_second": round(processed / cpu) if cpu > 0 else None,
        "load_average_at_start": load,
        "load_average_at_end": load_average(),
        "batch_events": batch,
        "log_chunk_events": CHUNK,
        "stage_seconds": {k: round(v, 3) for k, v in sorted(seconds.items())}
        | {"other": round(other, 3)},
        "stage_calls": calls,
        "snapshots_written": calls.get("snapshot", 0),
        "users": stats["users"],
        "items": stats["items"],
        "numba_warm_up_seconds_excluded": round(warm, 2),
        "log_fill_seconds": round(fill_s, 2),
        "workload": summary(workload),
        "machine": machine(),
    }
    headline = (
        f"{rate:,.0f} events/s (batch {batch}, {processed:,} events, {elapsed:.2f} s)"
        f"{busy_note(load)}"
    )
    return make_result("processor", rate, headline, quick, details)


def main(argv: list[str] | None = None) -> int:
    args = parser("Processor throughput: engine.process() over a pre-filled log.").parse_args(argv)
    return report(run(args.quick, args.seed), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
