from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from freshrec.models import ModelError
from freshrec.models.mf import OnlineMF
from freshrec.state import UserView
from freshrec.testing import make_batch

GROUP_ITEMS = 10  # group 0 likes items 0-9, group 1 items 10-19


def view(index: int, recent: list[int] | None = None) -> UserView:
    items = np.asarray(recent or [], dtype=np.int32)
    return UserView(index, items, np.zeros(items.shape[0], np.int8), np.zeros(items.shape[0], bool))


def checkerboard(n: int = 3000, users: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Even users like items 0-9, odd users items 10-19, nothing else."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, users, n)
    i = (u % 2) * GROUP_ITEMS + rng.integers(0, GROUP_ITEMS, n)
    return u, i


def learned(n: int = 3000, parts: int = 1, **params: Any) -> OnlineMF:
    model = OnlineMF(**{"factors": 8, "learning_rate": 0.1, "negatives": 2, **params})
    u, i = checkerboard(n)
    for us, its in zip(np.array_split(u, parts), np.array_split(i, parts), strict=True):
        model.learn(make_batch(items=its.tolist(), users=us.tolist()))
    return model


@pytest.mark.parametrize("loss", ["isgd", "isgd_neg", "bpr"])
@pytest.mark.parametrize("sampling", ["uniform", "recent"])
@pytest.mark.parametrize("oversampling", [1, 2, 3])
def test_learns_a_checkerboard_of_tastes(loss: str, sampling: str, oversampling: int) -> None:
    model = learned(loss=loss, sampling=sampling, negative_oversampling=oversampling)
    for user in range(20):
        top, scores = model.top_k(view(user), 5)
        assert (top // GROUP_ITEMS == user % 2).all(), (user, top)
        assert (np.diff(scores) <= 0).all()
        np.testing.assert_allclose(model.score(view(user), top), scores, rtol=1e-6)


def test_similar_items_share_a_group() -> None:
    items, scores = learned().similar(3, 5)
    assert 3 not in items and (items < GROUP_ITEMS).all() and scores[0] <= 1.0 + 1e-6


def test_unknown_users_are_folded_in_from_recent_items() -> None:
    model = learned()
    for recent, group in (([1, 4, 12], 0), ([15, 18], 1)):  # weighted toward the most recent
        top, _ = model.top_k(view(-1, recent), 5, exclude=np.asarray(recent))
        assert (top // GROUP_ITEMS == group).all()
        assert set(top.tolist()).isdisjoint(recent)
    beyond = view(10_000, [15, 18])  # an index the model has not grown to yet
    assert (model.top_k(beyond, 5)[0] >= GROUP_ITEMS).all()
    nothing = view(-1)
    assert model.top_k(nothing, 5)[0].size == 0  # no opinion: other models answer
    assert (model.score(nothing, np.arange(20)) == 0).all()


@pytest.mark.parametrize(("mix", "group"), [(0.0, 0), (1.0, 1)])
def test_recent_mix_blends_long_term_and_recent_taste(mix: float, group: int) -> None:
    model = learned(recent_mix=mix)
    top, _ = model.top_k(view(2, [11, 14, 17]), 5, exclude=np.array([11, 14, 17]))
    assert (top // GROUP_ITEMS == group).all()  # user 2 likes group 0; recently group 1
    half = learned(recent_mix=0.5)
    assert half.params()["recent_mix"] == 0.5
    np.testing.assert_allclose(
        half.user_vector(view(2, [11])),
        0.5 * half.user_vector(view(2)) + 0.5 * half.user_vector(view(-1, [11])),
        rtol=1e-6,
    )


def test_new_users_and_items_mid_stream() -> None:
    model = learned(n=2000)
    u = np.repeat(np.arange(50, 60), 60)  # ten new users who like three new items
    i = 100 + np.tile(np.arange(3), 200)
    model.learn(make_batch(items=i.tolist(), users=u.tolist()))
    after = model.state_dict()
    assert after["item_factors"].shape == (103, 8) and after["user_factors"].shape == (60, 8)
    assert sorted(model.top_k(view(55), 3)[0].tolist()) == [100, 101, 102]
    folded, _ = model.top_k(view(-1, [101]), 2, exclude=np.array([101]))
    assert sorted(folded.tolist()) == [100, 102]
    assert (model.top_k(view(4), 5)[0] < GROUP_ITEMS).all()  # old tastes are kept


def test_initial_rows_depend_on_index_not_on_growth_order() -> None:
    one, steps = OnlineMF(factors=4, seed=5), OnlineMF(factors=4, seed=5)
    one.learn(make_batch(items=[999], users=[499], weight=[0.0]))  # weight 0: grows, learns nothing
    for n in (3, 40, 1000):
        steps.learn(make_batch(items=[n - 1], users=[n // 2 - 1], weight=[0.0]))
    a, b = one.state_dict(), steps.state_dict()
    for key in ("item_factors", "user_factors"):
        np.testing.assert_array_equal(a[key], b[key])
    assert (a["user_events"] == 0).all() and a["meta"].tolist() == [0, 0]
    assert 0.05 < float(a["item_factors"].std()) < 0.15  # init_std = 0.1
    other = OnlineMF(factors=4, seed=6)
    other.learn(make_batch(items=[999], users=[499], weight=[0.0]))
    assert not np.array_equal(other.state_dict()["item_factors"], a["item_factors"])


@pytest.mark.parametrize("loss", ["isgd", "isgd_neg", "bpr"])
@pytest.mark.parametrize("sampling", ["uniform", "recent"])
def test_same_seed_same_events_same_model_whatever_the_batching(loss: str, sampling: str) -> None:
    params = {"loss": loss, "sampling": sampling, "pool_size": 50, "seed": 11}
    whole, pieces = learned(600, 1, **params), learned(600, 37, **params)
    for key, value in whole.state_dict().items():
        np.testing.assert_array_equal(value, pieces.state_dict()[key], err_msg=key)
    if loss != "isgd":  # only negatives draw from the generator
        other = learned(600, 1, **{**params, "seed": 12})
        assert not np.array_equal(other.state_dict()["rng"], whole.state_dict()["rng"])


def test_event_weights_scale_the_step_and_zero_skips() -> None:
    base = {"factors": 4, "loss": "isgd", "init_std": 0.1}
    runs = {}
    for w in (0.0, 1.0, 8.0, 1e9):
        model = OnlineMF(**base)
        model.learn(make_batch(items=[0], users=[0], weight=[w]))
        runs[w] = model.score(view(-1, [0]), np.array([0]))[0]  # q_0 . q_0 after one step
    init = OnlineMF(**base)
    init.learn(make_batch(items=[0], users=[0], weight=[0.0]))
    assert runs[0.0] == init.score(view(-1, [0]), np.array([0]))[0]
    assert runs[1.0] != runs[8.0] and np.isfinite(runs[1e9])  # capped, not exploding


def test_top_k_excludes_and_orders() -> None:
    model = learned()
    exclude = np.array([0, 1, 2, 3, 4, 5, 6, 7, 50, -1])  # out-of-range entries are ignored
    top, scores = model.top_k(view(0), 100, exclude=exclude)
    assert set(top.tolist()) == set(range(8, 20))
    assert (np.diff(scores) <= 0).all() and top.dtype == np.int32
    assert model.candidates(view(0), 2).tolist() == model.top_k(view(0), 2)[0].tolist()
    assert model.top_k(view(0), 0)[0].size == 0
    assert OnlineMF().top_k(view(0), 5)[0].size == 0  # before any learning


def test_divergence_raises_model_error() -> None:
    model = OnlineMF(factors=8, learning_rate=1e6, loss="isgd_neg", init_std=1.0)
    u, i = checkerboard(200)
    with pytest.raises(ModelError, match="non-finite"):
        model.learn(make_batch(items=i.tolist(), users=u.tolist(), weight=[8.0] * 200))


def test_non_finite_state_is_caught_on_the_next_batch() -> None:
    model = learned(n=300)
    arrays = model.state_dict()
    arrays["user_factors"][3, 0] = np.inf
    model.load_state_dict(arrays)
    with pytest.raises(ModelError, match="non-finite"):
        model.check_finite()
    with pytest.raises(ModelError, match="non-finite"):
        model.learn(make_batch(items=[5], users=[3]))


def test_load_rejects_foreign_shapes() -> None:
    arrays = learned(n=100).state_dict()
    with pytest.raises(ModelError, match="columns"):
        OnlineMF(factors=16).load_state_dict(arrays)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("factors", 0),
        ("factors", 2.5),
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("learning_rate", "fast"),
        ("regularization", -0.1),
        ("loss", "warp"),
        ("negatives", 0),
        ("negative_oversampling", 0),
        ("negative_oversampling", 1.5),
        ("sampling", "popular"),
        ("pool_size", 0),
        ("weight_cap", float("inf")),
        ("init_std", -1.0),
        ("recent_mix", 1.5),
        ("seed", -1),
        ("seed", True),
    ],
)
def test_invalid_hyperparameters_name_the_argument(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        OnlineMF(**{name: value})  # type: ignore[arg-type]


def test_params_recreate_the_model() -> None:
    model = OnlineMF(factors=16, loss="isgd", negatives=0, seed=3)
    assert OnlineMF(**model.params()).params() == model.params()
    assert model.params()["loss"] == "isgd" and model.name == "mf"


def test_the_negatives_are_the_drawn_items_the_user_scores_highest() -> None:
    model = OnlineMF(factors=2, negatives=1, negative_oversampling=16, seed=1)
    model.learn(make_batch(items=[0, 1, 2], users=[1, 1, 1]))  # three items seen
    arrays = {k: v.copy() for k, v in model.state_dict().items()}  # views: loads write them
    arrays["user_factors"][0] = [1.0, 0.0]
    arrays["item_factors"][:] = [[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]]  # user 0 likes item 1
    model.load_state_dict(arrays)
    model.learn(make_batch(items=[0], users=[0]))
    after = model.state_dict()["item_factors"]
    assert not np.array_equal(after[1], arrays["item_factors"][1])  # the hard one was pushed
    np.testing.assert_array_equal(after[2], arrays["item_factors"][2])  # the easy one was not


def test_oversampling_changes_which_negatives_are_learned() -> None:
    plain = learned(n=500, negative_oversampling=1).state_dict()["item_factors"]
    hard = learned(n=500, negative_oversampling=2).state_dict()["item_factors"]
    assert not np.array_equal(plain, hard)
