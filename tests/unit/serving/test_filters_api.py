"""Filters on GET /v1/recommendations, shop-wide rules and explanations, over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.unit.serving.conftest import T0, Shop, event

CATEGORIES = {"shoes": ["s0", "s1", "s2", "s3"], "hats": ["h0", "h1", "h2"], "bags": ["b0", "b1"]}
PRICES = {"s0": 10, "s1": 20, "s2": 30, "s3": 40, "h0": 5, "h1": 15, "h2": 25, "b0": 50, "b1": 60}


def world(shop: Shop) -> None:
    """A catalogue of 9 items in 3 categories; 30 shoppers browse them in sessions; u0 has
    viewed s0 and h0 and bought b0."""
    shop.items(
        [
            {"item_id": i, "category": c, "price": PRICES[i]}
            for c, items in CATEGORIES.items()
            for i in items
        ]
    )
    events = []
    everything = [i for items in CATEGORIES.values() for i in items]
    for u in range(30):
        for step in range(4):
            item = everything[(u + 3 * step) % len(everything)]
            events.append(event("view", f"x{u}", item, T0 + 60 * u + step))
    events += [
        event("view", "u0", "s0", T0 + 5000),
        event("view", "u0", "h0", T0 + 5010),
        event("purchase", "u0", "b0", T0 + 5020),
    ]
    shop.events(events)


@pytest.fixture
def filtered(shop: Shop) -> Shop:
    world(shop)
    return shop


def category_of(item: str) -> str:
    return next(c for c, items in CATEGORIES.items() if item in items)


@pytest.mark.parametrize("user", ["u0", "stranger"])
def test_category_and_price_range(filtered: Shop, user: str) -> None:
    ids = filtered.ids(user, k=10, category="shoes")
    assert ids and {category_of(i) for i in ids} == {"shoes"}
    ids = filtered.ids(user, k=10, min_price=15, max_price=40)
    assert ids and all(15 <= PRICES[i] <= 40 for i in ids)
    assert set(filtered.ids(user, k=10, category="hats", max_price=20)) <= {"h0", "h1"}


def test_purchased_are_excluded_by_default_and_viewed_on_request(filtered: Shop) -> None:
    assert "b0" not in filtered.ids("u0", k=9)
    assert "b0" in filtered.ids("u0", k=9, exclude_purchased="false")
    viewed_too = filtered.ids("u0", k=9, exclude_viewed="true")
    assert viewed_too and not {"s0", "h0", "b0"} & set(viewed_too)


def test_exclude_list_and_diversity(filtered: Shop) -> None:
    ids = filtered.ids("u0", k=6, exclude="s1,h1")
    assert ids and not {"s1", "h1"} & set(ids)
    diverse = filtered.ids("u0", k=6, max_per_category=1)
    assert len(diverse) == 3 and len({category_of(i) for i in diverse}) == 3
    two = filtered.ids("stranger", k=6, max_per_category=2)
    cats = [category_of(i) for i in two]
    assert len(two) == 6 and all(cats.count(c) == 2 for c in set(cats))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_price": 50, "max_price": 10}, "min_price"),
        ({"min_price": "cheap"}, "min_price"),
        ({"max_price": "nan"}, "max_price"),
        ({"max_price": -3}, "max_price"),
        ({"exclude": "s0,no-such-item"}, "exclude"),
        ({"max_per_category": -1}, "max_per_category"),
        ({"strategy": "psychic"}, "strategy"),
        ({"category": ""}, "category"),
    ],
)
def test_malformed_filters_are_4xx_naming_the_field(
    filtered: Shop, params: dict, field: str
) -> None:
    r = filtered.client.get("/v1/recommendations", params={"user_id": "u0", **params})
    assert r.status_code == 422, r.text
    assert r.json()["error"].startswith(f"{field}:")


def test_shop_rules_from_settings(open_shop: Callable[..., Shop]) -> None:
    shop = open_shop(excluded_categories=["bags"], max_per_category=1, exclude_purchased=False)
    world(shop)
    ids = shop.ids("u0", k=9)
    assert ids and "bags" not in {category_of(i) for i in ids}
    assert len(ids) == len({category_of(i) for i in ids})  # one per category by default
    assert len(shop.ids("u0", k=9, max_per_category=3)) > 2  # a request may ask otherwise
    assert "b0" not in shop.ids("u0", k=9, category="bags")  # the rule wins over the request
    # similar items keep the rule too, for items known from events and catalogue-only ones
    similar = shop.client.get("/v1/items/s0/similar", params={"k": 9}).json()["items"]
    assert similar and "bags" not in {category_of(i["item_id"]) for i in similar}
    shop.items([{"item_id": "b-new", "category": "bags"}])
    assert shop.client.get("/v1/items/b-new/similar").json()["items"] == []


KNOWN_REASONS = {
    "because_you_viewed",
    "because_you_added_to_cart",
    "because_you_bought",
    "because_you_liked",
    "because_you_rated",
    "picked_for_you",
    "popular_in_your_context",
    "popular",
    "popular_in_your_country",
    "popular_on_your_device",
    "popular_at_this_time",
    "popular_with_similar_shoppers",
    "trending_now",
    "new_arrival",
    "new_like_what_you_viewed",
}


def test_every_item_carries_a_reason_a_shop_can_show(filtered: Shop) -> None:
    for user in ("u0", "x3", "stranger"):
        body = filtered.recommend(user, k=9, device="mobile", country="DE")
        assert body["items"]
        for item in body["items"]:
            assert item["reason"]["type"] in KNOWN_REASONS
            if item["reason"]["type"].startswith("because_you"):
                assert item["reason"]["item_id"] in {"s0", "h0", "b0"} | {
                    i for items in CATEGORIES.values() for i in items
                }
    reasons = [i["reason"] for i in filtered.recommend("u0", k=5)["items"]]
    assert {"type": "because_you_viewed", "item_id": "h0"} in reasons or {
        "type": "because_you_viewed",
        "item_id": "s0",
    } in reasons


def test_a_shortfall_is_filled_with_popular_items_that_pass_the_filters(shop: Shop) -> None:
    """Items of a rare category are far down the popular list: the models propose none of
    them, so the list is filled by a scan, each with its own (popular) reason."""
    items = [{"item_id": f"i{n}", "category": "rare" if n >= 390 else "common"} for n in range(400)]
    shop.items(items)
    events = [  # popularity falls with n: the rare ones (390..399) come last
        event("view", f"x{n}-{r}", f"i{n}", T0 + n)
        for n in range(400)
        for r in range(1 + (400 - n) // 80)
    ]
    events += [event("view", "u0", "i0", T0 + 900), event("view", "u0", "i1", T0 + 901)]
    shop.events(events)
    body = shop.recommend("u0", k=5, category="rare")
    assert body["fallback"] is None and body["strategy"] == "ensemble"
    assert len(body["items"]) == 5
    assert {i["item_id"] for i in body["items"]} <= {f"i{n}" for n in range(390, 400)}
    reasons = [i["reason"]["type"] for i in body["items"]]
    # what the models proposed keeps its reason; the filled places say "popular"
    assert reasons[-1] == "popular" and set(reasons) <= {"picked_for_you", "popular"}
