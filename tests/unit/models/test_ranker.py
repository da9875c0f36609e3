"""The context ranker learns context effects with a known answer, deterministically."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from freshrec.events import EventType, LoggedEvent
from freshrec.features.context import enrich
from freshrec.models import ModelError
from freshrec.models.ranker import FIELDS, ContextRanker
from freshrec.settings import Settings
from freshrec.state import OnlineState, UserView

DAY0 = 1_704_067_200.0  # 2024-01-01 00:00 UTC
SET_A, SET_B = [f"a{n}" for n in range(5)], [f"b{n}" for n in range(5)]


def new_state() -> OnlineState:
    s = Settings()
    return OnlineState(
        s.recent_items, s.session_window, s.session_gap_seconds, s.type_weight_vector()
    )


def shoppers(n: int = 6000, seed: int = 0) -> list[LoggedEvent]:
    """On mobile at night (22:00-02:00 local) shoppers pick set A; on desktop by day (10:00-
    16:00) set B. Everyone does both, in Berlin (UTC+1), so the local hour is what matters."""
    rng = np.random.default_rng(seed)
    events = []
    for k in range(n):
        night = k % 2 == 0
        day = DAY0 + 86_400.0 * (k // 400)
        hour = (22 + rng.integers(0, 4)) % 24 if night else 10 + rng.integers(0, 6)
        ts = day + 3600.0 * hour - 3600.0 + rng.random() * 3000  # UTC of that local hour
        item = (SET_A if night else SET_B)[rng.integers(0, 5)]
        context = {"device": "mobile" if night else "desktop", "tz_offset_minutes": 60}
        events.append(LoggedEvent(0, f"u{rng.integers(0, 40)}", item, ts, None, None, context))
    events.sort(key=lambda e: e.ts)
    return events


def trained(
    events: list[LoggedEvent], size: int = 500, **params: Any
) -> tuple[OnlineState, ContextRanker]:
    state = new_state()
    ranker = ContextRanker(**{"seed": 1, **params})
    for start in range(0, len(events), size):
        ranker.learn(state.advance(events[start : start + size]))
    return state, ranker


def ranked(state: OnlineState, ranker: ContextRanker, user: str, context: dict) -> list[str]:
    items = np.array([state.items.get(i) for i in SET_A + SET_B], dtype=np.int32)
    view = state.view(user, context=enrich(context, DAY0 + 30 * 86_400 + 12 * 3600))
    order = np.argsort(-ranker.score(view, items), kind="stable")
    return [state.items.key(int(items[k])) for k in order]


def test_the_ordering_flips_with_the_context() -> None:
    state, ranker = trained(shoppers())
    # the time of the request is fixed (12:00 UTC); the offset moves the local hour
    night_mobile = ranked(state, ranker, "u3", {"device": "mobile", "tz_offset_minutes": 660})
    day_desktop = ranked(state, ranker, "u3", {"device": "desktop", "tz_offset_minutes": 0})
    assert set(night_mobile[:5]) == set(SET_A)
    assert set(day_desktop[:5]) == set(SET_B)


@pytest.mark.parametrize("field", ["device", "hour"])
def test_each_context_field_alone_carries_the_effect(field: str) -> None:
    fields = [f for f in FIELDS if f not in {"device", "hour"} - {field}]
    state, ranker = trained(shoppers(), fields=fields)
    night = {"device": "mobile", "tz_offset_minutes": 660}
    day = {"device": "desktop", "tz_offset_minutes": 0}
    assert set(ranked(state, ranker, "u5", night)[:5]) == set(SET_A)
    assert set(ranked(state, ranker, "u5", day)[:5]) == set(SET_B)


def test_recency_of_the_category_lifts_items_of_the_category_just_browsed() -> None:
    """Shoppers browse one category per session: the one they just touched predicts the next."""
    rng = np.random.default_rng(2)
    events, ts = [], DAY0
    for _ in range(600):
        cat = int(rng.integers(0, 4))
        user = f"u{rng.integers(0, 60)}"
        for _ in range(4):
            item = f"c{cat}-{rng.integers(0, 5)}"
            ts += 10.0
            events.append(LoggedEvent(0, user, item, ts, None, None, {"category": f"c{cat}"}))
        ts += 7200.0
    state, ranker = trained(events)
    items = np.arange(len(state.items), dtype=np.int32)
    category = np.array([int(state.items.key(i)[1]) for i in items])
    for cat in range(4):
        user = f"new{cat}"
        state.advance(
            [LoggedEvent(0, user, f"c{cat}-0", ts + 5.0, None, None, {"category": f"c{cat}"})]
        )
        view = state.view(user, context=enrich(None, ts + 65.0))
        top = items[np.argsort(-ranker.score(view, items))[:5]]
        assert (category[top] == cat).all(), cat


def test_learning_is_deterministic_and_does_not_depend_on_batching() -> None:
    events = [
        LoggedEvent(
            int(EventType.purchase) if k % 7 == 0 else int(EventType.view),
            e.user_id,
            e.item_id,
            e.ts,
            None,
            None,
            {**(e.context or {}), "category": e.item_id[0], "price": 10.0 + k % 3},
        )
        for k, e in enumerate(shoppers(n=1500))
    ]
    (s1, one), (s2, many) = trained(events, size=1500), trained(events, size=7)
    for key, value in one.state_dict().items():
        np.testing.assert_array_equal(value, many.state_dict()[key], err_msg=key)
    context = {"device": "mobile", "tz_offset_minutes": 60}
    assert ranked(s1, one, "u1", context) == ranked(s2, many, "u1", context)
    _, other_seed = trained(events, seed=2)
    assert not np.array_equal(other_seed.state_dict()["factors"], one.state_dict()["factors"])


def test_scores_are_probabilities_and_zero_without_an_opinion() -> None:
    state, ranker = trained(shoppers(n=600))
    n = len(state.items)
    scores = ranker.score(state.view("nobody"), np.array([0, 1, n, n + 5, -1]))
    assert 0 < scores[0] < 1 and 0 < scores[1] < 1 and scores[2:].tolist() == [0.0, 0.0, 0.0]
    empty = UserView(-1, np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0, bool))
    assert ContextRanker().score(empty, np.arange(3)).tolist() == [0.0, 0.0, 0.0]


def test_non_finite_parameters_make_learning_raise() -> None:
    events = shoppers(n=300)
    state, ranker = trained(events[:200])
    arrays = ranker.state_dict()
    arrays["linear"][:] = np.inf
    ranker.load_state_dict(arrays)
    with pytest.raises(ModelError, match="non-finite"):
        ranker.learn(state.advance(events[200:]))


def test_load_state_dict_checks_shapes() -> None:
    _, ranker = trained(shoppers(n=300))
    with pytest.raises(ModelError, match="hash_bits or factors"):
        ContextRanker(seed=1, hash_bits=10).load_state_dict(ranker.state_dict())


def test_params_recreate_the_model() -> None:
    ranker = ContextRanker(factors=4, hash_bits=12, fields=["item", "user", "device"], seed=9)
    assert ranker.params()["fields"] == ["user", "item", "device"]  # canonical order
    assert ContextRanker(**ranker.params()).params() == ranker.params()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("factors", 0),
        ("hash_bits", 27),
        ("learning_rate", 0.0),
        ("learning_rate", 2.0),
        ("regularization", -1.0),
        ("negatives", 0),
        ("hour_buckets", 25),
        ("seed", -1),
        ("fields", ["user", "colour"]),
        ("fields", []),
        ("fields", "user"),
    ],
)
def test_hyperparameters_are_validated(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        ContextRanker(**{name: value})  # type: ignore[arg-type]


def test_weightless_events_teach_item_features_but_not_preferences() -> None:
    state = new_state()
    ranker = ContextRanker(seed=1)
    batch = state.advance(
        [LoggedEvent(int(EventType.impression), "u", "a", DAY0, None, None, {"category": "x"})]
    )
    ranker.learn(batch)
    assert ranker.state_dict()["item_category"].tolist() == [batch.category[0]]
    assert ranker.state_dict()["meta"].tolist() == [0, 0]
