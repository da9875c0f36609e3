"""The response cache (invalidated by the user's next event) and the fallback chain."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from freshrec.models import Model
from freshrec.state import Batch, UserView
from tests.unit.serving.conftest import T0, Shop, event


def browse(shop: Shop) -> None:
    events = [
        event("view", f"x{u}", f"i{(u + s) % 6}", T0 + 10 * u + s)
        for u in range(20)
        for s in range(3)
    ]
    events += [event("view", "u1", "i0", T0 + 500), event("view", "u2", "i1", T0 + 500)]
    shop.events(events)


def test_cache_hit_until_that_users_next_event(shop: Shop) -> None:
    browse(shop)
    first = shop.recommend("u1", k=3)
    again = shop.recommend("u1", k=3)
    assert (first["cached"], again["cached"]) == (False, True)
    assert again["items"] == first["items"]
    assert again["recommendation_id"] != first["recommendation_id"]  # each response its own
    assert shop.recommend("u2", k=3)["cached"] is False
    assert shop.recommend("u1", k=3, device="mobile")["cached"] is False  # another context
    assert shop.recommend("u1", k=3, category="x")["cached"] is False  # other filters
    shop.events([event("purchase", "u1", first["items"][0]["item_id"], T0 + 600)])
    fresh = shop.recommend("u1", k=3)
    assert fresh["cached"] is False  # the user's own event: recomputed...
    assert first["items"][0]["item_id"] not in [i["item_id"] for i in fresh["items"]]
    assert shop.recommend("u2", k=3)["cached"] is True  # ...others' stay cached
    shop.client.put("/v1/users/u2", json={"segment": "b2b"})  # a profile change, too
    assert shop.recommend("u2", k=3)["cached"] is False
    stats = shop.client.get("/v1/stats").json()["cache"]
    assert stats["hits"] >= 2 and stats["entries"] >= 3


def test_cache_can_be_turned_off_and_expires(open_shop: Callable[..., Shop]) -> None:
    off = open_shop(cache_max_entries=0)
    browse(off)
    off.recommend("u1")
    assert off.recommend("u1")["cached"] is False
    short = open_shop(cache_ttl_seconds=0.2)
    browse(short)
    short.recommend("u1")
    assert short.recommend("u1")["cached"] is True
    time.sleep(0.25)
    assert short.recommend("u1")["cached"] is False


def test_a_model_over_its_time_budget_falls_back_to_popular_items(
    open_shop: Callable[..., Shop],
) -> None:
    shop = open_shop(recommend_budget_ms=50.0)
    browse(shop)
    shop.items([{"item_id": "i0", "available": False}])
    shop.events([event("purchase", "u2", "i1", T0 + 700)])
    shop.recommend("u2", k=3)  # remembers the popular list the fallback uses
    held = threading.Event()

    def hold_the_engine() -> None:  # what a long processor batch does to a request
        with shop.engine.lock:
            held.set()
            time.sleep(0.6)

    thread = threading.Thread(target=hold_the_engine)
    thread.start()
    held.wait()
    start = time.perf_counter()
    r = shop.client.get("/v1/recommendations", params={"user_id": "u2", "k": 3, "device": "pc"})
    elapsed = time.perf_counter() - start
    thread.join()
    assert r.status_code == 200
    body = r.json()
    assert body["fallback"] == "timeout" and body["strategy"] == "popular"
    assert elapsed < 0.5  # answered after the budget, long before the engine was free
    ids = [i["item_id"] for i in body["items"]]
    assert len(ids) == 3 and not {"i0", "i1"} & set(ids)  # unavailable and bought: still out
    assert all(i["reason"] == {"type": "popular"} for i in body["items"])
    assert shop.client.get("/v1/stats").json()["fallbacks"] == {"timeout": 1}
    assert (
        'freshrec_recommend_fallbacks_total{reason="timeout"} 1.0'
        in shop.client.get("/metrics").text
    )
    # a fallback is never cached: the next request is the model's again
    assert shop.recommend("u2", k=3, device="pc")["fallback"] is None


class Broken(Model):
    """A model that fails when asked to score (a bug, a corrupted parameter file...)."""

    name = "broken"

    def learn(self, batch: Batch) -> None:
        pass

    def score(self, user: UserView, candidates: np.ndarray) -> np.ndarray:
        raise RuntimeError("model file corrupted")

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        pass


def test_a_model_that_errors_falls_back_and_never_5xx(shop: Shop) -> None:
    browse(shop)
    shop.recommend("u1")
    ensemble = shop.engine.ensemble
    ensemble.members.append(Broken())
    ensemble.priors["broken"] = 1.0
    ensemble.update_weights(ensemble.hit_rates)
    body = shop.recommend("u1", k=4)
    assert body["fallback"] == "error" and len(body["items"]) == 4
    assert shop.client.get("/healthz").status_code == 200


class Slow(Broken):
    """A model that computes for 80 ms of CPU to score (a pathological input)."""

    name = "slow"

    def score(self, user: UserView, candidates: np.ndarray) -> np.ndarray:
        start = time.thread_time()
        while time.thread_time() - start < 0.08:
            pass
        return np.zeros(candidates.shape[0])


def test_the_fallback_keeps_the_requests_exclusions_and_diversity(shop: Shop) -> None:
    shop.items([{"item_id": f"i{n}", "category": "a" if n < 4 else "b"} for n in range(6)])
    browse(shop)
    shop.recommend("u2")  # remembers the popular list the fallback uses
    ensemble = shop.engine.ensemble
    ensemble.members.append(Broken())
    ensemble.priors["broken"] = 1.0
    ensemble.update_weights(ensemble.hit_rates)
    viewed = shop.recommend("u1", k=6, exclude_viewed=True)
    assert viewed["fallback"] == "error"
    assert "i0" not in [i["item_id"] for i in viewed["items"]]  # u1 viewed i0
    diverse = shop.recommend("u1", k=6, max_per_category=1)
    assert diverse["fallback"] == "error"
    ids = [i["item_id"] for i in diverse["items"]]
    assert len(ids) == 2 and {int(i[1:]) < 4 for i in ids} == {True, False}


def test_a_ranking_over_budget_puts_the_next_ones_under_a_deadline(
    open_shop: Callable[..., Shop],
) -> None:
    shop = open_shop(recommend_budget_ms=30.0)
    browse(shop)
    ensemble = shop.engine.ensemble
    ensemble.members.append(Slow())
    ensemble.priors["slow"] = 1.0
    ensemble.update_weights(ensemble.hit_rates)
    for user in ("u1", "x1"):  # ran inline: served late, but served by the models
        assert shop.recommend(user, k=3)["fallback"] is None
    second = shop.recommend("u2", k=3)  # now under the deadline: abandoned, popular instead
    assert second["fallback"] == "timeout" and len(second["items"]) == 3
    stats = shop.client.get("/v1/stats").json()
    assert stats["slow_rankings"] == 2 and stats["fallbacks"] == {"timeout": 1}


def test_an_unexpected_failure_before_ranking_still_answers(shop: Shop) -> None:
    browse(shop)
    shop.recommend("u1")  # remembers the popular list
    shop.engine.profiles.revisions = None  # type: ignore[assignment]  # a bug, say
    body = shop.recommend("u1", k=3)
    assert body["fallback"] == "error" and len(body["items"]) == 3


def test_remembered_responses_stay_out_of_the_garbage_collectors_sight(shop: Shop) -> None:
    """Cached and attributed responses live for minutes, by the hundred thousand: none of
    their parts may be an object the cyclic collector tracks (each full collection would
    scan them all, a pause every request in flight waits for)."""
    import gc

    browse(shop)
    for user in ("u1", "u2", "nobody"):
        shop.recommend(user, k=3, max_per_category=2, exclude_viewed=True, min_price=0)
    service = shop.client.app.state.service  # type: ignore[attr-defined]
    assert len(service.cache) == 3
    gc.collect()  # a tuple of untracked parts is untracked by a collection: an inner one by
    gc.collect()  # the first, the tuple holding it by the next
    for key, entry in service.cache._entries.items():
        assert not gc.is_tracked(key) and not gc.is_tracked(entry), (key, entry)
        served = entry[-1]
        assert not gc.is_tracked(served) and not any(gc.is_tracked(r) for r in served.items)
    responses = list(service.feedback._responses.values())
    assert len(responses) == 3 and not any(gc.is_tracked(r) for r in responses)
