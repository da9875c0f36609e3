"""Cold start over HTTP: context-aware popular items, similar shoppers, trending, new items."""

from __future__ import annotations

from tests.unit.serving.conftest import T0, Shop, event


def test_new_user_with_a_country_gets_what_is_popular_there(shop: Shop) -> None:
    events = []
    for u in range(12):  # France: more traffic overall, on f-items
        for item in ("f0", "f1"):
            events.append(event("view", f"fr{u}", item, T0 + u, context={"country": "FR"}))
    for u in range(6):  # Germany: d-items
        for item in ("d0", "d1"):
            events.append(event("view", f"de{u}", item, T0 + u, context={"country": "DE"}))
    shop.events(events)
    shop.client.put("/v1/users/neu", json={"country": "de"})
    body = shop.recommend("neu", k=2)
    assert body["cold_start"] is True and body["strategy"] == "cold_start"
    assert [i["item_id"] for i in body["items"]] == ["d0", "d1"]
    assert body["items"][0]["reason"] == {"type": "popular_in_your_country", "country": "DE"}
    # the request's country works too (for anyone, via the cold-start strategy)
    anon = shop.recommend("anonymous", k=2, country="DE", strategy="cold_start")
    assert [i["item_id"] for i in anon["items"]] == ["d0", "d1"]
    # with no context at all, what is popular overall
    assert shop.ids("anonymous", k=2, strategy="cold_start") == ["f0", "f1"]


def test_once_attributes_exist_new_users_get_what_similar_users_liked(shop: Shop) -> None:
    for u in range(5):
        shop.client.put(f"/v1/users/vip{u}", json={"segment": "vip", "age_band": "45-54"})
    events = [event("purchase", f"vip{u}", "caviar", T0 + u) for u in range(5)]
    events += [event("view", f"m{u}", item, T0 + u) for u in range(20) for item in ("tea", "mug")]
    shop.events(events)
    assert shop.ids("plain-newcomer", k=1) == ["tea"] or shop.ids("plain-newcomer", k=1) == ["mug"]
    shop.client.put("/v1/users/vip-newcomer", json={"segment": "vip"})
    body = shop.recommend("vip-newcomer", k=3)
    assert body["items"][0]["item_id"] == "caviar"
    assert body["items"][0]["reason"] == {
        "type": "popular_with_similar_shoppers",
        "attribute": "segment=vip",
    }


def test_trending_now_is_what_rose_in_the_last_hours(shop: Shop) -> None:
    old = [event("view", f"o{u}", "evergreen", T0 + u) for u in range(30)]
    burst_at = T0 + 3 * 86_400
    new = [event("view", f"b{u}", "viral", burst_at + u) for u in range(12)]
    shop.events(old + new)
    body = shop.recommend("someone", k=2, strategy="cold_start")
    reasons = {i["item_id"]: i["reason"]["type"] for i in body["items"]}
    assert reasons["viral"] == "trending_now"
    assert reasons["evergreen"] == "popular"


def test_a_new_item_without_interactions_is_recommended_by_its_category(shop: Shop) -> None:
    shop.items(
        [
            {"item_id": "boot-1", "category": "boots", "brand": "acme"},
            {"item_id": "boot-2", "category": "boots", "brand": "other"},
            {"item_id": "scarf", "category": "scarves"},
        ]
    )
    events = [event("view", f"x{u}", "scarf", T0 + u) for u in range(10)]
    events += [event("view", "u1", "boot-1", T0 + 100)]
    shop.events(events)
    shop.items(
        [
            {"item_id": "boot-new", "category": "boots", "brand": "acme"},
            {"item_id": "boot-gone", "category": "boots", "available": False},
            {"item_id": "hat-new", "category": "hats"},
        ]
    )
    body = shop.recommend("u1", k=4)
    new = [i for i in body["items"] if i["item_id"] == "boot-new"]
    assert new and new[0]["reason"] == {"type": "new_like_what_you_viewed", "item_id": "boot-1"}
    ids = [i["item_id"] for i in body["items"]]
    assert "boot-gone" not in ids and "hat-new" not in ids
    # asked for a category, a shopper sees its new items too
    hats = shop.recommend("stranger", k=3, category="hats")["items"]
    assert [(i["item_id"], i["reason"]["type"]) for i in hats] == [("hat-new", "new_arrival")]
    # once shoppers touch it, it is an ordinary item
    shop.events([event("view", "x1", "boot-new", T0 + 200)])
    after = shop.recommend("u1", k=5)  # (k=4 is in the cache: x1's event is not u1's)
    assert after["cached"] is False
    reasons = {i["item_id"]: i["reason"]["type"] for i in after["items"]}
    assert reasons.get("boot-new") != "new_like_what_you_viewed"
    assert reasons.get("boot-2") == "new_like_what_you_viewed"
    fresh = shop.engine.catalogue.fresh()
    assert "boot-new" not in {shop.engine.catalogue.ids.key(int(c)) for c in fresh}


def test_similar_items_of_a_new_item_come_from_its_category(shop: Shop) -> None:
    shop.items(
        [
            {"item_id": "b1", "category": "boots"},
            {"item_id": "b2", "category": "boots"},
            {"item_id": "b3", "category": "boots", "available": False},
            {"item_id": "s1", "category": "scarves"},
        ]
    )
    shop.events(
        [event("view", f"x{u}", item, T0 + u) for u in range(6) for item in ("b1", "s1")]
        + [event("view", "y", "b2", T0 + 50), event("view", "y", "b3", T0 + 51)]
    )
    shop.items(
        [{"item_id": "b-new", "category": "boots"}, {"item_id": "b-newer", "category": "boots"}]
    )
    body = shop.client.get("/v1/items/b-new/similar", params={"k": 5}).json()
    assert [i["item_id"] for i in body["items"]] == ["b1", "b2", "b-newer"]
    assert body["items"][0]["reason"] == {"type": "same_category", "item_id": "b-new"}
    assert shop.client.get("/v1/items/nowhere/similar").status_code == 404


def test_a_new_item_counts_against_max_per_category(shop: Shop) -> None:
    shop.items([{"item_id": f"shoe-{n}", "category": "shoes"} for n in range(3)])
    shop.items([{"item_id": "sock", "category": "socks"}])
    events = [event("view", f"x{u}", f"shoe-{u % 3}", T0 + u) for u in range(12)]
    events += [event("view", f"x{u}", "sock", T0 + 20 + u) for u in range(4)]
    events += [event("view", "u1", "shoe-0", T0 + 100)]
    shop.events(events)
    shop.items([{"item_id": "shoe-new", "category": "shoes"}])

    def categories(body: dict) -> list[str]:
        return [i["item_id"].split("-")[0] for i in body["items"]]

    # without a cap the new shoe takes the last place, next to the shoes already shown
    free = shop.recommend("u1", k=3, category="shoes")
    assert [i["item_id"] for i in free["items"]][-1] == "shoe-new"
    # with a cap of 2 a shoe-only list holds two shoes, the new one included only if it fits
    capped = shop.recommend("u1", k=3, category="shoes", max_per_category=2)
    assert categories(capped).count("shoe") == len(capped["items"]) <= 2
    mixed = shop.recommend("u1", k=3, max_per_category=1)
    assert categories(mixed).count("shoe") <= 1
    # a cap the list leaves room under still lets the new item in (in the last place)
    roomy = shop.recommend("u1", k=4, max_per_category=3)
    assert [i["item_id"] for i in roomy["items"]][-1] == "shoe-new"
    assert categories(roomy).count("shoe") <= 3
