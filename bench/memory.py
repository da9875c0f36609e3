"""Memory: resident set size of an engine holding 1M users x 100k items x 64 factors.

Budget (DESIGN §4): <= 1.5 GB RSS at 1M users x 100k items x 64 factors.

Method: an on-disk engine (the log lives in SQLite on disk, as in production) with default
settings (MF with 64 factors, every model of the ensemble) processes a synthetic workload in
which every one of 1M users and 100k items appears (2M events, sessions of two events): all
but the last ``registry_gate_events`` (20,000), then a snapshot, which starts a gate (frozen
copies of two versions, ``freshrec.registry.mapped``), then those 20,000, on which the gate
tests the new version and decides (the snapshot at 2M events starts the next gate); then a
few recommendations are served and a snapshot is written. The figure is the process's peak RSS
(``ru_maxrss``), which includes the Python interpreter, numpy, numba and every library; the RSS
after the run and the size of the main arrays are in the details.
"""

from __future__ import annotations

import gc
import resource
import tempfile
import time

from bench import Result, log, machine, make_result, parser, report
from bench.processor import CHUNK, fill, warm_up
from bench.synthetic import generate, logged_events
from freshrec import Engine


def rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(quick: bool = False, seed: int = 42) -> Result:
    n_events, n_users, n_items = (
        (200_000, 100_000, 10_000) if quick else (2_000_000, 1_000_000, 100_000)
    )
    warm_up(seed)
    # two-event sessions, so that 2M events give every one of the 1M users a session
    workload = generate(n_events, n_users, n_items, seed=seed, session_events=2.0)
    log(f"workload: {n_events:,} events, {n_users:,} users, {n_items:,} items")
    with tempfile.TemporaryDirectory(prefix="freshrec-bench-mem-") as tmp:
        engine = Engine.open(tmp)
        try:
            held_back = engine.settings.registry_gate_events + 1  # the last decides
            fill(engine, workload, stop=n_events - held_back)
            tail = logged_events(workload, n_events - held_back, n_events)
            del workload
            gc.collect()
            t = time.perf_counter()
            engine.process()
            engine.processor.snapshot()  # a gate starts: two frozen versions load
            # the gate tests on the held-back events and decides at the next micro-batch
            for part in (tail[:-1], tail[-1:]):
                for c in range(0, len(part), CHUNK):
                    engine.log.append(part[c : c + CHUNK])
                engine.process()
            del tail
            gates = [
                {"version": v["version"], "status": v["status"], "gate": v["gate"]}
                for v in engine.lifecycle.versions()
                if v.get("gate")
            ]
            log(f"processed in {time.perf_counter() - t:.1f} s; gates decided: {gates}")
            for n in range(0, n_users, max(1, n_users // 200)):
                engine.recommend(f"u{n}", k=10)
            engine.processor.snapshot()
            gc.collect()
            stats = engine.stats()
            arrays = {
                "mf_user_factors_mb": engine.mf._P.nbytes / 2**20,
                "mf_item_factors_mb": engine.mf._Q.nbytes / 2**20,
                "state_arrays_mb": sum(a.nbytes for a in engine.state.arrays().values()) / 2**20,
                "covisitation_mb": (
                    engine.covisitation._nbr.nbytes + engine.covisitation._nbw.nbytes
                )
                / 2**20,
            }
            after = rss_mb()
        finally:
            engine.close()
    peak = peak_rss_mb()
    details = {
        "peak_rss_mb": round(peak, 1),
        "rss_after_run_mb": round(after, 1),
        "users": stats["users"],
        "items": stats["items"],
        "factors": 64,
        "arrays_mb": {k: round(v, 1) for k, v in arrays.items()},
        "gates": gates,
        "machine": machine(),
    }
    headline = (
        f"peak RSS {peak / 1024:.2f} GB ({stats['users']:,} users x {stats['items']:,} items)"
    )
    return make_result("memory", peak / 1024, headline, quick, details)


def main(argv: list[str] | None = None) -> int:
    args = parser("Peak RSS of an engine at 1M users x 100k items x 64 factors.").parse_args(argv)
    return report(run(args.quick, args.seed), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
