from __future__ import annotations

import numpy as np

from freshrec.events import EventType, LoggedEvent
from freshrec.settings import Settings
from freshrec.state import OnlineState


def make_state(**kw: object) -> OnlineState:
    s = Settings(**kw)  # type: ignore[arg-type]
    return OnlineState(
        s.recent_items, s.session_window, s.session_gap_seconds, s.type_weight_vector()
    )


def ev(
    user: str,
    item: str,
    ts: float,
    kind: EventType = EventType.view,
    session: str | None = None,
    value: float | None = None,
) -> LoggedEvent:
    return LoggedEvent(int(kind), user, item, ts, None, session, None, None, value)


def test_sessions_split_on_inactivity_by_event_time() -> None:
    state = make_state(session_gap_seconds=100)
    batch = state.advance([ev("u", "a", 0), ev("u", "b", 50), ev("u", "c", 200), ev("u", "d", 210)])
    assert batch.new_session.tolist() == [True, False, True, False]
    a, b, c, d = (state.items.get(x) for x in "abcd")
    assert batch.prev_items[1, :2].tolist() == [a, -1]
    assert batch.prev_items[2, 0] == -1  # a new session: nothing to pair with
    assert batch.prev_items[3, :2].tolist() == [c, -1]
    assert b is not None and d is not None


def test_explicit_session_ids_win_over_the_gap() -> None:
    state = make_state(session_gap_seconds=100)
    batch = state.advance(
        [
            ev("u", "a", 0, session="s1"),
            ev("u", "b", 5, session="s2"),
            ev("u", "c", 1000, session="s2"),
        ]
    )
    assert batch.new_session.tolist() == [True, True, False]


def test_batches_and_single_events_give_the_same_state() -> None:
    events = [ev(f"u{n % 3}", f"i{n % 7}", n * 40.0) for n in range(60)]
    whole, split = make_state(session_gap_seconds=100), make_state(session_gap_seconds=100)
    one = whole.advance(events)
    parts = [split.advance([e]) for e in events]
    assert np.array_equal(one.prev_items, np.vstack([p.prev_items for p in parts]))
    for name, value in whole.arrays().items():
        assert np.array_equal(value, split.arrays()[name]), name


def test_view_lists_distinct_recent_items_most_recent_first() -> None:
    state = make_state()
    state.advance([ev("u", "a", 1), ev("u", "b", 2), ev("u", "a", 3), ev("u", "c", 4)])
    view = state.view("u")
    assert [state.items.key(i) for i in view.recent_items] == ["c", "a", "b"]
    assert view.in_session.all()
    assert state.view("nobody").index == -1 and state.view("nobody").recent_items.size == 0


def test_weightless_events_do_not_enter_history() -> None:
    state = make_state()
    state.advance(
        [
            ev("u", "a", 1),
            ev("u", "x", 2, EventType.impression),
            ev("u", "r", 3, EventType.rating, value=2.0),
            ev("u", "g", 4, EventType.rating, value=5.0),
        ]
    )
    assert [state.items.key(i) for i in state.view("u").recent_items] == ["g", "a"]


def test_purchases_are_remembered_and_ring_buffer_wraps() -> None:
    state = make_state(recent_items=4, session_window=2)
    state.advance(
        [ev("u", f"i{n}", n) for n in range(10)] + [ev("u", "i3", 11, EventType.purchase)]
    )
    view = state.view("u")
    assert len(view.recent_items) == 4
    assert view.purchased == {state.items.get("i3")}


def test_snapshot_round_trip() -> None:
    state = make_state()
    state.advance(
        [ev("u", "a", 1, session="s"), ev("v", "b", 2), ev("u", "c", 3, EventType.purchase)]
    )
    copy = make_state()
    copy.restore({k: v.copy() for k, v in state.arrays().items()}, state.documents())
    for a, b in ((state, copy),):
        assert a.users.keys() == b.users.keys() and a.items.keys() == b.items.keys()
        assert a.purchased == b.purchased
    follow = [ev("u", "d", 4, session="s")]
    assert np.array_equal(state.advance(follow).prev_items, copy.advance(follow).prev_items)
