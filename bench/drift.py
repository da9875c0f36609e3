"""Drift handling: detection delay, false alarms and recovery speed, drift handling on vs off.

Streams: every simulator scenario (``freshrec.sim.scenarios``: abrupt, gradual, new category,
seasonal, stationary; shift at 50,000 events, abrupt and gradual run to 150,000 so that Recall@10
comes back within the stream with drift handling off too, the others to 100,000) and the Taobao
user sample from ``../shared/data`` in time order with an injected abrupt shift at its midpoint:
``taobao+permute`` (in the busiest categories, holding half of the events, the items known before
the midpoint swap ids among themselves: still known, still tested, and what the models knew about
each id now misleads them) and ``taobao+remap`` (the most popular category's items get new ids:
unknown to the models, so their events leave the tests -- this one never took Recall@10 below
90 %).

``abrupt-long`` and ``gradual-long`` are abrupt and gradual with the shift after 100,000 events
instead of 50,000 (run to 260,000). How much sooner drift handling brings Recall@10 back depends
on how much the models learned before the shift: without it, the events after the shift have to
outweigh everything before it; with it, the models relearn from about what a fresh engine
would -- and after 50,000 events even wiping every model's weights at the shift itself
comes back only 1.9 times sooner on abrupt (``docs/benchmarks.md``, Drift). A shop has
far more than 50,000 events (42 minutes of this simulator's traffic) behind it.

A further Taobao stream, ``taobao``, is the same events with nothing injected: a placebo
with the same midpoint. It shows what the recovery measure reads on that data when nothing was
injected (the sample's own drift over its nine days), and every detection on it is a false alarm.

Each stream runs twice through an in-memory engine with the same models: drift handling **on**
(defaults: detectors and recalibration) and **off** (``drift_detection=False``). Quality is the
ensemble's prequential HitRate@10 (test-then-learn, one target item: HitRate@10 = Recall@10) on
*every* testable event, measured by a read-only probe (``Probe``): the engine's own live quality
tests one event in ``EVERY`` as usual (it feeds the ensemble weights and the hit-rate detectors),
and the probe tests every event whose user and item are known and that is not one of the user's
recent items, with the ensemble as it stands before the event. The probe changes nothing the
engine does (its own live tests are the same with and without it); it is there because one test
in 20 left the Taobao windows with about 50 tests each -- too few to read a 10 % drop. Figures:

- detection delay: events from the shift to the first detection (on);
- false alarms: detections before the shift, and on the stationary and placebo streams (all of
  them), per 100,000 events;
- recovery: events after the shift until Recall@10 over a sliding window of ``WINDOW`` events is
  back to 90 % of its level over the ``WINDOW`` events before the shift, on and off, and how many
  times sooner it is with drift handling (``off / on``; the budget is at least 2);
- for ``taobao+permute`` and ``taobao+remap``, also against the placebo (``recovery_vs``): until
  Recall@10 over the window is back at 90 % of the placebo's (drift handling off) over the same
  window;
- Recall@10 over the ``AFTER`` events after the shift, on and off (the same events tested: what
  drift handling gained or lost, without a threshold).

With ``--bound``, abrupt and gradual (and their long twins) run a third time, drift handling
off, with every model reset to a new engine's where the shift is complete (``reset``: an oracle
that knows the shift, the most any recalibration of these models could do; columns ``reset:
back`` and ``off / reset``).

    python -m bench.drift [--quick] [--bound] [--json PATH] [--streams taobao+permute,taobao]

Not part of ``make bench`` (``bench/__main__.py``): about 40 minutes on an idle 2-core machine
(abrupt alone about 4, each long stream about 5); the probe learns event by event.
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
from freshrec.engine.quality import LiveQuality
from freshrec.sim.scenarios import DriftScenario

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "taobao-userbehavior"
EVERY = 20  # live_eval_every of the engine: one live test in this many events
PROBE_EVERY = 1  # the figures' Recall@10: every testable event
WINDOW = 5000  # events per recall window
AFTER = 20_000  # events after the shift of the mean Recall@10 (on and off, the same tests)
BATCH = 5000
PERMUTED = 0.5  # taobao+permute: share of the events (before the middle) in permuted categories
PERMUTE_SEED = 5
TAOBAO_TYPES = {"pv": "view", "fav": "favorite", "cart": "add_to_cart", "buy": "purchase"}


def taobao_with_shift(
    limit: int | None = None, shift: str = "rename"
) -> tuple[list[dict[str, Any]], int]:
    """The Taobao user sample in time order (its first ``limit`` events) with a shift injected at
    the middle (``shift``):

    - ``"rename"``: the most popular category's items get new ids from then on (the same products
      under new names: unknown to the models, so their events leave the tests);
    - ``"permute"``: in the most popular categories (the busiest, until they hold ``PERMUTED`` of
      the events before the middle), the items known before the middle swap ids among
      themselves from then on (a seeded permutation inside each category): item A's later
      events are item B's, both known, so they are still tested and the models' old knowledge
      of B (its popularity, its co-visitation paths, its factors) now misleads them;
    - ``"none"``: nothing changes (the placebo).
    """
    if shift not in ("rename", "permute", "none"):
        raise ValueError(f"shift: unknown {shift!r}")
    rows = []
    with (DATA / "userbehavior_user_sample.csv").open(newline="") as f:
        for user, item, category, kind, ts in csv.reader(f):
            rows.append((int(ts), user, item, category, kind))
    rows.sort(key=lambda r: r[0])
    rows = [r for r in rows if r[0] >= 1511539200][:limit]  # without 7 outliers of September
    mid = len(rows) // 2
    counts: dict[str, int] = {}
    for r in rows[:mid]:
        counts[r[3]] = counts.get(r[3], 0) + 1
    busiest = sorted(counts, key=lambda c: (-counts[c], c))
    mapping: dict[str, str] = {}
    if shift == "rename":
        mapping = {r[2]: "renamed-" + r[2] for r in rows[mid:] if r[3] == busiest[0]}
    elif shift == "permute":
        rng = np.random.default_rng(PERMUTE_SEED)
        covered = 0
        for category in busiest:
            if covered >= PERMUTED * mid:
                break
            covered += counts[category]
            known = sorted({r[2] for r in rows[:mid] if r[3] == category})
            if len(known) > 1:
                order = rng.permutation(len(known))
                mapping.update((known[i], known[j]) for i, j in enumerate(order.tolist()))
    events = []
    for n, (ts, user, item, category, kind) in enumerate(rows):
        if n >= mid:
            item = mapping.get(item, item)
        events.append(
            {
                "type": TAOBAO_TYPES[kind],
                "user_id": user,
                "item_id": item,
                "timestamp": ts,
                "context": {"category": category},
            }
        )
    return events, mid


class Probe:
    """A read-only monitor of the processor: the ensemble's Recall@10 on every ``every``-th
    testable event, as the models stood before it. It feeds nothing back (no weights, no
    detectors), so the engine runs exactly as without it."""

    name = "bench_probe"

    def __init__(self, engine: Engine, every: int = PROBE_EVERY) -> None:
        q = engine.quality
        top_k = {"ensemble": engine.recommender.top_k}
        self.quality = LiveQuality(engine.state, top_k, engine.recommender.excluded, q.k, 1, every)
        self.tested: list[tuple[int, bool]] = []

    def due(self, first_offset: int, n: int) -> np.ndarray:
        return self.quality.due(first_offset, n)

    def observe(self, event: Any, offset: int) -> None:
        if self.quality.test(event):
            self.tested.append((offset, self.quality.last_hits()["ensemble"]))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        pass


def reset(engine: Engine, before: float) -> None:
    """The most any recalibration can do (the bound's run): every model as a new engine's, of
    the same settings, and co-visitation no longer reads the shoppers' items touched before
    event time ``before`` as sources. What is kept is what no model learned: the shoppers'
    recent items and sessions, the id maps, the ensemble's weights."""
    for model in engine.processor.models:
        model.load_state_dict(type(model)(**model.params()).state_dict())
        if hasattr(model, "discount_history"):
            model.discount_history(before, 0.0)


def run(events: list[dict[str, Any]], on: bool, reset_at: int | None = None) -> dict[str, Any]:
    """Feed ``events`` through an engine; the probe's tested offsets and hits, detections.
    ``reset_at`` (a multiple of ``BATCH``): ``reset`` the models just before that event."""
    if reset_at is not None and reset_at % BATCH:
        raise ValueError(f"reset_at must be a multiple of {BATCH}, got {reset_at}")
    engine = Engine.open(None, live_eval_every=EVERY, drift_detection=on)
    probe = Probe(engine)
    engine.processor.monitors.insert(0, probe)  # tests before the live tests of the same event
    tested = probe.tested
    t = time.perf_counter()
    for i in range(0, len(events), BATCH):
        if i == reset_at:
            reset(engine, float(events[i]["timestamp"]))
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


SCENARIOS = ("abrupt", "gradual", "new_category", "seasonal", "stationary")
LONG = {"abrupt", "gradual"}  # run to 3 x the shift point: "off" comes back within the stream
HISTORY = ("abrupt-long", "gradual-long")  # the same shifts after twice the history
TAOBAO = ("taobao+permute", "taobao+remap", "taobao")
SHIFTS = {"taobao+permute": "permute", "taobao+remap": "rename", "taobao": "none"}
RAMP = 10  # gradual's shift lasts n / RAMP events
OPTIONAL = {"recovery_reset", "sooner_reset"}  # columns of --bound only
PLACEBO = {"taobao"}  # no shift injected: recovery read at the midpoint, every detection false


def streams_of(names: list[str], n: int, seed: int, quick: bool) -> list[tuple[str, list, int]]:
    """``(name, events, shift point)`` of the streams asked for, built only when asked. The
    scenarios shift at ``n / 2``; abrupt and gradual run to ``3 n / 2`` (``LONG``: without drift
    handling Recall@10 takes longer than ``n / 2`` events to come back there), the others to
    ``n``; the ``HISTORY`` streams shift at ``n`` and run to ``2.6 n``."""
    out: list[tuple[str, list, int]] = []
    for name in names:
        if name in SCENARIOS or name in HISTORY:
            at = n if name in HISTORY else n // 2  # HISTORY: "off" back within 1.6 n after it
            size = n * 26 // 10 if name in HISTORY else 3 * at if name in LONG else n
            kind = name.removesuffix("-long")
            scenario = DriftScenario(kind, seed=seed, shift_at=at, span=n // RAMP, period=2 * at)
            out.append((name, scenario.take(size), at))
        elif not (DATA / "userbehavior_user_sample.csv").exists():
            log(f"skipping {name}: {DATA} not found")
        else:
            events, at = taobao_with_shift(n if quick else None, SHIFTS[name])
            out.append((name, events, at))
    return out


def shift_end(name: str, at: int, n: int) -> int:
    """The first batch boundary (``BATCH``) where the shift of scenario stream ``name`` at ``at``
    is complete: gradual's ramp lasts ``n / RAMP`` events."""
    end = at + (n // RAMP if name.startswith("gradual") else 0)
    return -(-end // BATCH) * BATCH


def recovery_vs(r: dict[str, Any], ref: dict[str, Any], shift: int, n: int) -> int | str:
    """Like ``recovery``, against a run of the same stream without the shift: events after the
    shift until Recall@10 over the last ``WINDOW`` events is back at 90 % of the reference's over
    the same window (the data's own drift is then in both)."""
    dropped = False
    for end in range(shift + WINDOW // 5, n + 1, WINDOW // 10):
        mine = r["hits"][(r["offsets"] >= max(shift, end - WINDOW)) & (r["offsets"] < end)]
        theirs = ref["hits"][(ref["offsets"] >= max(shift, end - WINDOW)) & (ref["offsets"] < end)]
        if mine.size < 40 or theirs.size < 40:
            continue
        if mine.mean() < 0.9 * theirs.mean():
            dropped = True
        elif dropped:
            return end - shift
    return "never" if dropped else "no drop"


def mean_after(r: dict[str, Any], shift: int) -> float:
    """Recall@10 over the ``AFTER`` events after the shift (both runs test the same events up to
    the first detection, and nearly the same after it: a paired comparison)."""
    inside = (r["offsets"] >= shift) & (r["offsets"] < shift + AFTER)
    return float(r["hits"][inside].mean()) if inside.any() else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = parser("Drift detection delay, false alarms and recovery, drift handling on vs off.")
    p.add_argument(
        "--streams",
        default=",".join(SCENARIOS + HISTORY + TAOBAO),
        help=f"comma-separated streams (default all: {','.join(SCENARIOS + HISTORY + TAOBAO)})",
    )
    p.add_argument(
        "--bound",
        action="store_true",
        help="run abrupt and gradual (and their long twins) a third time, drift handling off "
        "and every model reset where the shift ends: the most any recalibration could do",
    )
    args = p.parse_args(argv)
    names = [s.strip() for s in args.streams.split(",") if s.strip()]
    if unknown := set(names) - set(SCENARIOS + HISTORY + TAOBAO):
        p.error(f"unknown streams {sorted(unknown)}")
    logging.getLogger("freshrec").setLevel(logging.ERROR)  # detections are counted, not logged
    n = 40_000 if args.quick else 100_000
    rows, details, runs = [], {}, {}
    for name, events, mid in streams_of(names, n, args.seed, args.quick):
        log(f"{name}: {len(events)} events")
        on, off = run(events, True), run(events, False)
        runs[name] = on, off, mid, len(events)
        shifted = name not in ("stationary", *PLACEBO)
        at = mid if shifted else None
        before = [d for d in on["detections"] if at is None or d < at]
        after = [d for d in on["detections"] if at is not None and d >= at]
        delay = after[0] - at if after and at is not None else None if at is None else "missed"
        row: dict[str, Any] = {
            "stream": name,
            "events": len(events),
            "shift_at": at if name != "taobao" else f"(none) {mid:,}",
            "detections": len(on["detections"]),
            "delay": delay,
            "false_alarms_per_100k": len(before) * 100_000 / (at or len(events)),
        }
        if name != "stationary":
            level, rec_on = recovery(on, mid, len(events))
            _, rec_off = recovery(off, mid, len(events))
            offsets = on["offsets"]
            tests = int(((offsets >= mid - WINDOW) & (offsets < mid)).sum())
            row.update(pre_recall=level, tests=tests, recovery_on=rec_on, recovery_off=rec_off)
            if isinstance(rec_on, int) and isinstance(rec_off, int):
                row["sooner"] = f"{rec_off / rec_on:.2f} x"  # the budget: at least 2 x
            row.update(after_on=mean_after(on, mid), after_off=mean_after(off, mid))
            if args.bound and name.removesuffix("-long") in LONG:
                bound = run(events, False, reset_at=shift_end(name, mid, n))
                _, rec_reset = recovery(bound, mid, len(events))
                row["recovery_reset"] = rec_reset
                if isinstance(rec_reset, int) and isinstance(rec_off, int):
                    row["sooner_reset"] = f"{rec_off / rec_reset:.2f} x"
        row["seconds_on"], row["seconds_off"] = round(on["seconds"], 1), round(off["seconds"], 1)
        rows.append(row)
        details[name] = {
            **row,
            "first_detections": list(zip(on["detections"][:10], on["signals"][:10], strict=True)),
        }
    for name in ("taobao+permute", "taobao+remap"):  # against the same models, nothing injected
        if name not in runs or "taobao" not in runs:
            continue
        on, off, mid, count = runs[name]
        placebo = runs["taobao"][1]
        row = next(r for r in rows if r["stream"] == name)
        row["vs_placebo_on"] = recovery_vs(on, placebo, mid, count)
        row["vs_placebo_off"] = recovery_vs(off, placebo, mid, count)
        details[name].update(vs_placebo_on=row["vs_placebo_on"])
        details[name].update(vs_placebo_off=row["vs_placebo_off"])
    print(table(rows))
    sudden = ("abrupt", "abrupt-long", "new_category", "taobao+permute", "taobao+remap")
    abrupt = [r["delay"] for r in rows if r["stream"] in sudden]
    worst = max((d if isinstance(d, int) else float("inf")) for d in abrupt) if abrupt else 0
    headline = f"worst detection delay after an abrupt shift {worst:,.0f} events"
    result = make_result("drift", worst, headline, args.quick, {"streams": details})
    full = not args.quick and names == list(SCENARIOS + HISTORY + TAOBAO)
    return report(result, args.json or (OUT_DIR / "drift.json" if full else None))


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
        ("tests", "tests in it"),
        ("recovery_on", "back to 90 %: on"),
        ("recovery_off", "off"),
        ("sooner", "off / on"),
        ("recovery_reset", "reset: back"),
        ("sooner_reset", "off / reset"),
        ("vs_placebo_on", "vs placebo: on"),
        ("vs_placebo_off", "off"),
        ("after_on", "Recall@10 over 20k after: on"),
        ("after_off", "off"),
    ]
    cols = [c for c in cols if c[0] not in OPTIONAL or any(c[0] in r for r in rows)]
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
