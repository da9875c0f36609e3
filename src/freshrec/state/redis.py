"""Scale-out online state: each user's record in Redis, written by workers, read per request.

A worker keeps its partitions' ``OnlineState`` in memory (snapshot + stream replay, like
embedded mode) and, after every batch, writes the record of each user the batch touched:
recent items (as ids, most recent first), their types, times and session flags, recent
categories, session start and length, last event time, purchases, the number of events
processed for the user, and the user-side MF factors. Serving replicas read the record on each
request and turn it into a ``UserView`` against the item ids of the models they loaded, so
recommendations see an event as soon as its batch is written, without waiting for the next
model snapshot.

>>> from freshrec.events import LoggedEvent
>>> state = OnlineState(type_weights=[1.0, 2.0, 3.0, 4.0, 0.0, 8.0, 0.0, 2.0])
>>> _ = state.advance([LoggedEvent(0, "u", "a", 10.0), LoggedEvent(5, "u", "b", 20.0)])
>>> rec = decode_record(encode_records(state, np.array([0]), np.array([2]), None)[0])
>>> rec.items, rec.purchased, rec.events
(['b', 'a'], ['b'], 2)
>>> view = record_view(rec, state.items, state.session_gap_seconds)
>>> view.recent_items.tolist(), sorted(view.purchased)
([1, 0], [1])
"""

from __future__ import annotations

import msgspec
import numpy as np

from freshrec.features.context import Context
from freshrec.state.ids import IdMap
from freshrec.state.online import OnlineState, UserView, _recent_categories, _recent_distinct


class UserRecord(msgspec.Struct, array_like=True, gc=False):
    """One user's online state as stored in Redis (msgpack array)."""

    index: int  # the user's index in their partition (stable: id maps are append-only)
    items: list[str]  # recent distinct items, most recent first
    types: list[int]
    in_session: list[bool]
    item_ts: list[float]
    categories: list[int]
    category_ts: list[float]
    last_ts: float
    session_start: float
    session_events: int
    purchased: list[str]
    events: int  # events of this user processed so far
    mf: bytes | None = None  # float32 user factors (None: no positive event yet)
    mf_events: int = 0


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(UserRecord)


def user_key(prefix: str, user_id: str) -> str:
    return f"{prefix}user:{user_id}"


def encode_records(
    state: OnlineState, users: np.ndarray, events: np.ndarray, mf: object | None
) -> list[bytes]:
    """Encoded records of the users with indices ``users``; ``events[k]`` is user k's event
    count, ``mf`` an ``OnlineMF`` whose user factors go with them (or None).

    What ``OnlineState.view`` gives for each user, read by the same compiled pass over the
    user's ring (``_recent_distinct``: each item at its latest occurrence) into buffers reused
    from one user to the next.
    """
    if users.shape[0] == 0:
        return []
    users = users.astype(np.int64)
    keys = state.items.keys()
    R = state.recent_items
    count = state.rec_count[users]
    sessions = state.session_no[users].tolist()
    recent = np.empty(R, dtype=state.rec_item.dtype)
    recent_types = np.empty(R, dtype=state.rec_type.dtype)
    recent_in = np.empty(R, dtype=np.bool_)
    recent_ts = np.empty(R, dtype=np.float64)
    last_ts = state.last_ts[users].tolist()
    starts = state.session_start[users].tolist()
    session_events = state.session_events[users].tolist()
    C = state.category_window
    categories = np.full(C, -1, dtype=np.int32)
    category_ts = np.zeros(C, dtype=np.float64)
    with_categories = state._categories and C > 0
    P = getattr(mf, "_P", None)
    n_mf = int(getattr(mf, "_n_users", 0))
    user_n = getattr(mf, "_user_n", None)
    out = []
    for k, (u, n_events) in enumerate(zip(users.tolist(), events.tolist(), strict=True)):
        n = _recent_distinct(
            state.rec_item,
            state.rec_type,
            state.rec_session,
            state.rec_ts,
            sessions[k],
            int(count[k]),
            u,
            recent,
            recent_types,
            recent_in,
            recent_ts,
        )
        found = 0
        if with_categories:
            found = _recent_categories(
                state.rec_item,
                state.rec_ts,
                int(count[k]),
                u,
                state.item_category,
                categories,
                category_ts,
            )
        vec, vec_n = None, 0
        if P is not None and u < n_mf and user_n[u] > 0:
            vec, vec_n = P[u].tobytes(), int(user_n[u])
        out.append(
            _encoder.encode(
                UserRecord(
                    u,
                    [keys[i] for i in recent[:n].tolist()],
                    recent_types[:n].tolist(),
                    recent_in[:n].tolist(),
                    recent_ts[:n].tolist(),
                    categories[:found].tolist(),
                    category_ts[:found].tolist(),
                    last_ts[k],
                    starts[k],
                    session_events[k],
                    [keys[i] for i in sorted(state.purchased.get(u, ()))],
                    int(n_events),
                    vec,
                    vec_n,
                )
            )
        )
    return out


def decode_record(data: bytes) -> UserRecord:
    return _decoder.decode(data)


def record_view(
    rec: UserRecord,
    items: IdMap,
    session_gap_seconds: float,
    now: float = 0.0,
    context: Context | None = None,
) -> UserView:
    """The ``UserView`` of a stored record, item ids mapped through ``items`` (ids the loaded
    models do not know yet are left out)."""
    idx = items.indices(rec.items, add=False)
    known = idx >= 0
    bought = items.indices(rec.purchased, add=False)
    at = context.ts if context is not None else max(now, rec.last_ts)
    live = at - rec.last_ts <= session_gap_seconds
    return UserView(
        rec.index,
        idx[known],
        np.asarray(rec.types, dtype=np.int8)[known],
        np.asarray(rec.in_session, dtype=bool)[known],
        {int(i) for i in bought.tolist() if i >= 0},
        max(now, rec.last_ts),
        recent_ts=np.asarray(rec.item_ts, dtype=np.float64)[known],
        recent_categories=np.asarray(rec.categories, dtype=np.int32),
        category_ts=np.asarray(rec.category_ts, dtype=np.float64),
        last_ts=rec.last_ts,
        session_start=rec.session_start,
        session_events=rec.session_events if live else 0,
        context=context,
    )
