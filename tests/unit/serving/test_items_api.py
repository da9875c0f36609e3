"""The catalogue over HTTP: bulk and single upserts, reads, deletes, availability, restarts."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.unit.serving.conftest import T0, Shop, event


def test_bulk_upsert_keeps_valid_items_and_lists_the_invalid(shop: Shop) -> None:
    r = shop.client.post(
        "/v1/items",
        json={
            "items": [
                {"item_id": "a", "category": "shoes", "price": 20, "brand": "acme"},
                {"item_id": "b", "price": -1},
                {"item_id": "c", "colour": "red"},
                {"price": 3},
                "not an object",
                {"item_id": "d", "available": False, "attributes": {"size": 42, "eco": True}},
            ]
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["upserted"] == 2
    assert [(e["index"], e["item_id"], e["error"].split(":")[0]) for e in body["errors"]] == [
        (1, "b", "price"),
        (2, "c", "colour"),
        (3, None, "item_id"),
        (4, None, "body"),
    ]
    got = shop.client.get("/v1/items/a").json()
    assert (got["category"], got["price"], got["brand"], got["available"]) == (
        "shoes",
        20.0,
        "acme",
        True,
    )
    assert shop.client.get("/v1/items/d").json()["attributes"] == {"size": 42, "eco": True}
    assert shop.client.get("/v1/items/b").status_code == 404


def test_batches_up_to_ten_thousand_items_and_no_more(shop: Shop) -> None:
    items = [{"item_id": f"sku-{n}", "category": f"c{n % 7}", "price": n} for n in range(10_001)]
    too_many = shop.client.post("/v1/items", content=json.dumps({"items": items}))
    assert too_many.status_code == 413
    assert too_many.json()["error"].startswith("items: 10001 items is over the limit of 10000")
    assert shop.client.get("/v1/items/sku-0").status_code == 404  # nothing kept
    assert shop.items(items[:10_000])["upserted"] == 10_000
    assert shop.client.get("/v1/stats").json()["catalogue_items"] == 10_000


def test_all_invalid_or_malformed_batches_are_4xx(shop: Shop) -> None:
    r = shop.client.post("/v1/items", json={"items": [{"item_id": "x", "price": "cheap"}]})
    assert r.status_code == 422 and r.json()["error"].startswith("no valid item: price:")
    r = shop.client.post("/v1/items", content=b"{nope")
    assert r.status_code == 400 and r.json()["error"].startswith("body: not valid JSON")
    r = shop.client.post("/v1/items", content=b"")
    assert r.status_code == 400 and r.json()["error"] == 'body: empty; send {"items": [...]}'
    r = shop.client.post("/v1/items", json=[{"item_id": "x"}])
    assert r.status_code == 400 and r.json()["error"].startswith("items:")
    r = shop.client.post("/v1/items", json={"items": []})
    assert r.status_code == 400 and r.json()["error"] == "items: the batch is empty"


def test_put_patch_get_delete(shop: Shop) -> None:
    r = shop.client.put("/v1/items/sku-1", json={"category": "hats", "price": 12.5})
    assert r.status_code == 200 and r.json()["item_id"] == "sku-1"
    r = shop.client.put("/v1/items/sku-1", json={"item_id": "other"})
    assert r.status_code == 422 and r.json()["error"].startswith("item_id:")
    r = shop.client.patch("/v1/items/sku-1", json={"available": False})
    assert r.status_code == 200
    got = shop.client.get("/v1/items/sku-1").json()
    assert (got["category"], got["price"], got["available"]) == ("hats", 12.5, False)
    assert shop.client.patch("/v1/items/nope", json={"price": 1}).status_code == 404
    assert shop.client.delete("/v1/items/sku-1").status_code == 204
    assert shop.client.get("/v1/items/sku-1").status_code == 404
    r = shop.client.delete("/v1/items/never-heard-of")
    assert r.status_code == 404 and r.json()["error"].startswith("item_id:")


def popular_world(shop: Shop) -> None:
    """Items p0 > p1 > p2 > p3 by popularity; u0 has browsed p0 then p1."""
    events = []
    for n, item in enumerate(["p0", "p1", "p2", "p3"]):
        for u in range(8 - 2 * n):
            events.append(event("view", f"x{u}", item, T0 + u))
    events += [event("view", "u0", "p0", T0 + 100), event("view", "u0", "p1", T0 + 110)]
    shop.events(events)


def test_unavailable_items_disappear_from_every_recommendation_at_once(shop: Shop) -> None:
    popular_world(shop)
    assert "p2" in shop.ids("newcomer", k=4)
    assert "p2" in shop.ids("u0", k=4)
    assert "p2" in [i["item_id"] for i in shop.client.get("/v1/items/p0/similar").json()["items"]]
    assert shop.recommend("newcomer", k=4)["cached"] is True  # in the cache now
    assert shop.client.patch("/v1/items/p2", json={"available": False}).status_code == 404
    shop.items([{"item_id": "p2", "available": False}])
    # the very next request (cached or not), every user, every path
    assert "p2" not in shop.ids("newcomer", k=4)
    assert "p2" not in shop.ids("u0", k=4)
    assert "p2" not in shop.ids("someone", k=4, strategy="popular")
    assert "p2" not in shop.ids("someone", k=4, strategy="cold_start")
    similar = shop.client.get("/v1/items/p0/similar").json()["items"]
    assert "p2" not in [i["item_id"] for i in similar]
    assert shop.engine.recommend("u0", k=4) and "p2" not in {
        r.item_id for r in shop.engine.recommend("u0", k=4)
    }
    shop.items([{"item_id": "p2", "available": True}])
    assert "p2" in shop.ids("newcomer", k=4)
    shop.client.delete("/v1/items/p3")  # known only from events: hidden from now on
    assert "p3" not in shop.ids("newcomer", k=4)


def test_catalogue_and_profiles_survive_a_restart(open_shop: Callable[..., Shop]) -> None:
    first = open_shop()
    popular_world(first)
    first.items([{"item_id": "p1", "available": False, "category": "x"}, {"item_id": "n1"}])
    first.client.delete("/v1/items/p2")
    first.client.put("/v1/users/u9", json={"segment": "vip"})
    path = first.engine.settings.data_dir
    first.client.__exit__(None, None, None)
    first.engine.close()

    from fastapi.testclient import TestClient

    from freshrec import Engine
    from freshrec.serving import create_app

    with (
        Engine.open(path, recommend_budget_ms=5000.0) as engine,
        TestClient(create_app(engine)) as client,
    ):
        assert client.get("/v1/items/p1").json()["available"] is False
        assert client.get("/v1/items/p2").status_code == 404
        assert client.get("/v1/users/u9").json()["segment"] == "vip"
        got = client.get("/v1/recommendations", params={"user_id": "new", "k": 10}).json()
        ids = {i["item_id"] for i in got["items"]}
        assert ids and not ids & {"p1", "p2"}
