"""Drift handling: detection delay, false alarms and recovery speed, drift handling on vs off.

Streams: every simulator scenario (``freshrec.sim.scenarios``: abrupt, gradual, new category,
seasonal, stationary) and the Taobao user sample from ``../shared/data`` in time order with an
injected abrupt shift: from the midpoint on, the item ids of the most popular category are
remapped to new ids (the same products under new names).

Each stream runs twice through an in-memory engine with the same models: drift handling **on**
(defaults: detectors and recalibration) and **off** (``drift_detection=False``). Quality is the
ensemble's prequential HitRate@10 on one event in ``EVERY`` (test-then-learn, one target item:
HitRate@10 = Recall@10), from live quality. Figures:

- detection delay: events from the shift to the first detection (on);
- false alarms: detections before the shift, and on the stationary stream, per 100,000 events;
- recovery: events after the shift until Recall@10 over a sliding window of ``WINDOW`` events is
  back to 90 % of its level over the ``WINDOW`` events before the shift, on and off.

    python -m bench.drift [--quick] [--json PATH]

Not part of ``make bench`` (``bench/__main__.py``): about 10 minutes on an idle machine.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import OUT_DIR, log, make_result, parser, report
from freshrec import Engine
from freshrec.sim.scenarios import DriftScenario

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "taobao-userbehavior"
EVERY = 20  # live_eval_every: one tested event in this many
WINDOW = 5000  # events per recall window
BATCH = 5000
TAOBAO_TYPES = {"pv": "view", "fav": "favorite", "cart": "add_to_cart", "buy": "purchase"}


def taobao_with_shift(limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """The Taobao user sample in time order (its first ``limit`` events); the most popular
    category's items renamed from the middle on."""
    rows = []
    with (DATA / "userbehavior_user_sample.csv").open(newline="") as f:
        for user, item, category, kind, ts in csv.reader(f):
            rows.append((int(ts), user, item, category, kind))
    rows.sort(key=lambda r: r[0])
    rows = [r for r in rows if r[0] >= 1511539200][:limit]  # without 7 outliers of September
    shift = len(rows) // 2
    counts: dict[str, int] = {}
    for r in rows[:shift]:
        counts[r[3]] = counts.get(r[3], 0) + 1
    top = max(counts, key=counts.__getitem__)
    events = []
    for n, (ts, user, item, category, kind) in enumerate(rows):
        if n >= shift and category == top:
            item = "renamed-" + item
        events.append(
            {
                "type": TAOBAO_TYPES[kind],
                "user_id": user,
                "item_id": item,
                "timestamp": ts,
                "context": {"category": category},
            }
        )
    return events, shift


def run(events: list[dict[str, Any]], on: bool) -> dict[str, Any]:
    """Feed ``events`` through an engine; the tested events' offsets and hits, detections."""
    engine = Engine.open(None, live_eval_every=EVERY, drift_detection=on)
    quality = engine.quality
    tested: list[tuple[int, bool]] = []
    observe = quality.observe

    def recording(event: Any, offset: int) -> None:
        before = quality.tests
        observe(event, offset)
        if quality.tests > before:
            tested.append((offset, quality.last_hits()["ensemble"]))

    quality.observe = recording  # type: ignore[method-assign]
    t = time.perf_counter()
    for i in range(0, len(events), BATCH):
        engine.ingest(events[i : i + BATCH])
        engine.process()
    seconds = time.perf_counter() - t
    found = engine.drift_events() if on else []
    detections = [e.at_event for e in found]
    signals = [e.signal for e in found]
    engine.close()
    offsets = np.array([o for o, _ in tested])
    hits = np.array([h for _, h in tested], dtype=float)
    return {
        "offsets": offsets,
        "hits": hits,
        "detections": detections,
        "signals": signals,
        "seconds": seconds,
    }


