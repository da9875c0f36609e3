"""Memory: resident set size of an engine holding 1M users x 100k items x 64 factors.

Budget (DESIGN §4): <= 1.5 GB RSS at 1M users x 100k items x 64 factors.

Method: an on-disk engine (the log lives in SQLite on disk, as in production) with default
settings (MF with 64 factors, every model of the ensemble) processes a synthetic workload in
which every one of 1M users and 100k items appears (2M events, sessions of two events). First
all but the last ``registry_gate_events + 1`` (20,001), then a snapshot, which starts a gate
(frozen copies of two versions, ``freshrec.registry.mapped``), then those, on which the gate
tests the new version and decides (it promotes it). Then a rollback by hand puts the version
before back (copied into the models) and a promotion by hand the new one again; a few
recommendations are served and a snapshot is written (the next gate starts).
Last, a fresh process opens the data directory (restores the newest snapshot, as after a
crash) and serves one recommendation.

The figure is the peak RSS (``ru_maxrss``) of the run or of the restart, whichever is larger.
It includes the Python interpreter, numpy, numba and every library. The details hold both
peaks, the RSS after the run and the size of the main arrays.
"""

from __future__ import annotations

import gc
import resource
import subprocess
import sys
import tempfile
import time

from bench import Result, log, machine, make_result, parser, report
from bench.processor import CHUNK, fill
from bench.synthetic import generate, logged_events
from freshrec import Engine
from freshrec.engine.warmup import compile_kernels


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
    compile_kernels()
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
            # two put-backs (each version copied into the models' arrays): back, and forth
            engine.promote(engine.rollback()["rolled_back"])
            versions = [
                {k: v[k] for k in ("version", "status", "gate", "restored_from") if k in v}
                for v in engine.lifecycle.versions()
            ]
            log(f"processed in {time.perf_counter() - t:.1f} s; versions: {versions}")
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
        t = time.perf_counter()
        restart = _restart_peak_mb(tmp)
        log(f"restart: peak RSS {restart:,.0f} MB, {time.perf_counter() - t:.1f} s to open")
    details = {
        "peak_rss_mb": round(peak, 1),
        "restart_peak_rss_mb": round(restart, 1),
        "rss_after_run_mb": round(after, 1),
        "users": stats["users"],
        "items": stats["items"],
        "factors": 64,
        "arrays_mb": {k: round(v, 1) for k, v in arrays.items()},
        "versions": versions,
        "machine": machine(),
    }
    headline = (
        f"peak RSS {peak / 1024:.2f} GB running, {restart / 1024:.2f} GB restarting "
        f"({stats['users']:,} users x {stats['items']:,} items)"
    )
    return make_result("memory", max(peak, restart) / 1024, headline, quick, details)


def _restart_peak_mb(data_dir: str) -> float:
    """Peak RSS of a fresh process that opens ``data_dir`` (restores its newest snapshot and
    replays the log after it) and serves one recommendation."""
    code = (  # VmHWM: ru_maxrss would count the RSS the child had as a fork of this one
        "import sys\n"
        "from freshrec import Engine\n"
        "with Engine.open(sys.argv[1]) as engine:\n"
        "    engine.recommend('u1', k=10)\n"
        "with open('/proc/self/status') as f:\n"
        "    print(next(int(l.split()[1]) for l in f if l.startswith('VmHWM:')) / 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, data_dir], capture_output=True, text=True, check=True
    )
    return float(done.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parser("Peak RSS of an engine at 1M users x 100k items x 64 factors.").parse_args(argv)
    return report(run(args.quick, args.seed), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
