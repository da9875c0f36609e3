"""The shop store of scale-out deployments on the real Redis: the ``ShopStore`` interface, and
the change feed that tells one replica what the others wrote (and not what it wrote itself)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import redis

from freshrec.engine.experiments import Arm, Experiments, ExperimentSpec
from freshrec.state.catalogue import Catalogue, Item
from freshrec.state.ids import IdMap
from freshrec.state.profiles import Profile, UserProfiles
from freshrec.state.redis_shop import RedisShopStore
from tests.redis_helpers import REDIS_URL


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(REDIS_URL)
    yield c
    c.close()


def test_documents_round_trip_and_deletions(client: redis.Redis, redis_prefix: str) -> None:
    store = RedisShopStore(client, redis_prefix)
    store.put_many("items", [("a", {"price": 1.0}), ("b", {"price": 2.0})])
    store.delete("items", "a")
    assert dict(store.load("items")) == {"b": {"price": 2.0}}
    assert list(store.load("users")) == []
    with pytest.raises(ValueError, match="kind"):
        store.put_many("orders", [("x", {})])


def test_poll_reports_the_other_replicas_changes_once(
    client: redis.Redis, redis_prefix: str
) -> None:
    one, two = RedisShopStore(client, redis_prefix), RedisShopStore(client, redis_prefix)
    got: list[tuple[str, object]] = []
    two.subscribe("items", lambda key, doc: got.append((key, doc)))
    one.put_many("items", [("a", {"price": 1.0}), ("b", {"price": 2.0})])
    one.put_many("items", [("a", {"price": 3.0})])  # only the latest document of ``a``
    one.delete("items", "b")
    two.dispatch(two.poll())
    assert sorted(got, key=str) == [("a", {"price": 3.0}), ("b", None)]
    assert two.poll() == []  # nothing new
    assert one.poll() == []  # its own writes are already applied where they were made
    two.put_many("items", [("c", {"price": 4.0})])
    assert [(k, key) for k, key, _ in one.poll()] == [("items", "c")]


def test_catalogue_profiles_and_experiments_follow_another_replica(
    client: redis.Redis, redis_prefix: str
) -> None:
    a_store, b_store = RedisShopStore(client, redis_prefix), RedisShopStore(client, redis_prefix)
    a_cat, b_cat = Catalogue(IdMap(["x", "y"]), a_store), Catalogue(IdMap(["x", "y"]), b_store)
    a_prof, b_prof = UserProfiles(IdMap(), a_store), UserProfiles(IdMap(), b_store)
    a_exp, b_exp = Experiments(a_store), Experiments(b_store)

    a_cat.upsert([Item("x", category="shoes", price=10.0), Item("y", available=False)])
    a_prof.put(Profile("u1", country="de"))
    a_exp.create(ExperimentSpec("ab", [Arm("a", "ensemble", 50.0), Arm("b", "popular", 50.0)]))
    version = b_cat.version
    b_store.dispatch(b_store.poll())
    b_cat.sync()
    assert b_cat.get("x") == a_cat.get("x")
    assert b_cat.allowed(np.array([0, 1])).tolist() == [True, False]
    assert b_cat.version > version  # response caches see the change
    assert b_prof.get("u1") == Profile("u1", country="DE")
    assert b_exp.running() is not None and b_exp.running().id == "ab"  # type: ignore[union-attr]

    a_cat.delete("x")
    a_prof.delete("u1")
    a_exp.stop("ab")
    b_store.dispatch(b_store.poll())
    assert b_cat.get("x") is None and b_cat.allowed(np.array([0])).tolist() == [False]
    assert b_prof.get("u1") is None
    assert b_exp.running() is None

    # a replica started later loads the same documents
    c_cat = Catalogue(IdMap(), RedisShopStore(client, redis_prefix))
    assert c_cat.get("y") == a_cat.get("y") and c_cat.get("x") is None


def test_experiment_counts_are_summed_over_the_replicas(
    client: redis.Redis, redis_prefix: str
) -> None:
    one, two = RedisShopStore(client, redis_prefix), RedisShopStore(client, redis_prefix)
    a_exp, b_exp = Experiments(one), Experiments(two)
    a_exp.create(ExperimentSpec("ab", [Arm("a", "ensemble", 50.0), Arm("b", "popular", 50.0)]))
    two.dispatch(two.poll())
    for _ in range(3):
        a_exp.record("ab", "a", "response", True)
    b_exp.record("ab", "a", "response", True)
    b_exp.record("ab", "a", "click", True)
    b_exp.record("ab", "a", "click", False)
    assert a_exp.get("ab").totals()["a"].responses == 3  # its own, not sent yet
    one.poll(), two.poll(), one.poll()  # send, then read the other's
    for exp in (a_exp, b_exp):
        a = exp.get("ab").totals()["a"]
        assert (a.responses, a.clicks, a.clicked) == (4, 2, 1)
        assert exp.get("ab").readout()["arms"][0]["ctr"] == 0.25
    assert b_exp.get("ab").counts["a"].responses == 1  # what this replica counted itself


def test_a_store_started_while_redis_is_down_catches_up(
    client: redis.Redis, redis_prefix: str
) -> None:
    RedisShopStore(client, redis_prefix).put_many("items", [("a", {"item_id": "a"})])
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    late = RedisShopStore(down, redis_prefix)
    assert list(late.load("items")) == []
    late.redis = client  # Redis is back: everything stored so far comes with the first poll
    assert [(kind, key) for kind, key, _ in late.poll()] == [("items", "a")]