def recovery(r: dict[str, Any], shift: int, n: int) -> tuple[float, int | str]:
    """Pre-shift Recall@10, and events after the shift until Recall@10 over the last ``WINDOW``
    events (after the shift) is back at 90 % of it -- ``"no drop"`` if it never fell below,
    ``"never"`` if it did not come back within the stream."""
    offsets, hits = r["offsets"], r["hits"]
    pre = hits[(offsets >= shift - WINDOW) & (offsets < shift)]
    level = float(pre.mean()) if pre.size else float("nan")
    dropped = False
    for end in range(shift + WINDOW // 5, n + 1, WINDOW // 10):
        window = hits[(offsets >= max(shift, end - WINDOW)) & (offsets < end)]
        if window.size < 40:
            continue
        below = window.mean() < 0.9 * level
        if below:
            dropped = True
        elif dropped:
            return level, end - shift
    return level, "never" if dropped else "no drop"


def main(argv: list[str] | None = None) -> int:
    p = parser("Drift detection delay, false alarms and recovery, drift handling on vs off.")
    args = p.parse_args(argv)
    logging.getLogger("freshrec").setLevel(logging.ERROR)  # detections are counted, not logged
    n = 40_000 if args.quick else 100_000
    shift = n // 2
    streams: list[tuple[str, list[dict[str, Any]], int | None]] = []
    for kind in ("abrupt", "gradual", "new_category", "seasonal", "stationary"):
        scenario = DriftScenario(kind, seed=args.seed, shift_at=shift, span=n // 10, period=n)
        streams.append((kind, scenario.take(n), None if kind == "stationary" else shift))
    if (DATA / "userbehavior_user_sample.csv").exists():
        events, at = taobao_with_shift(n if args.quick else None)
        streams.append(("taobao+remap", events, at))
    else:
        log(f"skipping Taobao: {DATA} not found")
    rows, details = [], {}
    for name, events, at in streams:
        log(f"{name}: {len(events)} events")
        on, off = run(events, True), run(events, False)
        before = [d for d in on["detections"] if at is None or d < at]
        after = [d for d in on["detections"] if at is not None and d >= at]
        delay = after[0] - at if after and at is not None else None if at is None else "missed"
        row: dict[str, Any] = {
            "stream": name,
            "events": len(events),
            "shift_at": at,
            "detections": len(on["detections"]),
            "delay": delay,
            "false_alarms_per_100k": len(before) * 100_000 / (at or len(events)),
        }
        if at is not None:
            level, rec_on = recovery(on, at, len(events))
            _, rec_off = recovery(off, at, len(events))
            row.update(pre_recall=level, recovery_on=rec_on, recovery_off=rec_off)
        row["seconds_on"], row["seconds_off"] = round(on["seconds"], 1), round(off["seconds"], 1)
        rows.append(row)
        details[name] = {**row, "first_detections": on["detections"][:10]}
    print(table(rows))
    abrupt = [r["delay"] for r in rows if r["stream"] in ("abrupt", "new_category", "taobao+remap")]
    worst = max((d if isinstance(d, int) else float("inf")) for d in abrupt)
    headline = f"worst detection delay after an abrupt shift {worst:,.0f} events"
    result = make_result("drift", worst, headline, args.quick, {"streams": details})
    return report(result, args.json or (OUT_DIR / "drift.json" if not args.quick else None))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(rows: list[dict[str, Any]]) -> str:
    cols = [
        ("stream", "stream"),
        ("events", "events"),
        ("shift_at", "shift at"),
        ("detections", "detections"),
        ("delay", "delay (events)"),
        ("false_alarms_per_100k", "false alarms /100k"),
        ("pre_recall", "Recall@10 before"),
        ("recovery_on", "back to 90 %: on"),
        ("recovery_off", "off"),
    ]
    cells = [[h for _, h in cols]]
    for r in rows:
        cells.append([_fmt(r.get(k)) if k in r else "-" for k, _ in cols])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = []
    for i, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
