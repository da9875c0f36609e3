"""``python -m bench``: every benchmark, each in a fresh process, then a table and a JSON file.

Figures go to stdout next to their budgets; ``bench/out/results.json`` gets every detail. A
missed budget is reported (``MISS``), never raised: benchmarks are measurements, not tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import BUDGETS, OUT_DIR, fmt_number, machine, parser, reference_seconds

BENCHMARKS: tuple[tuple[str, str], ...] = (
    ("ingest_http", "bench.ingest_http"),
    ("processor", "bench.processor"),
    ("recommend", "bench.recommend"),
    ("memory", "bench.memory"),
    ("freshness", "bench.freshness"),
    ("scaleout_ingest", "bench.scaleout_ingest"),
    ("scaleout_freshness", "bench.scaleout_freshness"),
    ("scaleout_workers", "bench.scaleout_workers"),
    ("recommend_http", "bench.recommend_http"),
    ("recommend_http_throughput", "bench.recommend_http_throughput"),
    ("cache_hit", "bench.cache_hit"),
)
TIMEOUT_SECONDS = 900  # per benchmark


def run_one(module: str, quick: bool, seed: int, json_path: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", module, "--seed", str(seed), "--json", str(json_path)]
    if quick:
        cmd.append("--quick")
    t = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, timeout=TIMEOUT_SECONDS, check=False, stdout=subprocess.PIPE, text=True
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUT_SECONDS} s"}
    sys.stdout.write(proc.stdout)
    sys.stdout.flush()
    if proc.returncode != 0 or not json_path.exists():
        return {"error": f"exit code {proc.returncode}"}
    result = json.loads(json_path.read_text(encoding="utf-8"))
    result["wall_seconds"] = round(time.monotonic() - t, 1)
    return result


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = [("benchmark", "measured", "budget", "status")]
    for name, r in results.items():
        b = BUDGETS[name]
        budget = f"{b.op} {fmt_number(b.limit)} {b.unit}"
        if "error" in r:
            rows.append((name, r["error"], budget, "ERROR"))
        else:
            rows.append(
                (name, f"{fmt_number(r['value'])} {r['unit']}", budget, "OK" if r["ok"] else "MISS")
            )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser("Run every freshrec benchmark and compare with the budgets of DESIGN §4.")
    p.add_argument(
        "--only",
        action="append",
        choices=[n for n, _ in BENCHMARKS],
        help="run only this benchmark (repeatable)",
    )
    args = p.parse_args(argv)
    out = args.json or OUT_DIR / "results.json"
    results: dict[str, dict[str, Any]] = {}
    reference = [reference_seconds()]
    print(f"machine reference: {reference[0]:.3f} s of CPU (bench.reference_seconds)", flush=True)
    with tempfile.TemporaryDirectory(prefix="freshrec-bench-") as tmp:
        for name, module in BENCHMARKS:
            if args.only and name not in args.only:
                continue
            print(f"== {name}", flush=True)
            results[name] = run_one(module, args.quick, args.seed, Path(tmp) / f"{name}.json")
    reference.append(reference_seconds())
    print(f"machine reference after: {reference[1]:.3f} s of CPU")
    print()
    print(table(results))
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "seed": args.seed,
        "machine": machine(),
        "reference_seconds": {"before": reference[0], "after": reference[1]},
        "results": results,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
