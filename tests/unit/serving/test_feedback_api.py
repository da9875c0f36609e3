"""Clicks and purchases carrying a recommendation_id, attributed to strategy and version."""

from __future__ import annotations

from tests.unit.serving.conftest import T0, Shop, event


def test_clicks_and_purchases_are_attributed_to_the_response(shop: Shop) -> None:
    shop.events([event("view", f"x{u}", f"i{u % 5}", T0 + u) for u in range(20)])
    shown = [shop.recommend(f"s{n}", k=3) for n in range(4)]
    clicked, bought = shown[0], shown[1]
    item = clicked["items"][0]["item_id"]
    rid = clicked["recommendation_id"]
    shop.events(
        [
            event("click", "s0", item, T0 + 100, recommendation_id=rid, event_id="c1"),
            event("click", "s0", item, T0 + 101, recommendation_id=rid, event_id="c1"),  # again
            event("click", "s0", item, T0 + 102, recommendation_id=rid),  # a second click
            event("click", "s0", "not-shown", T0 + 103, recommendation_id=rid),
            event("click", "s0", item, T0 + 104, recommendation_id="unknown-response"),
            event(
                "purchase",
                "s1",
                bought["items"][1]["item_id"],
                T0 + 105,
                recommendation_id=bought["recommendation_id"],
            ),
        ]
    )
    stats = shop.client.get("/v1/stats").json()
    key = f"{clicked['strategy']}/{clicked['model_version']}"
    fb = stats["feedback"][key]
    assert (fb["responses"], fb["clicks"], fb["purchases"]) == (4, 2, 1)
    assert fb["ctr"] == 0.25 and fb["conversion"] == 0.25 and fb["items_shown"] == 12
    assert stats["feedback_unattributed"] == 2
    text = shop.client.get("/metrics").text
    labels = f'model_version="{clicked["model_version"]}",strategy="{clicked["strategy"]}"'
    assert f"freshrec_recommendation_ctr{{{labels}}} 0.25" in text
    assert f"freshrec_recommendation_clicks_total{{{labels}}} 2.0" in text
    assert f"freshrec_recommendation_responses_total{{{labels}}} 4.0" in text


def test_each_strategy_has_its_own_rates(shop: Shop) -> None:
    shop.events([event("view", f"x{u}", f"i{u % 5}", T0 + u) for u in range(20)])
    pop = shop.recommend("a", k=2, strategy="popular")
    shop.recommend("b", k=2, strategy="cold_start")
    shop.events(
        [
            event(
                "click",
                "a",
                pop["items"][0]["item_id"],
                T0 + 50,
                recommendation_id=pop["recommendation_id"],
            )
        ]
    )
    fb = shop.client.get("/v1/stats").json()["feedback"]
    version = pop["model_version"]
    assert fb[f"popular/{version}"]["ctr"] == 1.0
    assert fb[f"cold_start/{version}"]["ctr"] == 0.0
