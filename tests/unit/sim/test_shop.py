"""The shop simulator: reproducible, valid events, and tastes that really shape what is viewed."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from freshrec.events import EventValidator
from freshrec.sim import Catalogue, ShopSimulator

START = 1_700_000_000.0


@pytest.fixture(scope="module")
def sim_events() -> tuple[ShopSimulator, list[dict]]:
    sim = ShopSimulator(seed=11, start_time=START)
    return sim, sim.take(60_000)


def test_same_seed_same_stream_and_another_seed_another() -> None:
    a = ShopSimulator(seed=5, start_time=START).take(3000)
    b = ShopSimulator(seed=5, start_time=START).take(3000)
    c = ShopSimulator(seed=6, start_time=START).take(3000)
    assert a == b
    assert [e["item_id"] for e in a] != [e["item_id"] for e in c]


def test_stream_does_not_depend_on_how_it_is_taken() -> None:
    whole = ShopSimulator(seed=2, start_time=START).take(900)
    sim = ShopSimulator(seed=2, start_time=START)
    pieces = sim.take(100) + sim.take(500) + sim.take(300)
    assert pieces == whole
    stream = ShopSimulator(seed=2, start_time=START).events(block=64)
    assert [next(stream) for _ in range(900)] == whole


def test_events_pass_the_validator(sim_events: tuple[ShopSimulator, list[dict]]) -> None:
    _, events = sim_events
    batch = EventValidator(now=lambda: START + 86_400).validate_many(events)
    assert batch.errors == []
    assert len(batch.events) == len(events)


def test_event_fields(sim_events: tuple[ShopSimulator, list[dict]]) -> None:
    sim, events = sim_events
    assert len({e["event_id"] for e in events}) == len(events)
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps) and stamps[0] >= START
    assert {e["context"]["device"] for e in events} == {"mobile", "desktop", "tablet"}
    assert all(e["user_id"] in sim.shoppers.index for e in events)
    assert all(e["item_id"] in sim.catalogue.index for e in events)
    assert all(e["session_id"].startswith(f"s11-{e['user_id']}-") for e in events)
    assert all("value" in e for e in events if e["type"] in ("add_to_cart", "purchase"))


def test_funnel_ratios_are_realistic(sim_events: tuple[ShopSimulator, list[dict]]) -> None:
    _, events = sim_events
    counts = Counter(e["type"] for e in events)
    assert counts["view"] > 0.8 * len(events)
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0
    assert counts["purchase"] < 0.03 * len(events)


def test_purchases_follow_add_to_cart(sim_events: tuple[ShopSimulator, list[dict]]) -> None:
    _, events = sim_events
    carted = set()
    for e in events:
        if e["type"] == "add_to_cart":
            carted.add((e["user_id"], e["item_id"]))
        elif e["type"] == "purchase":
            assert (e["user_id"], e["item_id"]) in carted


def test_views_concentrate_in_liked_categories(
    sim_events: tuple[ShopSimulator, list[dict]],
) -> None:
    sim, events = sim_events
    views: dict[str, list[int]] = defaultdict(list)
    for e in events:
        if e["type"] == "view":
            views[e["user_id"]].append(sim.catalogue.category_of(sim.catalogue.index[e["item_id"]]))
    shares = []
    for user_id, categories in views.items():
        if len(categories) < 100:
            continue
        liked = sim.shoppers.liked[sim.shoppers.index[user_id]]
        share = np.isin(categories, liked).mean()
        assert share > 0.75, (user_id, liked, Counter(categories).most_common(5))
        shares.append(share)
    assert len(shares) >= 20
    # a shopper likes at most 4 of 20 categories: uniform browsing would give at most 20 %
    assert np.mean(shares) > 0.9


def test_shoppers_tastes_differ(sim_events: tuple[ShopSimulator, list[dict]]) -> None:
    sim, _ = sim_events
    assert len(set(sim.shoppers.liked)) > 0.8 * sim.n_shoppers
    assert all(2 <= len(liked) <= 4 for liked in sim.shoppers.liked)


def test_consecutive_views_stay_near_each_other(
    sim_events: tuple[ShopSimulator, list[dict]],
) -> None:
    sim, events = sim_events
    last: dict[str, int] = {}
    same = total = 0
    for e in events:
        if e["type"] != "view":
            continue
        item = sim.catalogue.index[e["item_id"]]
        previous = last.get(e["session_id"])
        if previous is not None:
            total += 1
            same += sim.catalogue.category_of(previous) == sim.catalogue.category_of(item)
        last[e["session_id"]] = item
    assert same / total > 0.7


def test_sessions_have_a_realistic_length(sim_events: tuple[ShopSimulator, list[dict]]) -> None:
    _, events = sim_events
    lengths = Counter(e["session_id"] for e in events)
    assert 5 < np.mean(list(lengths.values())) < 25


def test_take_until_keeps_pace_with_a_clock() -> None:
    sim = ShopSimulator(seed=3, start_time=START)
    batch = sim.take(100, until=START + 5)
    assert batch[0]["timestamp"] >= START and batch[-1]["timestamp"] <= START + 6
    later = sim.take(100, until=START + 3600)  # an idle hour: jump, do not spread
    assert later[0]["timestamp"] > START + 3500
    assert later[-1]["timestamp"] <= START + 3601


def test_follow_clicks_a_liked_recommendation() -> None:
    sim = ShopSimulator(seed=4, start_time=START, follow_probability=1.0)
    user_id = sim.browsing_shopper()
    s = sim.shoppers.index[user_id]
    liked_item = sim.catalogue.members[sim.shoppers.liked[s][0]][0]
    disliked = next(c for c in range(sim.n_categories) if c not in sim.shoppers.liked[s])
    other_item = sim.catalogue.members[disliked][0]
    response = {
        "recommendation_id": "rec-1",
        "items": [
            {"item_id": "not-in-the-shop"},
            {"item_id": sim.catalogue.item_ids[other_item]},
            {"item_id": sim.catalogue.item_ids[liked_item]},
        ],
    }
    click = sim.follow(user_id, response)
    assert click is not None
    assert click["type"] == "click" and click["recommendation_id"] == "rec-1"
    assert click["item_id"] == sim.catalogue.item_ids[liked_item]
    following = next(e for e in sim.take(5000) if e["user_id"] == user_id)
    assert (following["type"], following["item_id"]) == ("view", click["item_id"])
    assert not EventValidator(now=lambda: START + 86_400).validate_many([click]).errors


def test_follow_ignores_what_a_shopper_would_not_click() -> None:
    sim = ShopSimulator(seed=4, start_time=START, follow_probability=1.0)
    user_id = sim.browsing_shopper()
    s = sim.shoppers.index[user_id]
    disliked = next(c for c in range(sim.n_categories) if c not in sim.shoppers.liked[s])
    response = {
        "recommendation_id": "r",
        "items": [{"item_id": sim.catalogue.item_ids[sim.catalogue.members[disliked][0]]}],
    }
    assert sim.follow(user_id, response) is None
    assert sim.follow("somebody-else", response) is None
    assert sim.follow(user_id, {"items": []}) is None
    idle = next(u for u in sim.shoppers.user_ids if not sim._busy[sim.shoppers.index[u]])
    assert sim.follow(idle, response) is None


def test_catalogue_structure() -> None:
    catalogue = Catalogue(n_items=3000, n_categories=20, rng=np.random.default_rng(0))
    assert len(set(catalogue.item_ids)) == 3000 and catalogue.item_ids[123] == "sku-000123"
    sizes = [len(m) for m in catalogue.members]
    assert min(sizes) > 0 and sum(sizes) == 3000
    assert len(set(catalogue.category_names)) == 20
    assert (catalogue.price > 0).all()
    for item in range(0, 3000, 37):
        for u in (0.0, 0.3, 0.6, 0.99):
            assert catalogue.category_of(catalogue.neighbour(item, u)) == catalogue.category_of(
                item
            )
    records = catalogue.records()
    assert records[0].keys() == {"item_id", "category", "price"}


def test_catalogue_popularity_is_skewed() -> None:
    catalogue = Catalogue(n_items=3000, n_categories=20, rng=np.random.default_rng(0))
    draws = Counter(catalogue.sample(0, u) for u in np.random.default_rng(1).random(20_000))
    top_share = sum(n for _, n in draws.most_common(len(catalogue.members[0]) // 10)) / 20_000
    assert top_share > 0.3
