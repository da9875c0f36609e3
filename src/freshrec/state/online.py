"""Each user's recent items, current session and purchases, updated per micro-batch.

Event time drives sessions: without a ``session_id`` a new session starts after
``session_gap_seconds`` of inactivity (by the events' own timestamps), so replaying a log gives
the same sessions as live traffic did. The per-event work is one numba kernel over the batch.

Besides recent items, each user keeps the start and event count of their current session and the
time of each recent item (``rec_ts``, whole seconds in a uint32: 4 bytes a slot, good until 2106);
each item keeps its last known category and price (from events' context,
``freshrec.features.context``). "When did this user last touch category c" is derived from the
ring of their last ``recent_items`` items and the items' current categories, so it costs no
memory per (user, category) pair -- but it forgets a category the user has not touched within
their last ``recent_items`` items, and follows an item that changes category.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter

import numba
import numpy as np

from freshrec.events import EventType, LoggedEvent
from freshrec.features.context import Context, enrich_many
from freshrec.registry.mapped import copied
from freshrec.state.arrays import grow
from freshrec.state.batch import Batch
from freshrec.state.ids import IdMap

_NO_FLAG, _SAME, _NEW = -1, 0, 1
_USER_ID, _ITEM_ID, _SESSION_ID, _CONTEXT = (
    attrgetter(name) for name in ("user_id", "item_id", "session_id", "context")
)
_TYPE, _TS = attrgetter("type"), attrgetter("ts")
POSITIVE_RATING = 3.5  # a rating event at or above this is a positive signal
_MAX_TS = float(2**32 - 1)  # rec_ts holds whole seconds in a uint32


@numba.njit(cache=True, nogil=True)
def _recent_categories(
    rec_item, rec_ts, count, u, item_category, out_cat, out_ts
):  # pragma: no cover - compiled
    """Distinct categories of user ``u``'s ring, most recent first, with the time each was last
    touched; returns how many were written (at most ``out_cat.shape[0]``)."""
    R = rec_item.shape[1]
    M = out_cat.shape[0]
    n = 0
    for back in range(min(count, R)):
        if n == M:
            break
        slot = (count - 1 - back) % R
        cat = item_category[rec_item[u, slot]]
        if cat < 0:
            continue
        seen = False
        for m in range(n):
            if out_cat[m] == cat:
                seen = True
                break
        if not seen:
            out_cat[n] = cat
            out_ts[n] = rec_ts[u, slot]
            n += 1
    return n


@numba.njit(cache=True, nogil=True)
def _recent_distinct(
    rec_item, rec_type, rec_session, rec_ts, session, count, u, out_item, out_type, out_in, out_ts
):  # pragma: no cover - compiled
    """User ``u``'s distinct items of the ring, most recent first (a repeat keeps its latest
    place), with type, whether in session ``session`` and time; returns how many (at most
    ``out_item.shape[0]``)."""
    R = rec_item.shape[1]
    M = out_item.shape[0]
    n = 0
    for back in range(min(count, R)):
        if n == M:
            break
        slot = (count - 1 - back) % R
        item = rec_item[u, slot]
        seen = False
        for m in range(n):
            if out_item[m] == item:
                seen = True
                break
        if not seen:
            out_item[n] = item
            out_type[n] = rec_type[u, slot]
            out_in[n] = rec_session[u, slot] == session
            out_ts[n] = rec_ts[u, slot]
            n += 1
    return n


@numba.njit(cache=True, nogil=True)
def _view(
    rec_item, rec_type, rec_session, rec_ts, session, count, u, size, item_category, window
):  # pragma: no cover - compiled
    """What a ``UserView`` reads of user ``u``'s ring in one call: up to ``size`` distinct
    recent items (``_recent_distinct``: type, in session ``session``, time) and up to
    ``window`` distinct recent categories with their times (``_recent_categories``)."""
    items = np.empty(size, dtype=rec_item.dtype)
    types = np.empty(size, dtype=rec_type.dtype)
    in_session = np.empty(size, dtype=np.bool_)
    recent_ts = np.empty(size, dtype=np.float64)
    n = _recent_distinct(
        rec_item,
        rec_type,
        rec_session,
        rec_ts,
        session,
        count,
        u,
        items,
        types,
        in_session,
        recent_ts,
    )
    categories = np.full(window, -1, dtype=np.int32)
    category_ts = np.zeros(window, dtype=np.float64)
    found = 0
    if window > 0:
        found = _recent_categories(
            rec_item, rec_ts, count, u, item_category, categories, category_ts
        )
    return (
        items[:n],
        types[:n],
        in_session[:n],
        recent_ts[:n],
        categories[:found],
        category_ts[:found],
    )


@numba.njit(cache=True, nogil=True)
def _advance(
    users,
    items,
    types,
    ts,
    weight,
    flags,
    ev_category,
    ev_price,
    ev_bucket,
    gap,
    with_categories,
    last_ts,
    session_no,
    session_start,
    session_events,
    rec_item,
    rec_type,
    rec_session,
    rec_ts,
    rec_count,
    item_category,
    item_price,
    item_bucket,
    prev_items,
    prev_types,
    new_session,
    out_category,
    out_bucket,
    out_session_events,
    out_since_last,
    out_recent_cat,
    out_recent_ts,
):  # pragma: no cover - compiled
    R = rec_item.shape[1]
    W = prev_items.shape[1]
    for k in range(users.shape[0]):
        u = users[k]
        i = items[k]
        t = ts[k]
        if ev_category[k] >= 0:
            item_category[i] = ev_category[k]
        if ev_bucket[k] > 0:
            item_price[i] = ev_price[k]
            item_bucket[i] = ev_bucket[k]
        out_category[k] = item_category[i]
        out_bucket[k] = item_bucket[i]
        c = rec_count[u]
        flag = flags[k]
        new = (c == 0 or t - last_ts[u] > gap) if flag == -1 else (flag == 1 or c == 0)
        out_since_last[k] = max(t - last_ts[u], 0.0) if session_no[u] > 0 else np.inf
        if new:
            session_no[u] += 1
            session_start[u] = t
            session_events[u] = 0
        new_session[k] = new
        out_session_events[k] = session_events[u]
        session_events[u] += 1
        if t > last_ts[u] or c == 0:
            last_ts[u] = t
        s = session_no[u]
        for back in range(min(c, R, W)):
            slot = (c - 1 - back) % R
            if rec_session[u, slot] != s:
                break
            prev_items[k, back] = rec_item[u, slot]
            prev_types[k, back] = rec_type[u, slot]
        if weight[k] > 0:
            if with_categories:
                _recent_categories(
                    rec_item, rec_ts, c, u, item_category, out_recent_cat[k], out_recent_ts[k]
                )
            slot = c % R
            rec_item[u, slot] = i
            rec_type[u, slot] = types[k]
            rec_session[u, slot] = s
            rec_ts[u, slot] = np.uint32(min(max(t, 0.0), _MAX_TS))
            rec_count[u] = c + 1


@numba.njit(cache=True, nogil=True)
def _fnv1a(data, ends, out):  # pragma: no cover - compiled
    """64-bit FNV-1a of each ``data[ends[k-1]:ends[k]]`` into ``out`` (0 reserved: made 1)."""
    start = 0
    for k in range(ends.shape[0]):
        h = np.uint64(0xCBF29CE484222325)
        for j in range(start, ends[k]):
            h = (h ^ np.uint64(data[j])) * np.uint64(0x100000001B3)
        out[k] = np.int64(h) if h != 0 else np.int64(1)
        start = ends[k]


@numba.njit(cache=True, nogil=True)
def _flag_sessions(users, keys, store, out):  # pragma: no cover - compiled
    """In order: an event without a session id (key 0), in its user's last session, or in a
    new one (then remembered in ``store``)."""
    for k in range(users.shape[0]):
        if keys[k] == 0:
            out[k] = _NO_FLAG
            continue
        u = users[k]
        out[k] = _SAME if store[u] == keys[k] else _NEW
        store[u] = keys[k]


def session_keys(ids: list[str | None]) -> np.ndarray:
    """A stable 64-bit key (FNV-1a of the UTF-8 bytes) of each session id; 0 for None. The
    ids go to the hash as one string: their lengths in characters are their lengths in bytes
    unless one is not ASCII, which is then encoded on its own."""
    texts = [i or "" for i in ids]
    joined = "".join(texts)
    data = joined.encode()
    if len(data) == len(joined):
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    else:
        parts = [t.encode() for t in texts]
        data = b"".join(parts)
        lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    keys = np.empty(len(texts), dtype=np.int64)
    _fnv1a(np.frombuffer(data, dtype=np.uint8), np.cumsum(lengths), keys)
    keys[np.fromiter((i is None for i in ids), dtype=np.bool_, count=len(ids))] = 0
    return keys


def _empty(dtype: type) -> np.ndarray:
    return np.zeros(0, dtype=dtype)


@dataclass(slots=True)
class UserView:
    """What serving knows of a user: recent items (most recent first), purchases, session and
    the request's context.

    ``recent_ts`` is when each recent item was last touched; ``recent_categories`` the distinct
    categories of the user's recent items, most recent first, and ``category_ts`` when each was
    last touched; ``session_events`` counts the events of the user's current session (0 if it
    has ended by ``context.ts``, else by ``now``); ``context`` is the request's enriched context
    (None if the caller gave none).
    """

    index: int  # -1 for a user never seen
    recent_items: np.ndarray  # int32, distinct, most recent first
    recent_types: np.ndarray  # int8, type code of the latest interaction with each
    in_session: np.ndarray  # bool, whether that interaction is in the current session
    purchased: set[int] = field(default_factory=set)
    now: float = 0.0
    memo: dict[str, object] = field(default_factory=dict)  # per-request results models share
    recent_ts: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    recent_categories: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    category_ts: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    last_ts: float = -np.inf  # time of the user's latest event
    session_start: float = -np.inf
    session_events: int = 0
    context: Context | None = None


class OnlineState:
    """Id maps and per-user online features for embedded mode (snapshot + log replay)."""

    def __init__(
        self,
        recent_items: int = 20,
        session_window: int = 10,
        session_gap_seconds: float = 1800.0,
        type_weights: Sequence[float] = (),
        category_window: int = 8,
    ) -> None:
        if category_window < 0:
            raise ValueError(f"category_window must be >= 0, got {category_window!r}")
        self.recent_items = recent_items
        self.session_window = session_window
        self.session_gap_seconds = session_gap_seconds
        self.category_window = category_window
        self.type_weights = np.asarray(type_weights, dtype=np.float64)
        self.users = IdMap()
        self.items = IdMap()
        self.session_key = np.zeros(0, dtype=np.int64)  # hash of the last session id, 0: none
        self.purchased: dict[int, set[int]] = {}
        self.last_ts = np.zeros(0, dtype=np.float64)
        self.session_no = np.zeros(0, dtype=np.int32)
        self.session_start = np.zeros(0, dtype=np.float64)
        self.session_events = np.zeros(0, dtype=np.int32)
        self.rec_item = np.full((0, recent_items), -1, dtype=np.int32)
        self.rec_type = np.zeros((0, recent_items), dtype=np.int8)
        self.rec_session = np.zeros((0, recent_items), dtype=np.int32)
        self.rec_ts = np.zeros((0, recent_items), dtype=np.uint32)  # whole seconds
        self.rec_count = np.zeros(0, dtype=np.int64)
        self.item_events = np.zeros(0, dtype=np.int64)
        self._categories = False  # whether any item has a category yet
        self.item_category = np.zeros(0, dtype=np.int32)  # -1 unknown
        self.item_price = np.zeros(0, dtype=np.float64)  # -1 unknown
        self.item_price_bucket = np.zeros(0, dtype=np.int8)  # 0 unknown
        self.max_ts = 0.0

    def _ensure(self, n_users: int, n_items: int) -> None:
        self.session_key = grow(self.session_key, n_users)
        self.last_ts = grow(self.last_ts, n_users)
        self.session_no = grow(self.session_no, n_users)
        self.session_start = grow(self.session_start, n_users)
        self.session_events = grow(self.session_events, n_users)
        self.rec_item = grow(self.rec_item, n_users, fill=-1)
        self.rec_type = grow(self.rec_type, n_users)
        self.rec_session = grow(self.rec_session, n_users)
        self.rec_ts = grow(self.rec_ts, n_users)
        self.rec_count = grow(self.rec_count, n_users)
        self.item_events = grow(self.item_events, n_items)
        self.item_category = grow(self.item_category, n_items, fill=-1)
        self.item_price = grow(self.item_price, n_items, fill=-1.0)
        self.item_price_bucket = grow(self.item_price_bucket, n_items)

    def advance(self, events: list[LoggedEvent]) -> Batch:
        """Map ids, update sessions and recent items; return the batch for the models."""
        n = len(events)
        users = self.users.indices(list(map(_USER_ID, events)))
        items = self.items.indices(list(map(_ITEM_ID, events)))
        types = np.fromiter(map(_TYPE, events), dtype=np.int8, count=n)
        ts = np.fromiter(map(_TS, events), dtype=np.float64, count=n)
        self._ensure(len(self.users), len(self.items))
        flags = self._session_flags(users, list(map(_SESSION_ID, events)))
        weight = self.weights_of(events, types)
        context = enrich_many(list(map(_CONTEXT, events)), ts)
        W, C = self.session_window, self.category_window
        prev_items = np.full((n, W), -1, dtype=np.int32)
        prev_types = np.zeros((n, W), dtype=np.int8)
        new_session = np.zeros(n, dtype=np.bool_)
        category = np.empty(n, dtype=np.int32)
        bucket = np.empty(n, dtype=np.int8)
        session_events = np.empty(n, dtype=np.int32)
        since_last = np.empty(n, dtype=np.float64)
        recent_cat = np.full((n, C), -1, dtype=np.int32)
        recent_ts = np.zeros((n, C), dtype=np.float64)
        self._categories = self._categories or bool((context.category >= 0).any())
        _advance(
            users,
            items,
            types,
            ts,
            weight,
            flags,
            context.category,
            context.price,
            context.price_bucket,
            self.session_gap_seconds,
            self._categories and C > 0,
            self.last_ts,
            self.session_no,
            self.session_start,
            self.session_events,
            self.rec_item,
            self.rec_type,
            self.rec_session,
            self.rec_ts,
            self.rec_count,
            self.item_category,
            self.item_price,
            self.item_price_bucket,
            prev_items,
            prev_types,
            new_session,
            category,
            bucket,
            session_events,
            since_last,
            recent_cat,
            recent_ts,
        )
        np.add.at(self.item_events, items, 1)
        for k in np.flatnonzero(types == EventType.purchase):
            self.purchased.setdefault(int(users[k]), set()).add(int(items[k]))
        if n:
            self.max_ts = max(self.max_ts, float(ts.max()))
        return Batch(
            users,
            items,
            types,
            ts,
            weight,
            new_session,
            prev_items,
            prev_types,
            len(self.users),
            len(self.items),
            device=context.device,
            country=context.country,
            hour=context.hour,
            weekday=context.weekday,
            category=category,
            price_bucket=bucket,
            session_events=session_events,
            since_last=since_last,
            recent_categories=recent_cat,
            category_ts=recent_ts,
        )

    def _session_flags(self, users: np.ndarray, session_ids: list[str | None]) -> np.ndarray:
        """Per event: no session id, the user's session as before, or a new one (remembered
        as a 64-bit hash of the id: at a million shoppers the ids themselves took 100 MB)."""
        n = len(session_ids)
        if session_ids.count(None) == n:
            return np.full(n, _NO_FLAG, dtype=np.int8)
        flags = np.empty(n, dtype=np.int8)
        _flag_sessions(users, session_keys(session_ids), self.session_key, flags)
        return flags

    def weights_of(self, events: list[LoggedEvent], types: np.ndarray | None = None) -> np.ndarray:
        """Model weight of each event: its type's weight; ratings below 3.5 weigh nothing."""
        if types is None:
            types = np.fromiter((e.type for e in events), dtype=np.int8, count=len(events))
        weight = self.type_weights[types]
        rating = types == EventType.rating
        if rating.any():
            values = np.array([e.value if e.value is not None else np.nan for e in events])
            weight = np.where(rating & ~(values >= POSITIVE_RATING), 0.0, weight)
        return weight

    def view(
        self, user_id: str, max_items: int | None = None, context: Context | None = None
    ) -> UserView:
        """The user's recent distinct items, most recent first (empty for unknown users), their
        session and recent categories; ``context`` is the request's (see ``UserView``)."""
        u = self.users.get(user_id)
        empty = np.zeros(0, dtype=np.int32)
        if u is None:
            return UserView(
                -1,
                empty,
                empty.astype(np.int8),
                empty.astype(bool),
                set(),
                self.max_ts,
                context=context,
            )
        c = int(self.rec_count[u])
        size = min(c, self.recent_items, self.recent_items if max_items is None else max_items)
        items, types, in_session, recent_ts, categories, category_ts = _view(
            self.rec_item,
            self.rec_type,
            self.rec_session,
            self.rec_ts,
            self.session_no[u],
            c,
            u,
            size,
            self.item_category,
            self.category_window if self._categories else 0,
        )
        last = float(self.last_ts[u])
        at = context.ts if context is not None else self.max_ts
        live = at - last <= self.session_gap_seconds
        return UserView(
            u,
            items,
            types,
            in_session,
            self.purchased.get(u, set()),
            self.max_ts,
            recent_ts=recent_ts,
            recent_categories=categories,
            category_ts=category_ts,
            last_ts=last,
            session_start=float(self.session_start[u]),
            session_events=int(self.session_events[u]) if live else 0,
            context=context,
        )

    # -- snapshots ---------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        nu, ni = len(self.users), len(self.items)
        pu = [u for u, s in self.purchased.items() for _ in s]
        pi = [i for s in self.purchased.values() for i in s]
        return {
            "last_ts": self.last_ts[:nu],
            "session_no": self.session_no[:nu],
            "session_start": self.session_start[:nu],
            "session_events": self.session_events[:nu],
            "rec_item": self.rec_item[:nu],
            "rec_type": self.rec_type[:nu],
            "rec_session": self.rec_session[:nu],
            "rec_ts": self.rec_ts[:nu],
            "rec_count": self.rec_count[:nu],
            "item_events": self.item_events[:ni],
            "item_category": self.item_category[:ni],
            "item_price": self.item_price[:ni],
            "item_price_bucket": self.item_price_bucket[:ni],
            "purchased_user": np.asarray(pu, dtype=np.int32),
            "purchased_item": np.asarray(pi, dtype=np.int32),
            "max_ts": np.asarray([self.max_ts]),
            "session_key": self.session_key[:nu],
        }

    def documents(self) -> dict[str, object]:
        """The non-array part of the state (ids), for msgpack."""
        return {
            "users": self.users.keys(),
            "items": self.items.keys(),
        }

    def restore(self, arrays: dict[str, np.ndarray], documents: dict[str, object]) -> None:
        self.users = IdMap(documents["users"])  # type: ignore[arg-type]
        self.items = IdMap(documents["items"])  # type: ignore[arg-type]
        nu = len(self.users)
        if "session_key" in arrays:
            self.session_key = copied(arrays["session_key"])
        else:  # a snapshot from before the keys: the ids themselves, in its documents
            self.session_key = np.zeros(nu, dtype=np.int64)
            ids = list(documents.get("session_ids", ()))  # type: ignore[call-overload]
            at = np.asarray(documents.get("session_users", ()), dtype=np.int64)
            self.session_key[at] = session_keys(ids)
        for name in (
            "last_ts",
            "session_no",
            "rec_item",
            "rec_type",
            "rec_session",
            "rec_count",
            "item_events",
        ):
            setattr(self, name, copied(arrays[name]))  # a mapped snapshot's pages released
        # added later: snapshots written before them restore with "unknown"
        nu, ni = self.last_ts.shape[0], self.item_events.shape[0]
        for name, shape, fill in (
            ("session_start", (nu,), 0.0),
            ("session_events", (nu,), 0),
            ("rec_ts", self.rec_item.shape, 0.0),
            ("item_category", (ni,), -1),
            ("item_price", (ni,), -1.0),
            ("item_price_bucket", (ni,), 0),
        ):
            old = getattr(self, name)
            value = arrays.get(name)
            if value is None:
                value = np.full(shape, fill, dtype=old.dtype)
            setattr(self, name, copied(value, old.dtype))
        self._categories = bool((self.item_category >= 0).any())
        self.purchased = {}
        bought = copied(arrays["purchased_user"]), copied(arrays["purchased_item"])
        for u, i in zip(bought[0].tolist(), bought[1].tolist(), strict=True):
            self.purchased.setdefault(u, set()).add(i)
        self.max_ts = float(copied(arrays["max_ts"])[0])
