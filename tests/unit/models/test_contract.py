"""The contract every model passes (new models join the ``MODELS`` list)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from freshrec.events import EventType, LoggedEvent
from freshrec.models import CoVisitation, DecayedPopularity, Model
from freshrec.models.contextpop import ContextPopularity
from freshrec.models.mf import OnlineMF
from freshrec.models.ranker import ContextRanker
from freshrec.registry.mapped import SparseArray
from freshrec.settings import Settings
from freshrec.state import Batch, OnlineState

MODELS: dict[str, Callable[[], Model]] = {
    "popularity": lambda: DecayedPopularity(half_life_seconds=3600.0),
    "covisitation": lambda: CoVisitation(neighbours=8, half_life_seconds=86_400.0),
    "mf": lambda: OnlineMF(factors=8, negatives=2, pool_size=64, seed=3),
    "ranker": lambda: ContextRanker(factors=4, hash_bits=10, negatives=2, seed=3),
    "context_popularity": lambda: ContextPopularity(3600.0, 600.0, max_keys=16),
}


def new_state() -> OnlineState:
    s = Settings()
    return OnlineState(
        s.recent_items, s.session_window, s.session_gap_seconds, s.type_weight_vector()
    )


def stream(n: int = 400, seed: int = 0, items: int = 30) -> list[LoggedEvent]:
    rng = np.random.default_rng(seed)
    kinds = [EventType.view, EventType.click, EventType.add_to_cart, EventType.purchase]
    return [
        LoggedEvent(
            int(rng.choice(kinds, p=[0.7, 0.2, 0.07, 0.03])),
            f"u{rng.integers(20)}",
            f"i{rng.integers(items)}",
            1000.0 + 30.0 * k,
        )
        for k in range(n)
    ]


def batches(events: list[LoggedEvent], size: int) -> tuple[OnlineState, list[Batch]]:
    state = new_state()
    return state, [state.advance(events[i : i + size]) for i in range(0, len(events), size)]


@pytest.fixture(params=list(MODELS))
def make(request: pytest.FixtureRequest) -> Callable[[], Model]:
    return MODELS[request.param]


def all_items(state: OnlineState) -> np.ndarray:
    return np.arange(len(state.items), dtype=np.int32)


def test_scores_before_learning_are_zero(make: Callable[[], Model]) -> None:
    state = new_state()
    model = make()
    assert model.score(state.view("nobody"), np.zeros(0, dtype=np.int32)).shape == (0,)
    assert model.state_dict() is not None


def test_learn_then_score(make: Callable[[], Model]) -> None:
    state, parts = batches(stream(), 50)
    model = make()
    for b in parts:
        model.learn(b)
    scores = model.score(state.view("u3"), all_items(state))
    assert scores.shape == (len(state.items),) and np.isfinite(scores).all() and scores.max() > 0
    model.check_finite()


def test_batch_size_does_not_change_what_is_learned(make: Callable[[], Model]) -> None:
    events = stream()
    s1, one = batches(events, len(events))
    s2, many = batches(events, 1)
    m1, m2 = make(), make()
    for b in one:
        m1.learn(b)
    for b in many:
        m2.learn(b)
    for key, value in m1.state_dict().items():
        np.testing.assert_allclose(value, m2.state_dict()[key], rtol=1e-9, err_msg=key)
    np.testing.assert_allclose(
        m1.score(s1.view("u1"), all_items(s1)), m2.score(s2.view("u1"), all_items(s2)), rtol=1e-9
    )


def test_save_load_round_trip_gives_identical_scores(make: Callable[[], Model]) -> None:
    state, parts = batches(stream(), 64)
    model = make()
    for b in parts[:-1]:
        model.learn(b)
    copy = make()
    copy.load_state_dict({k: v.copy() for k, v in model.state_dict().items()})
    model.learn(parts[-1])
    copy.learn(parts[-1])  # grows and keeps learning after a load
    for user in ("u0", "u5", "nobody"):
        np.testing.assert_array_equal(
            model.score(state.view(user), all_items(state)),
            copy.score(state.view(user), all_items(state)),
        )


def test_new_items_mid_stream(make: Callable[[], Model]) -> None:
    events = stream(items=5) + [LoggedEvent(0, "u1", f"new{k}", 99_000.0 + k) for k in range(40)]
    state, parts = batches(events, 100)
    model = make()
    for b in parts:
        model.learn(b)
    scores = model.score(state.view("u1"), all_items(state))
    assert scores.shape == (len(state.items),) and np.isfinite(scores).all()


def test_learning_does_not_mutate_the_batch(make: Callable[[], Model]) -> None:
    _, (batch,) = batches(stream(n=100), 100)
    before = {
        name: getattr(batch, name).copy()
        for name in ("users", "items", "ts", "weight", "prev_items")
    }
    make().learn(batch)
    for name, value in before.items():
        assert np.array_equal(getattr(batch, name), value), name


def test_non_finite_parameters_are_detected(make: Callable[[], Model]) -> None:
    _, (batch,) = batches(stream(n=100), 100)
    model = make()
    model.learn(batch)
    arrays = model.state_dict()
    key = next(k for k, v in arrays.items() if v.dtype.kind == "f" and v.size > 2)
    arrays[key][0] = np.nan
    model.load_state_dict(arrays)
    with pytest.raises(Exception, match="non-finite"):
        model.check_finite()


def grown_stream() -> list[LoggedEvent]:
    """Events of 20 users over 30 items, then of 20 more users over 60 items."""
    later = stream(n=300, seed=1, items=60)
    return stream(n=300, items=30) + [
        LoggedEvent(e.type, "later-" + e.user_id, e.item_id, e.ts + 50_000.0) for e in later
    ]


def test_a_load_into_a_model_that_learned_more_is_a_fresh_load(make: Callable[[], Model]) -> None:
    """A version put back is copied into the arrays the model holds (rows past it reset):
    it must then learn and score exactly as a model that loaded it new."""
    state, parts = batches(grown_stream(), 100)
    model = make()
    for b in parts[:2]:
        model.learn(b)
    saved = {k: v.copy() for k, v in model.state_dict().items()}
    for b in parts[2:-1]:  # more users and items: the model's arrays have grown
        model.learn(b)
    model.load_state_dict(saved)
    fresh = make()
    fresh.load_state_dict(saved)
    model.learn(parts[-1])
    fresh.learn(parts[-1])
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key], value, err_msg=key)
    for user in ("u0", "later-u3", "nobody"):
        np.testing.assert_array_equal(
            model.score(state.view(user), all_items(state)),
            fresh.score(state.view(user), all_items(state)),
        )


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_a_frozen_copy_read_in_place_scores_as_the_model(
    make: Callable[[], Model], sparse: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a gate tests: a version read from its snapshot where it lies."""
    from freshrec.registry import store as store_module

    if sparse:  # every array stored as its entries other than 0 (or -1)
        monkeypatch.setattr(store_module, "SPARSE_MIN_BYTES", 0)
        monkeypatch.setattr(store_module, "SPARSE_MAX_SHARE", 1.0)
    state, parts = batches(grown_stream(), 100)
    model = make()
    for b in parts:
        model.learn(b)
    store = store_module.SnapshotStore(tmp_path)
    folder = store.save(1, {f"m/{k}": v for k, v in model.state_dict().items()}, {}, {})
    snap = store.load(folder, mapped=True)
    arrays = {k.removeprefix("m/"): v for k, v in snap.arrays.items()}
    if sparse and isinstance(model, CoVisitation):
        assert isinstance(arrays["nbr"], SparseArray)  # its rows made dense as they are read
    frozen = make()
    frozen.load_frozen(arrays)
    for user in ("u0", "later-u3", "nobody"):
        np.testing.assert_array_equal(
            frozen.score(state.view(user), all_items(state)),
            model.score(state.view(user), all_items(state)),
        )
        try:
            expected = model.candidates(state.view(user), 10)
        except NotImplementedError:
            continue
        np.testing.assert_array_equal(frozen.candidates(state.view(user), 10), expected)
        snap.release()
