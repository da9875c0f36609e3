"""Each user's recent items, current session and purchases, updated per micro-batch.

Event time drives sessions: without a ``session_id`` a new session starts after
``session_gap_seconds`` of inactivity (by the events' own timestamps), so replaying a log gives
the same sessions as live traffic did. The per-event work is one numba kernel over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numba
import numpy as np

from freshrec.events import EventType, LoggedEvent
from freshrec.state.arrays import grow
from freshrec.state.batch import Batch
from freshrec.state.ids import IdMap

_NO_FLAG, _SAME, _NEW = -1, 0, 1
POSITIVE_RATING = 3.5  # a rating event at or above this is a positive signal


@numba.njit(cache=True, nogil=True)
def _advance(
    users,
    items,
    types,
    ts,
    weight,
    flags,
    gap,
    last_ts,
    session_no,
    rec_item,
    rec_type,
    rec_session,
    rec_count,
    prev_items,
    prev_types,
    new_session,
):  # pragma: no cover - compiled
    R = rec_item.shape[1]
    W = prev_items.shape[1]
    for k in range(users.shape[0]):
        u = users[k]
        t = ts[k]
        c = rec_count[u]
        flag = flags[k]
        new = (c == 0 or t - last_ts[u] > gap) if flag == -1 else (flag == 1 or c == 0)
        if new:
            session_no[u] += 1
        new_session[k] = new
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
            slot = c % R
            rec_item[u, slot] = items[k]
            rec_type[u, slot] = types[k]
            rec_session[u, slot] = s
            rec_count[u] = c + 1


@dataclass(slots=True)
class UserView:
    """What serving knows of a user: recent items (most recent first) and purchases."""

    index: int  # -1 for a user never seen
    recent_items: np.ndarray  # int32, distinct, most recent first
    recent_types: np.ndarray  # int8, type code of the latest interaction with each
    in_session: np.ndarray  # bool, whether that interaction is in the current session
    purchased: set[int] = field(default_factory=set)
    now: float = 0.0
    memo: dict[str, object] = field(default_factory=dict)  # per-request results models share


class OnlineState:
    """Id maps and per-user online features for embedded mode (snapshot + log replay)."""

    def __init__(
        self,
        recent_items: int = 20,
        session_window: int = 10,
        session_gap_seconds: float = 1800.0,
        type_weights: Sequence[float] = (),
    ) -> None:
        self.recent_items = recent_items
        self.session_window = session_window
        self.session_gap_seconds = session_gap_seconds
        self.type_weights = np.asarray(type_weights, dtype=np.float64)
        self.users = IdMap()
        self.items = IdMap()
        self._sessions: dict[int, str] = {}
        self.purchased: dict[int, set[int]] = {}
        self.last_ts = np.zeros(0, dtype=np.float64)
        self.session_no = np.zeros(0, dtype=np.int32)
        self.rec_item = np.full((0, recent_items), -1, dtype=np.int32)
        self.rec_type = np.zeros((0, recent_items), dtype=np.int8)
        self.rec_session = np.zeros((0, recent_items), dtype=np.int32)
        self.rec_count = np.zeros(0, dtype=np.int64)
        self.item_events = np.zeros(0, dtype=np.int64)
        self.max_ts = 0.0

    def _ensure(self, n_users: int, n_items: int) -> None:
        self.last_ts = grow(self.last_ts, n_users)
        self.session_no = grow(self.session_no, n_users)
        self.rec_item = grow(self.rec_item, n_users, fill=-1)
        self.rec_type = grow(self.rec_type, n_users)
        self.rec_session = grow(self.rec_session, n_users)
        self.rec_count = grow(self.rec_count, n_users)
        self.item_events = grow(self.item_events, n_items)

    def advance(self, events: list[LoggedEvent]) -> Batch:
        """Map ids, update sessions and recent items; return the batch for the models."""
        n = len(events)
        users = self.users.indices([e.user_id for e in events])
        items = self.items.indices([e.item_id for e in events])
        types = np.fromiter((e.type for e in events), dtype=np.int8, count=n)
        ts = np.fromiter((e.ts for e in events), dtype=np.float64, count=n)
        flags = np.full(n, _NO_FLAG, dtype=np.int8)
        sessions = self._sessions
        for k, e in enumerate(events):
            sid = e.session_id
            if sid is not None:
                u = int(users[k])
                flags[k] = _SAME if sessions.get(u) == sid else _NEW
                sessions[u] = sid
        weight = self.weights_of(events, types)
        self._ensure(len(self.users), len(self.items))
        W = self.session_window
        prev_items = np.full((n, W), -1, dtype=np.int32)
        prev_types = np.zeros((n, W), dtype=np.int8)
        new_session = np.zeros(n, dtype=np.bool_)
        _advance(
            users,
            items,
            types,
            ts,
            weight,
            flags,
            self.session_gap_seconds,
            self.last_ts,
            self.session_no,
            self.rec_item,
            self.rec_type,
            self.rec_session,
            self.rec_count,
            prev_items,
            prev_types,
            new_session,
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
        )

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

    def view(self, user_id: str, max_items: int | None = None) -> UserView:
        """The user's recent distinct items, most recent first (empty for unknown users)."""
        u = self.users.get(user_id)
        empty = np.zeros(0, dtype=np.int32)
        if u is None:
            return UserView(
                -1, empty, empty.astype(np.int8), empty.astype(bool), set(), self.max_ts
            )
        c = int(self.rec_count[u])
        R = self.recent_items
        slots = (c - 1 - np.arange(min(c, R))) % R
        items = self.rec_item[u, slots]
        types = self.rec_type[u, slots]
        in_session = self.rec_session[u, slots] == self.session_no[u]
        _, first = np.unique(items, return_index=True)
        keep = np.sort(first)[:max_items]
        return UserView(
            u, items[keep], types[keep], in_session[keep], self.purchased.get(u, set()), self.max_ts
        )

    # -- snapshots ---------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        nu, ni = len(self.users), len(self.items)
        pu = [u for u, s in self.purchased.items() for _ in s]
        pi = [i for s in self.purchased.values() for i in s]
        return {
            "last_ts": self.last_ts[:nu],
            "session_no": self.session_no[:nu],
            "rec_item": self.rec_item[:nu],
            "rec_type": self.rec_type[:nu],
            "rec_session": self.rec_session[:nu],
            "rec_count": self.rec_count[:nu],
            "item_events": self.item_events[:ni],
            "purchased_user": np.asarray(pu, dtype=np.int32),
            "purchased_item": np.asarray(pi, dtype=np.int32),
            "max_ts": np.asarray([self.max_ts]),
        }

    def documents(self) -> dict[str, object]:
        """The non-array part of the state (ids), for msgpack."""
        return {
            "users": self.users.keys(),
            "items": self.items.keys(),
            "session_users": list(self._sessions),
            "session_ids": list(self._sessions.values()),
        }

    def restore(self, arrays: dict[str, np.ndarray], documents: dict[str, object]) -> None:
        self.users = IdMap(documents["users"])  # type: ignore[arg-type]
        self.items = IdMap(documents["items"])  # type: ignore[arg-type]
        self._sessions = dict(
            zip(
                documents["session_users"],
                documents["session_ids"],  # type: ignore[call-overload]
                strict=True,
            )
        )
        for name in (
            "last_ts",
            "session_no",
            "rec_item",
            "rec_type",
            "rec_session",
            "rec_count",
            "item_events",
        ):
            setattr(self, name, arrays[name].copy())
        self.purchased = {}
        for u, i in zip(
            arrays["purchased_user"].tolist(), arrays["purchased_item"].tolist(), strict=True
        ):
            self.purchased.setdefault(u, set()).add(i)
        self.max_ts = float(arrays["max_ts"][0])
