"""freshrec benchmarks: the budgets of DESIGN §4, measured and printed next to their figures.

Run all of them with ``make bench`` (``python -m bench``), or one alone, e.g.
``python -m bench.processor [--quick] [--json PATH]``. Benchmarks are measurements, not tests:
nothing here asserts on timings; a missed budget is printed as ``MISS``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True, slots=True)
class Budget:
    """A target from DESIGN §4: ``figure <op> limit``."""

    op: str  # ">=" or "<="
    limit: float
    unit: str

    def met(self, value: float) -> bool:
        return value >= self.limit if self.op == ">=" else value <= self.limit


BUDGETS: dict[str, Budget] = {
    "ingest_http": Budget(">=", 50_000, "events/s"),
    "processor": Budget(">=", 100_000, "events/s"),
    "recommend": Budget("<=", 2.0, "ms (p99)"),
    "memory": Budget("<=", 1.5, "GB (peak RSS)"),
    "freshness": Budget("<=", 50.0, "ms (p99, embedded)"),
    # scale-out mode (Redis), issue 4
    "scaleout_ingest": Budget(">=", 30_000, "events/s"),
    "scaleout_freshness": Budget("<=", 200.0, "ms (p99)"),
    "scaleout_workers": Budget(">=", 1.7, "x (2 vs 1 worker)"),
    "recommend_http": Budget("<=", 10.0, "ms (p99 at 500 req/s)"),
    "recommend_http_throughput": Budget(">=", 2_000, "req/s"),
    "cache_hit": Budget("<=", 1.0, "ms (p99)"),
    "drift": Budget("<=", 2000, "events (worst detection delay)"),
}


@dataclass(slots=True)
class Result:
    """One benchmark's headline figure, its budget and everything else it measured."""

    name: str
    value: float
    unit: str
    budget_op: str
    budget: float
    ok: bool
    summary: str  # the one-line report
    quick: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fmt_number(value: float) -> str:
    """``312,000`` for large figures, ``1.23`` for small ones."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if value < 1 else f"{value:.2f}"


def make_result(
    name: str, value: float, headline: str, quick: bool, details: dict[str, Any]
) -> Result:
    """A ``Result`` whose summary reads ``<name>: <headline>  budget >= X  OK|MISS``."""
    b = BUDGETS[name]
    ok = b.met(value)
    note = "  (quick run: not the budget figure)" if quick else ""
    line = (
        f"{name}: {headline}  budget {b.op} {fmt_number(b.limit)} {b.unit}  "
        f"{'OK' if ok else 'MISS'}{note}"
    )
    return Result(name, value, b.unit, b.op, b.limit, ok, line, quick, details)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "reference_seconds": reference_seconds(),
        "platform": platform.platform(),
        "thread_env": {
            k: os.environ[k]
            for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
            if k in os.environ
        },
    }


def reference_seconds(repeat: int = 3) -> float:
    """CPU seconds of a fixed pure-Python workload (best of ``repeat``): the machine's speed.

    The machines these benchmarks run on differ by up to 3x per core, and so do the figures;
    this number travels with them so that runs on different machines can be compared (a figure
    measured where this is twice as large would be about twice as good on the faster machine).
    """
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        total = 0
        for i in range(3_000_000):
            total += i & 7
        best = min(best, time.process_time() - t)
    return round(best, 3)


def load_average() -> float:
    """1-minute load average (other processes on the 2 cores skew every figure)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def busy_note(load_at_start: float) -> str:
    """A warning for the summary line when the machine was not idle at the start."""
    if load_at_start > 1.0:
        log(f"WARNING: load average {load_at_start} at start: other processes share the cores")
        return f" [load {load_at_start} at start]"
    return ""


def parser(description: str) -> argparse.ArgumentParser:
    """Arguments every benchmark takes; modules add their own."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small, fast run (figures indicative)")
    p.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    p.add_argument("--seed", type=int, default=42, help="seed of the synthetic workload")
    return p


def report(result: Result, json_path: Path | None) -> int:
    """Print the one-line summary (stdout) and write the JSON result if asked."""
    print(result.summary, flush=True)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the figures."""
    print(f"  .. {message}", file=sys.stderr, flush=True)
