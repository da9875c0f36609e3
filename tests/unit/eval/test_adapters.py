"""The registry: models by name, discovery of freshrec models, the engine adapter."""

from __future__ import annotations

import pytest

from freshrec.eval.adapters import (
    EngineAdapter,
    ModelAdapter,
    UnknownModel,
    check_names,
    create,
    known_models,
    register,
)

from .conftest import stream


def test_known_models_include_engine_freshrec_models_and_baselines() -> None:
    names = set(known_models())
    assert {"engine", "popularity", "covisitation", "pop", "itemknn", "sknn"} <= names


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownModel, match=r"unknown model 'nope' \(known: .*itemknn.*\)"):
        check_names(["pop", "nope"])
    with pytest.raises(UnknownModel, match="known:"):
        create("nope")


def test_freshrec_models_are_found_by_their_name() -> None:
    model = create("covisitation")
    assert isinstance(model, ModelAdapter) and model.name == "covisitation"


def test_a_new_recommender_plugs_in_by_name() -> None:
    class Echo:
        name = "echo"

        def learn(self, event) -> None:  # type: ignore[no-untyped-def]
            self.last = event.item_id

        def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
            return [self.last]

    register("test-echo")(lambda seed=0, settings=None: Echo())
    model = create("test-echo")
    model.learn(stream([("u", "x")])[0])
    assert model.recommend("u", 1, set()) == ["x"] and "test-echo" in known_models()


def test_engine_adapter_learns_through_ingest_and_process() -> None:
    model = create("engine")
    assert isinstance(model, EngineAdapter)
    for event in stream([("u1", "shoe"), ("u1", "sock"), ("u2", "shoe")]):
        model.learn(event)
    assert model.engine.stats()["events_processed"] == 3
    assert model.recommend("u2", 2, exclude={"shoe"}) == ["sock"]
    model.close()
