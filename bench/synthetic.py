"""Seeded synthetic shop traffic shared by every benchmark.

The workload is built column-wise with numpy (fast even for millions of events), then turned
into whatever a benchmark needs: ``LoggedEvent`` objects for the log, public event dicts, or
pre-encoded JSON bodies for ``POST /v1/events``.

Shape of the traffic:

* item popularity follows a power law (Zipf, exponent ``alpha``) over a random permutation of
  item ids, and about half of a session's events stay in the "category" of its first item
  (items ``c, c + C, c + 2C, ...``, also Zipf within the category), so co-visitation has
  structure to find;
* users have sessions (geometric length, mean ``session_events``) spread over ``days`` days,
  events inside a session tens of seconds apart; user activity is also heavy-tailed;
* ``session_id_share`` of sessions carry a ``session_id``, the rest are sessionised by the
  server's inactivity gap; every event has an ``event_id`` (so ingest pays for de-duplication)
  and a small ``context`` (device, country), as a browser SDK would send;
* event types follow ``TYPE_SHARES`` (views dominate, purchases are rare);
* ``ensure_coverage`` makes every user own at least one session and every item appear at least
  once, so "100k users x 100k items" really means that many known ids.

>>> w = generate(2_000, n_users=100, n_items=300, seed=1)
>>> len(w), int(w.users.max()) < 100, int(w.items.max()) < 300, bool((w.ts[1:] >= w.ts[:-1]).all())
(2000, True, True, True)
>>> len(set(w.items.tolist())), len(set(w.users.tolist()))
(300, 100)
>>> ev = logged_events(w, 0, 3)
>>> ev[0].user_id.startswith("u"), ev[0].item_id.startswith("i"), len(json_batches(w, 500))
(True, True, 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from freshrec.events import EVENT_TYPES, EventType, LoggedEvent

START_TS = 1_700_000_000.0  # 2023-11-14, event time of the first session

TYPE_SHARES: dict[str, float] = {
    "view": 0.62,
    "click": 0.18,
    "impression": 0.10,
    "add_to_cart": 0.05,
    "favorite": 0.02,
    "purchase": 0.02,
    "remove_from_cart": 0.01,
}
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_SHARES = (0.60, 0.35, 0.05)
COUNTRIES = ("DE", "FR", "GB", "US", "NL", "ES", "IT", "PL", "SE", "AT")
COUNTRY_SHARES = (0.25, 0.15, 0.13, 0.12, 0.08, 0.08, 0.07, 0.05, 0.04, 0.03)


@dataclass(slots=True)
class Workload:
    """Events in event-time order, one numpy column per field."""

    users: np.ndarray  # int32 user index
    items: np.ndarray  # int32 item index
    types: np.ndarray  # int8 EventType code
    ts: np.ndarray  # float64 unix seconds (ms resolution), non-decreasing
    session: np.ndarray  # int64 global session number
    has_session_id: np.ndarray  # bool: the event carries "session_id"
    device: np.ndarray  # int8 index into DEVICES
    country: np.ndarray  # int8 index into COUNTRIES
    n_users: int
    n_items: int
    seed: int
    id_prefix: str

    def __len__(self) -> int:
        return int(self.users.shape[0])


def zipf_ranks(rng: np.random.Generator, n: int, size: int, alpha: float) -> np.ndarray:
    """``size`` ranks in ``[0, n)`` with P(rank r) proportional to ``1 / (r + 1) ** alpha``."""
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** alpha
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(size)), n - 1)


def _session_lengths(rng: np.random.Generator, n_events: int, mean: float) -> np.ndarray:
    p = 1.0 / max(mean, 1.0)
    parts: list[np.ndarray] = []
    total = 0
    for _ in range(64):  # bounded; one round is almost always enough
        lengths = rng.geometric(p, size=int(n_events * p * 1.2) + 16)
        parts.append(lengths)
        total += int(lengths.sum())
        if total >= n_events:
            break
    lengths = np.concatenate(parts)
    cs = np.cumsum(lengths)
    s = int(np.searchsorted(cs, n_events)) + 1
    lengths = lengths[:s].copy()
    lengths[-1] -= int(cs[s - 1]) - n_events
    return lengths


def generate(
    n_events: int,
    n_users: int,
    n_items: int,
    seed: int = 42,
    *,
    alpha: float = 1.05,
    session_events: float = 6.0,
    days: float = 14.0,
    related_share: float = 0.5,
    session_id_share: float = 0.8,
    ensure_coverage: bool = True,
    id_prefix: str = "",
) -> Workload:
    """A seeded workload of ``n_events`` events over ``n_users`` users and ``n_items`` items."""
    if n_events <= 0 or n_users <= 0 or n_items <= 0:
        raise ValueError("n_events, n_users and n_items must be positive")
    rng = np.random.default_rng(seed)
    lengths = _session_lengths(rng, n_events, session_events)
    n_sessions = lengths.shape[0]
    session = np.repeat(np.arange(n_sessions, dtype=np.int64), lengths)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])

    # users: heavy-tailed activity over a random permutation; every user owns a session
    user_of_rank = rng.permutation(n_users).astype(np.int32)
    s_user = user_of_rank[zipf_ranks(rng, n_users, n_sessions, 0.6)]
    if ensure_coverage:
        m = min(n_users, n_sessions)
        s_user[rng.permutation(n_sessions)[:m]] = rng.permutation(n_users)[:m]
    users = s_user[session]

    # time: sessions start uniformly over the period, events ~40 s apart inside a session
    s_start = START_TS + rng.random(n_sessions) * days * 86_400.0
    dt = rng.exponential(40.0, n_events)
    dt[first] = 0.0
    c = np.cumsum(dt)
    ts = np.round(s_start[session] + c - c[first][session], 3)

    # items: global power law, or Zipf inside the category of the session's first item
    item_of_rank = rng.permutation(n_items).astype(np.int32)
    items = item_of_rank[zipf_ranks(rng, n_items, n_events, alpha)]
    n_cat = max(1, n_items // 100)
    cat = items[first][session] % n_cat
    per_cat = math.ceil(n_items / n_cat)
    related = rng.random(n_events) < related_share
    related[first] = False
    r = zipf_ranks(rng, per_cat, n_events, alpha)
    in_cat = cat + n_cat * r
    in_cat = np.where(in_cat < n_items, in_cat, cat)
    items = np.where(related, in_cat, items).astype(np.int32)
    if ensure_coverage:
        m = min(n_items, n_events)
        items[rng.permutation(n_events)[:m]] = rng.permutation(n_items)[:m]

    names = list(TYPE_SHARES)
    shares = np.asarray([TYPE_SHARES[t] for t in names])
    codes = np.asarray([int(EventType[t]) for t in names], dtype=np.int8)
    types = codes[rng.choice(len(names), size=n_events, p=shares / shares.sum())]

    has_sid = (rng.random(n_sessions) < session_id_share)[session]
    device = rng.choice(len(DEVICES), size=n_sessions, p=DEVICE_SHARES).astype(np.int8)[session]
    country = rng.choice(len(COUNTRIES), size=n_sessions, p=COUNTRY_SHARES).astype(np.int8)[session]

    order = np.argsort(ts, kind="stable")
    return Workload(
        users[order],
        items[order],
        types[order],
        ts[order],
        session[order],
        has_sid[order],
        device[order],
        country[order],
        n_users,
        n_items,
        seed,
        id_prefix or f"b{seed}-",
    )


def _contexts() -> list[list[dict[str, str]]]:
    return [[{"device": d, "country": c} for c in COUNTRIES] for d in DEVICES]


def _columns(w: Workload, start: int, stop: int) -> tuple[list[Any], ...]:
    sl = slice(start, stop)
    sids = [
        f"s{s}" if h else None
        for s, h in zip(w.session[sl].tolist(), w.has_session_id[sl].tolist(), strict=True)
    ]
    return (
        w.types[sl].tolist(),
        w.users[sl].tolist(),
        w.items[sl].tolist(),
        w.ts[sl].tolist(),
        sids,
        w.device[sl].tolist(),
        w.country[sl].tolist(),
    )


def logged_events(w: Workload, start: int = 0, stop: int | None = None) -> list[LoggedEvent]:
    """Events ``start:stop`` as the log stores them (already validated and normalised)."""
    stop = len(w) if stop is None else min(stop, len(w))
    ctx = _contexts()
    types, users, items, ts, sids, dev, cty = _columns(w, start, stop)
    p = w.id_prefix
    return [
        LoggedEvent(t, f"u{u}", f"i{i}", x, f"{p}{k}", s, ctx[d][c])
        for k, t, u, i, x, s, d, c in zip(
            range(start, stop), types, users, items, ts, sids, dev, cty, strict=True
        )
    ]


def event_dicts(w: Workload, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
    """Events ``start:stop`` in their public JSON form (DESIGN §3)."""
    stop = len(w) if stop is None else min(stop, len(w))
    ctx = _contexts()
    types, users, items, ts, sids, dev, cty = _columns(w, start, stop)
    p = w.id_prefix
    out = []
    for k, t, u, i, x, s, d, c in zip(
        range(start, stop), types, users, items, ts, sids, dev, cty, strict=True
    ):
        e = {
            "event_id": f"{p}{k}",
            "type": EVENT_TYPES[t],
            "user_id": f"u{u}",
            "item_id": f"i{i}",
            "timestamp": x,
            "context": ctx[d][c],
        }
        if s is not None:
            e["session_id"] = s
        out.append(e)
    return out


def json_batches(w: Workload, batch: int = 500, limit: int | None = None) -> list[bytes]:
    """``{"events": [...]}`` bodies of ``batch`` events each (at most ``limit`` bodies)."""
    encoder = msgspec.json.Encoder()
    n = len(w) if limit is None else min(len(w), limit * batch)
    return [encoder.encode({"events": event_dicts(w, s, s + batch)}) for s in range(0, n, batch)]


def summary(w: Workload) -> dict[str, Any]:
    """Counts and shares that describe a workload (for the results file)."""
    counts = np.bincount(w.types.astype(np.int64), minlength=len(EVENT_TYPES))
    item_counts = np.bincount(w.items, minlength=w.n_items)
    top1 = np.sort(item_counts)[::-1][: max(1, w.n_items // 100)].sum() / max(len(w), 1)
    return {
        "events": len(w),
        "users": int(np.unique(w.users).shape[0]),
        "items": int(np.unique(w.items).shape[0]),
        "sessions": int(np.unique(w.session).shape[0]),
        "type_shares": {
            EVENT_TYPES[i]: round(float(c) / max(len(w), 1), 4) for i, c in enumerate(counts) if c
        },
        "top_1pct_items_event_share": round(float(top1), 3),
        "seed": w.seed,
    }
