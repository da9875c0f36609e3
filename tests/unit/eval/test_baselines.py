"""Each baseline on a tiny example with a known answer, and the shared adapter contract."""

from __future__ import annotations

import numpy as np
import pytest

from freshrec.eval.adapters import Scorer, create, known_models

from .conftest import stream

BASELINES = ["pop", "pop-decayed", "itemknn", "successor", "sknn", "vsknn"]

# two tastes: a-users like a0..a3 in order, b-users b0..b3; then a newcomer of each kind
TASTES = [(f"{g}{u}", f"{g}{i}") for u in range(4) for g in "ab" for i in range(4)]


def learned(name: str, pairs: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    model = create(name)
    for event in stream(pairs):
        model.learn(event)
    return model


@pytest.mark.parametrize("name", [*BASELINES, "popularity", "covisitation", "engine"])
def test_contract_exclusion_unknown_users_and_scores(name: str) -> None:
    model = learned(name, [*TASTES, ("a9", "a0"), ("a9", "a1")])
    recs = model.recommend("a9", 3, exclude={"a0", "a1"})
    assert len(recs) <= 3 and len(set(recs)) == len(recs)
    assert not {"a0", "a1"} & set(recs)
    assert isinstance(model.recommend("stranger", 3, set()), list)
    if isinstance(model, Scorer) and recs:
        scores = model.score("a9", [*recs, "never-seen"])
        assert np.all(np.diff(scores[: len(recs)]) <= 1e-12)  # same order as recommended
        assert scores[-1] == -np.inf


@pytest.mark.parametrize("name", ["itemknn", "successor", "sknn", "vsknn", "covisitation"])
def test_item_based_baselines_follow_the_users_taste(name: str) -> None:
    model = learned(name, [*TASTES, ("a9", "a0"), ("a9", "a1"), ("b9", "b1")])
    assert model.recommend("a9", 2, exclude={"a0", "a1"})[0] == "a2"
    assert model.recommend("b9", 3, exclude={"b1"})[0].startswith("b")


def test_popularity_counts_and_decay() -> None:
    pairs = [("u", "old")] * 5 + [("v", "new")] * 2
    assert learned("pop", pairs).recommend("w", 2, set()) == ["old", "new"]
    decayed = create("pop-decayed")  # one-day half-life: 5 events ten days ago lose to 2 today
    for n, (u, i) in enumerate(pairs):
        decayed.learn(stream([(u, i)], start=0.0 if n < 5 else 10 * 86_400.0)[0])
    assert decayed.recommend("w", 2, set()) == ["new", "old"]


def test_itemknn_is_cosine_over_histories() -> None:
    model = learned("itemknn", [("u", "x"), ("u", "y"), ("v", "x"), ("v", "z"), ("w", "x")])
    # sim(x, y) = 1 / sqrt(3 * 1) = sim(x, z); ties in index order
    assert model.score("w", ["y", "z", "x"]).tolist() == pytest.approx(
        [1 / np.sqrt(3), 1 / np.sqrt(3), -np.inf]
    )


def test_vsknn_weights_recent_items_of_the_session_more() -> None:
    pairs = [("p", "a"), ("p", "x"), ("r", "b"), ("r", "y"), ("q", "a"), ("q", "b")]
    sknn, vsknn = learned("sknn", pairs), learned("vsknn", pairs)
    # q = [a, b]: SKNN ties x (via p) and y (via r); V-SKNN prefers r, which shares the last item
    s = sknn.score("q", ["x", "y"])
    assert s[0] == pytest.approx(s[1])
    assert vsknn.recommend("q", 1, exclude={"a", "b"}) == ["y"]


def test_sknn_neighbours_are_the_most_recent_sessions() -> None:
    from freshrec.eval.baselines.sknn import SessionKNN

    model = SessionKNN(neighbours=1, sample=1)
    for event in stream([("old", "a"), ("old", "x"), ("new", "a"), ("new", "y"), ("q", "a")]):
        model.learn(event)
    assert model.recommend("q", 5, exclude={"a"}) == ["y"]


@pytest.mark.skipif("als-1000" not in known_models(), reason="implicit is not installed")
def test_als_serves_nothing_before_the_first_fit_then_recalculates_users() -> None:
    from freshrec.eval.baselines.als import RetrainedALS

    pairs = [*TASTES] * 3
    plain = RetrainedALS(every=len(pairs), factors=4, iterations=5)
    recalc = RetrainedALS(every=len(pairs), recalculate_user=True, factors=4, iterations=5)
    for event in stream(pairs[:-1]):
        plain.learn(event)
        recalc.learn(event)
    assert plain.recommend("a0", 2, set()) == [] and plain.fits == 0
    for model in (plain, recalc):
        model.learn(stream([pairs[-1]])[0])
        model.learn(stream([("newbie", "a0")])[0])  # after the fit
    assert plain.fits == 1
    assert plain.recommend("a0", 2, exclude={"a0", "a1"})[0].startswith("a")
    assert plain.recommend("newbie", 2, set()) == []  # unseen at the last fit: a miss
    assert recalc.recommend("newbie", 2, exclude={"a0"})[0].startswith("a")
    assert plain.score("a0", ["never-seen"])[0] == -np.inf


@pytest.mark.skipif("isgd" not in known_models(), reason="freshrec.models.mf is not available")
def test_isgd_is_the_mf_model_with_the_isgd_loss() -> None:
    model = learned("isgd", TASTES * 5)
    assert model.model.loss == "isgd"  # type: ignore[attr-defined]
    assert len(model.recommend("a0", 3, set())) == 3
