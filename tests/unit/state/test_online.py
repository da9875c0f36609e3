from __future__ import annotations

import numpy as np

from freshrec.events import EventType, LoggedEvent
from freshrec.features.context import DEVICE_IDS, category_id, country_id, price_bucket
from freshrec.settings import Settings
from freshrec.state import OnlineState
from freshrec.state.online import session_keys


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


def test_session_ids_are_kept_as_stable_keys_across_restores() -> None:
    assert session_keys(["abc", None]).tolist() == [np.int64(np.uint64(0xE71FA2190541574B)), 0]
    mixed = session_keys(["s1", "séance", "s1", None])  # a non-ASCII id among ASCII ones
    assert mixed.tolist() == [*session_keys(["s1"]), *session_keys(["séance"]), mixed[0], 0]
    state = make_state(session_gap_seconds=100)
    state.advance([ev("u", "a", 0, session="s1"), ev("v", "b", 1, session="t")])
    assert "session_users" not in state.documents()  # ids are not kept: 8 bytes a user
    for documents in (state.documents(), {**state.documents(), "legacy": True}):
        arrays = {k: v.copy() for k, v in state.arrays().items()}
        if "legacy" in documents:  # a snapshot written before the keys: the ids themselves
            del arrays["session_key"]
            documents = {**documents, "session_users": [0, 1], "session_ids": ["s1", "t"]}
        copy = make_state(session_gap_seconds=100)
        copy.restore(arrays, documents)
        batch = copy.advance([ev("u", "c", 5, session="s1"), ev("v", "d", 6, session="t2")])
        assert batch.new_session.tolist() == [False, True]


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


def test_view_matches_a_plain_reading_of_the_ring_after_it_wraps() -> None:
    state = make_state(recent_items=8, session_window=4, session_gap_seconds=50)
    rng = np.random.default_rng(4)
    kinds = [EventType.view, EventType.click, EventType.add_to_cart]
    events = [
        ev("u", f"i{rng.integers(6)}", 10.0 * n + rng.integers(0, 40), kinds[n % 3])
        for n in range(30)
    ]
    state.advance(sorted(events, key=lambda e: e.ts))
    ring = sorted(events, key=lambda e: e.ts)[-8:][::-1]  # the last 8, most recent first
    expected: list[tuple[str, int, float]] = []
    for e in ring:
        if e.item_id not in [x[0] for x in expected]:
            expected.append((e.item_id, e.type, float(int(e.ts))))
    for limit in (None, 3):
        view = state.view("u", max_items=limit)
        want = expected[:limit]
        assert [state.items.key(i) for i in view.recent_items] == [x[0] for x in want]
        assert view.recent_types.tolist() == [x[1] for x in want]
        assert view.recent_ts.tolist() == [x[2] for x in want]
        last_session = state.session_no[state.users.get("u")]
        u = state.users.get("u")
        slots = [(int(state.rec_count[u]) - 1 - b) % 8 for b in range(8)]
        sessions = {
            state.items.key(int(state.rec_item[u, s])): int(state.rec_session[u, s])
            for s in reversed(slots)  # the latest occurrence of each item wins
        }
        assert view.in_session.tolist() == [sessions[x[0]] == last_session for x in want]


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


def cev(
    user: str,
    item: str,
    ts: float,
    kind: EventType = EventType.view,
    session: str | None = None,
    **context: object,
) -> LoggedEvent:
    return LoggedEvent(int(kind), user, item, ts, None, session, context or None)


def test_session_features_count_events_and_time_since_the_last() -> None:
    state = make_state(session_gap_seconds=100)
    batch = state.advance(
        [
            cev("u", "a", 0),
            cev("u", "b", 30),
            cev("v", "a", 31),
            cev("u", "c", 50, EventType.impression),
            cev("u", "d", 500),
            cev("u", "e", 520),
        ]
    )
    assert batch.session_events.tolist() == [0, 1, 0, 2, 0, 1]
    assert batch.since_last.tolist() == [np.inf, 30.0, np.inf, 20.0, 450.0, 20.0]
    u = state.users.get("u")
    assert state.session_start[u] == 500.0 and state.session_events[u] == 2
    view = state.view("u")
    assert (view.session_start, view.session_events, view.last_ts) == (500.0, 2, 520.0)
    assert view.recent_ts.tolist() == [520.0, 500.0, 30.0, 0.0]  # e, d, b, a
    state.advance([cev("v", "z", 900)])  # event time moves on: u's session has ended
    assert state.view("u").session_events == 0
    assert state.view("v").session_events == 1


