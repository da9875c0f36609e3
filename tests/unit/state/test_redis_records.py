"""Scale-out user records hold what ``OnlineState.view`` says about each user."""

from __future__ import annotations

import numpy as np

from freshrec.events import LoggedEvent
from freshrec.settings import Settings
from freshrec.state import OnlineState
from freshrec.state.redis import decode_record, encode_records, record_view


def test_records_match_the_in_memory_view() -> None:
    rng = np.random.default_rng(3)
    state = OnlineState(6, 4, 100.0, Settings().type_weight_vector(), 3)
    events = [
        LoggedEvent(
            int(rng.choice([0, 1, 3, 5, 6])),
            f"u{rng.integers(8)}",
            f"i{rng.integers(12)}",
            float(t * 30),
            None,
            None,
            {"category": f"c{rng.integers(4)}"},
        )
        for t in range(300)
    ]
    state.advance(events)
    users = np.arange(len(state.users))
    records = encode_records(state, users, users * 10, None)
    for u, data in zip(users.tolist(), records, strict=True):
        rec = decode_record(data)
        expected = state.view(state.users.key(u))
        got = record_view(rec, state.items, state.session_gap_seconds, state.max_ts)
        assert rec.index == u and rec.events == 10 * u
        np.testing.assert_array_equal(got.recent_items, expected.recent_items)
        np.testing.assert_array_equal(got.recent_types, expected.recent_types)
        np.testing.assert_array_equal(got.in_session, expected.in_session)
        np.testing.assert_array_equal(got.recent_ts, expected.recent_ts)
        np.testing.assert_array_equal(got.recent_categories, expected.recent_categories)
        np.testing.assert_array_equal(got.category_ts, expected.category_ts)
        assert got.purchased == expected.purchased
        assert (got.last_ts, got.session_start) == (expected.last_ts, expected.session_start)
        assert got.session_events == expected.session_events
