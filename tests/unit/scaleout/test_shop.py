"""Two serving replicas of one scale-out deployment (real Redis) serve the same shop over HTTP:
a catalogue written through one is used by the other (categories, prices, availability within
a second), with filters, cold start, the response cache and the shared profiles/experiments."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from freshrec.scaleout import ClusterEngine
from freshrec.serving import create_app
from freshrec.settings import Settings
from tests.unit.scaleout.test_scaleout import held_runner, partition_users, scaleout_settings
from tests.unit.scaleout.test_serving import drain

T0 = 1_700_000_000.0


@pytest.fixture
def settings(redis_prefix: str) -> Settings:
    return scaleout_settings(redis_prefix, recommend_budget_ms=1000.0)


def events(users: list[str]) -> list[dict]:
    """Everyone views ``hot``; half the users view shoes, the others socks (and ``hot`` again)."""
    out: list[dict] = []
    t = T0
    for n, user in enumerate(users):
        taste = ("shoe1", "shoe2", "shoe3") if n % 2 else ("sock1", "sock2", "sock3")
        for item in ("hot", *taste, "hot"):
            out.append({"type": "view", "user_id": user, "item_id": item, "timestamp": t})
            t += 5.0
    return out


@pytest.fixture
def replicas(settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    users = partition_users(6, 0) + partition_users(6, 1)
    a, b = ClusterEngine(settings), ClusterEngine(settings)
    try:
        a.ingest(events(users))
        for p in (0, 1):
            runner = held_runner(settings, p, f"worker-{p}")
            drain(runner)
            runner.publish(force=True)
        a.refresh(), b.refresh()
        assert all(e is not None for e in a.partitions + b.partitions)
        with TestClient(create_app(a)) as ca, TestClient(create_app(b)) as cb:
            yield ca, cb
    finally:
        a.close()
        b.close()


def ids(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def within(seconds: float, check: Callable[[], bool]) -> float:
    """How long until ``check()`` held (fails after ``seconds``)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, "not visible in time"
        time.sleep(0.02)
    return time.monotonic() - start


CATALOGUE = [
    {"item_id": "hot", "category": "misc", "price": 5.0},
    *({"item_id": f"shoe{k}", "category": "shoes", "price": 50.0 + k} for k in (1, 2, 3)),
    *({"item_id": f"sock{k}", "category": "socks", "price": 5.0 + k} for k in (1, 2, 3)),
    {"item_id": "boot", "category": "shoes", "price": 90.0},  # in no event yet
]


def test_catalogue_filters_and_availability_across_replicas(
    replicas: tuple[TestClient, TestClient],
) -> None:
    ca, cb = replicas
    shopper = partition_users(6, 1)[1]  # a shoe viewer
    assert ca.post("/v1/items", json={"items": CATALOGUE}).json()["upserted"] == len(CATALOGUE)
    within(1.0, lambda: cb.get("/v1/items/boot").status_code == 200)
    assert cb.get("/v1/items/shoe2").json()["price"] == 52.0

    # filters on replica B use the categories and prices written through A
    shoes = ids(cb.get("/v1/recommendations", params={"user_id": shopper, "category": "shoes"}))
    assert shoes and set(shoes) <= {"shoe1", "shoe2", "shoe3", "boot"}
    cheap = ids(cb.get("/v1/recommendations", params={"user_id": "nobody", "max_price": 10}))
    assert cheap and set(cheap) <= {"hot", "sock1", "sock2", "sock3"}

    # cold start: a newcomer gets popular items, ``hot`` first, on both replicas
    for client in (ca, cb):
        body = client.get("/v1/recommendations", params={"user_id": "newcomer"}).json()
        assert body["cold_start"] is True and body["items"][0]["item_id"] == "hot"
        assert body["items"][0]["reason"]["type"] in ("popular", "trending", "popular_in_context")

    # ``hot`` marked unavailable on A leaves every list of B within a second
    params = {"user_id": "newcomer", "k": 5}
    assert "hot" in ids(cb.get("/v1/recommendations", params=params))  # now cached on B
    assert ca.patch("/v1/items/hot", json={"available": False}).status_code == 200
    within(1.0, lambda: "hot" not in ids(cb.get("/v1/recommendations", params=params)))
    assert "hot" not in ids(cb.get("/v1/recommendations", params={"user_id": shopper}))
    assert "hot" not in ids(ca.get("/v1/recommendations", params=params))  # at once on A

    # a deletion through B reaches A; the item is gone from A's lists and its catalogue
    assert cb.delete("/v1/items/shoe1").status_code == 204
    within(1.0, lambda: ca.get("/v1/items/shoe1").status_code == 404)
    assert "shoe1" not in ids(ca.get("/v1/recommendations", params={"user_id": shopper}))
    stats = cb.get("/v1/stats").json()
    assert stats["catalogue_items"] == len(CATALOGUE) - 1