def test_items_keep_their_last_known_category_and_price() -> None:
    state = make_state()
    batch = state.advance(
        [
            cev("u", "a", 1, category="shoes", price=50.0),
            cev("v", "a", 2),
            cev("v", "a", 3, category="boots", price="n/a"),
            cev("u", "b", 4, tz_offset_minutes=120, device="mobile", country="de"),
        ]
    )
    shoes, boots = category_id("shoes"), category_id("boots")
    assert batch.category.tolist() == [shoes, shoes, boots, -1]
    assert batch.price_bucket.tolist() == [price_bucket(50.0)] * 3 + [0]
    a = state.items.get("a")
    assert state.item_category[a] == boots and state.item_price[a] == 50.0
    assert batch.hour.tolist()[3] == 2 and batch.device[3] == DEVICE_IDS["mobile"]
    assert batch.country[3] == country_id("DE") and batch.country[0] == 0


def test_recent_categories_and_when_they_were_touched() -> None:
    state = make_state()
    batch = state.advance(
        [
            cev("u", "a", 10, category="shoes"),
            cev("u", "b", 20, category="hats"),
            cev("u", "x", 25),  # no category: skipped
            cev("u", "c", 30, category="shoes"),
            cev("u", "d", 40, EventType.impression, category="hats"),
            cev("u", "e", 50),
        ]
    )
    shoes, hats = category_id("shoes"), category_id("hats")
    assert batch.recent_categories[0, 0] == -1  # nothing before the first event
    assert batch.recent_categories[3, :3].tolist() == [hats, shoes, -1]
    assert batch.category_ts[3, :2].tolist() == [20.0, 10.0]
    assert batch.recent_categories[4, 0] == -1  # weightless: not filled
    assert batch.recent_categories[5, :3].tolist() == [shoes, hats, -1]
    assert batch.category_ts[5, :2].tolist() == [30.0, 20.0]
    view = state.view("u")
    assert view.recent_categories.tolist() == [shoes, hats]
    assert view.category_ts.tolist() == [30.0, 20.0]


def test_category_memory_is_bounded_by_the_recent_items() -> None:
    state = make_state(recent_items=4, session_window=2)
    state.advance([cev("u", f"i{n}", n, category=f"c{n}") for n in range(10)])
    view = state.view("u")
    assert view.recent_categories.tolist() == [category_id(f"c{n}") for n in (9, 8, 7, 6)]


def test_batches_and_single_events_give_the_same_context_features() -> None:
    events = [
        cev(
            f"u{n % 3}",
            f"i{n % 7}",
            n * 40.0,
            EventType.impression if n % 5 == 0 else EventType.view,
            category=f"c{n % 4}",
            price=float(n),
            device="mobile",
            tz_offset_minutes=60,
        )
        for n in range(60)
    ]
    whole, split = make_state(session_gap_seconds=100), make_state(session_gap_seconds=100)
    one = whole.advance(events)
    parts = [split.advance([e]) for e in events]
    for name in (
        "category",
        "price_bucket",
        "session_events",
        "since_last",
        "hour",
        "device",
        "recent_categories",
        "category_ts",
    ):
        got = np.concatenate([getattr(p, name) for p in parts])
        assert np.array_equal(getattr(one, name), got), name
    for name, value in whole.arrays().items():
        assert np.array_equal(value, split.arrays()[name]), name


def test_snapshot_round_trip_is_exact_with_context_features() -> None:
    state = make_state()
    state.advance(
        [
            cev("u", "a", 1, session="s", category="shoes", price=10.0),
            cev("v", "b", 2, category="hats"),
            cev("u", "c", 3, EventType.purchase, price=99.0),
        ]
    )
    copy = make_state()
    copy.restore({k: v.copy() for k, v in state.arrays().items()}, state.documents())
    for name, value in state.arrays().items():
        assert value.dtype == copy.arrays()[name].dtype, name
        assert np.array_equal(value, copy.arrays()[name]), name
    a, b = state.view("u"), copy.view("u")
    for name in ("recent_items", "recent_ts", "recent_categories", "category_ts"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.session_start, a.session_events) == (b.session_start, b.session_events)
    follow = [cev("u", "d", 4, session="s", category="hats"), cev("v", "a", 5)]
    x, y = state.advance(follow), copy.advance(follow)
    for name in ("prev_items", "category", "price_bucket", "session_events", "recent_categories"):
        assert np.array_equal(getattr(x, name), getattr(y, name)), name


def test_snapshots_without_context_arrays_still_restore() -> None:
    state = make_state()
    state.advance([cev("u", "a", 1, category="shoes"), cev("u", "b", 2)])
    old = {
        k: v.copy()
        for k, v in state.arrays().items()
        if k not in {"session_start", "session_events", "rec_ts", "item_category"}
        and not k.startswith("item_price")
    }
    copy = make_state()
    copy.restore(old, state.documents())
    assert copy.item_category.tolist() == [-1, -1] and copy.rec_ts.shape == state.rec_ts[:1].shape
    batch = copy.advance([cev("u", "c", 3, category="hats")])
    assert batch.category.tolist() == [category_id("hats")]
