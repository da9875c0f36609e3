"""A/B tests over HTTP: stable assignment, per-arm attribution, readout, bad input."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from tests.unit.serving.conftest import T0, Shop, event

AB = {
    "id": "home-2024",
    "arms": [
        {"name": "control", "strategy": "ensemble", "percent": 50},
        {"name": "popular", "strategy": "popular", "percent": 50},
    ],
}


def test_users_split_by_a_stable_hash_and_arms_are_read_out(shop: Shop) -> None:
    shop.events([event("view", f"x{u}", f"i{u % 7}", T0 + u) for u in range(40)])
    r = shop.client.post("/v1/experiments", json=AB)
    assert r.status_code == 201 and r.json()["status"] == "running"
    arms = {}
    for n in range(200):
        body = shop.recommend(f"user{n}", k=3)
        arm = body["experiment"]["arm"]
        arms[f"user{n}"] = (arm, body)
        assert body["experiment"]["id"] == "home-2024"
        assert body["strategy"] == {"control": "ensemble", "popular": "popular"}[arm]
    counts = Counter(a for a, _ in arms.values())
    assert 60 <= counts["control"] <= 140  # 50/50 (binomial sd 7)
    for n in range(0, 200, 7):  # the same user, the same arm, every time
        assert shop.recommend(f"user{n}", k=2)["experiment"]["arm"] == arms[f"user{n}"][0]
    clicks = []
    for user, (arm, body) in arms.items():
        if arm == "popular" or user.endswith("0"):  # popular: every user clicks
            item = body["items"][0]["item_id"]
            clicks.append(
                event("click", user, item, T0 + 99, recommendation_id=body["recommendation_id"])
            )
    shop.events(clicks)
    out = shop.client.get("/v1/experiments/home-2024").json()
    control, popular = out["arms"]
    assert control["name"] == "control" and out["control"] == "control"
    assert popular["ctr"] == pytest.approx(popular["clicks"] / popular["responses"])
    assert popular["clicks"] == counts["popular"]
    assert control["ctr"] < popular["ctr"]
    for arm in (control, popular):
        lo, hi = arm["ctr_ci95"]
        assert 0 <= lo <= arm["ctr"] <= hi <= 1
    assert popular["vs_control"]["ctr_p_value"] < 0.001
    assert "freshrec_experiment_ctr" in shop.client.get("/metrics").text
    assert [e["id"] for e in shop.client.get("/v1/experiments").json()["experiments"]] == [
        "home-2024"
    ]
    stopped = shop.client.post("/v1/experiments/home-2024/stop").json()
    assert stopped["status"] == "stopped"
    assert shop.recommend("user1")["experiment"] is None


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (
            {"id": "x", "arms": [{"name": "a", "strategy": "ensemble", "percent": 60}] * 1},
            422,
            "arms",
        ),
        (
            {
                "id": "x",
                "arms": [
                    {"name": "a", "strategy": "ensemble", "percent": 60},
                    {"name": "b", "strategy": "popular", "percent": 60},
                ],
            },
            422,
            "arms",
        ),
        (
            {
                "id": "x",
                "arms": [
                    {"name": "a", "strategy": "ensemble", "percent": 50},
                    {"name": "b", "strategy": "magic", "percent": 50},
                ],
            },
            422,
            "arms[1].strategy",
        ),
        (
            {
                "id": "x",
                "arms": [
                    {"name": "a", "strategy": "ensemble", "percent": 50},
                    {"name": "b", "strategy": "popular", "percent": "half"},
                ],
            },
            422,
            "arms[1].percent",
        ),
        ({"id": "has space", "arms": AB["arms"]}, 422, "id"),
        ({"arms": AB["arms"]}, 422, "id"),
    ],
)
def test_bad_experiments_are_4xx_naming_the_field(
    shop: Shop, body: dict, status: int, field: str
) -> None:
    r = shop.client.post("/v1/experiments", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"].startswith(f"{field}:")


def test_unknown_and_conflicting_experiments(shop: Shop) -> None:
    r = shop.client.get("/v1/experiments/nope")
    assert r.status_code == 404 and r.json()["error"].startswith("experiment_id:")
    assert shop.client.post("/v1/experiments/nope/stop").status_code == 404
    assert shop.client.post("/v1/experiments", json=AB).status_code == 201
    second = {**AB, "id": "another"}
    r = shop.client.post("/v1/experiments", json=second)
    assert r.status_code == 409 and "running" in r.json()["error"]
    assert shop.client.post("/v1/experiments", json=AB).status_code == 409  # same id
    # while one runs, a malformed one is still a 422 naming its field, not a 409
    bad = {**second, "arms": [{**AB["arms"][0], "strategy": "magic"}, *AB["arms"][1:]]}
    r = shop.client.post("/v1/experiments", json=bad)
    assert r.status_code == 422 and r.json()["error"].startswith("arms[0].strategy:")


def test_split_from_settings_and_experiments_survive_restarts(
    open_shop: Callable[..., Shop],
) -> None:
    shop = open_shop(experiment_arms={"ensemble": 50, "cold_start": 50})
    seen = {shop.recommend(f"u{n}")["experiment"]["arm"] for n in range(40)}
    assert seen == {"ensemble", "cold_start"}
    other = open_shop()
    other.client.post("/v1/experiments", json=AB)
    other.client.post("/v1/experiments/home-2024/stop")
    other.client.post("/v1/experiments", json={**AB, "id": "second"})
    path = other.engine.settings.data_dir
    other.client.__exit__(None, None, None)
    other.engine.close()
    from fastapi.testclient import TestClient

    from freshrec import Engine
    from freshrec.serving import create_app

    with Engine.open(path) as engine, TestClient(create_app(engine)) as client:
        got = {e["id"]: e["status"] for e in client.get("/v1/experiments").json()["experiments"]}
        assert got == {"home-2024": "stopped", "second": "running"}