def test_profiles_experiments_and_the_cache_across_replicas(
    replicas: tuple[TestClient, TestClient], settings: Settings
) -> None:
    ca, cb = replicas
    assert ca.put("/v1/users/newcomer", json={"country": "fr"}).status_code == 200
    within(1.0, lambda: cb.get("/v1/users/newcomer").status_code == 200)
    assert cb.get("/v1/users/newcomer").json()["country"] == "FR"

    arms = [
        {"name": "pop", "strategy": "popular", "percent": 50},
        {"name": "ens", "strategy": "ensemble", "percent": 50},
    ]
    assert ca.post("/v1/experiments", json={"id": "x1", "arms": arms}).status_code == 201
    within(1.0, lambda: cb.get("/v1/experiments/x1").status_code == 200)
    body = cb.get("/v1/recommendations", params={"user_id": "someone"}).json()
    assert body["experiment"]["id"] == "x1"
    assert body["strategy"] == {"pop": "popular", "ens": "ensemble"}[body["experiment"]["arm"]]

    def responses(client: TestClient) -> int:
        arms = client.get("/v1/experiments/x1").json()["arms"]
        return sum(arm["responses"] for arm in arms)

    # the arms' counters are the deployment's: B's response is in A's readout, and back
    within(1.0, lambda: responses(ca) == 1)
    assert ca.get("/v1/recommendations", params={"user_id": "someone else"}).status_code == 200
    within(1.0, lambda: responses(cb) == 2)
    assert responses(ca) == 2
    assert ca.post("/v1/experiments/x1/stop").status_code == 200
    within(1.0, lambda: cb.get("/v1/experiments/x1").json()["status"] == "stopped")

    # the response cache: a repeat is cached until the user's record in Redis moves
    shopper = partition_users(6, 0)[0]
    params = {"user_id": shopper}
    first = cb.get("/v1/recommendations", params=params).json()
    assert first["cached"] is False
    assert cb.get("/v1/recommendations", params=params).json()["cached"] is True
    event = {"type": "view", "user_id": shopper, "item_id": "sock3", "timestamp": T0 + 9999}
    assert cb.post("/v1/events", json=event).status_code == 202
    runner = held_runner(settings, 0, "worker-next")
    drain(runner)  # the user's record is written: the next response is computed again
    assert cb.get("/v1/recommendations", params=params).json()["cached"] is False


def test_replicas_answer_the_lifecycle_and_drift_routes(
    replicas: tuple[TestClient, TestClient],
) -> None:
    """Drift and versions live on the workers: a replica lists the partitions' versions,
    answers a rollback with nothing to go back to with a 409 and a promotion of a name that is
    not a partition's version with a 404 that says how they are named, lists the workers'
    detections (none yet), and /metrics still works (the lifecycle itself:
    ``test_lifecycle``)."""
    a, _ = replicas
    models = a.get("/v1/models")
    assert models.status_code == 200
    assert all(v["version"].startswith(f"p{v['partition']}-v") for v in models.json()["versions"])
    response = a.post("/v1/models/rollback")
    assert response.status_code == 409
    assert "no earlier promoted version" in response.json()["error"]
    response = a.post("/v1/models/p0-1/promote")
    assert response.status_code == 404
    assert "p<partition>-v<offset>" in response.json()["error"]
    assert a.get("/v1/drift/events").json() == []
    assert a.get("/metrics").status_code == 200
