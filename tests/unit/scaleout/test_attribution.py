"""Click attribution over the replicas of a scale-out deployment (real Redis): a response
served by one replica is attributed by any replica, the feedback counters are the
deployment's, a response's first click counts once, A/B arms count clicks from every replica,
and an unreachable Redis fails nothing."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from freshrec.engine.feedback import Feedback
from freshrec.errors import StorageError
from freshrec.events import EventType, LoggedEvent
from freshrec.state.redis_feedback import RedisFeedback
from tests.redis_helpers import REDIS_URL
from tests.unit.scaleout.test_scaleout import partition_users

# the two-replica fixtures of test_shop (``replicas`` and the ``settings`` it uses)
from tests.unit.scaleout.test_shop import T0, replicas, settings, within  # noqa: F401

Clients = tuple[TestClient, TestClient]


def feedback(client: TestClient) -> Feedback:
    return client.app.state.service.feedback  # type: ignore[attr-defined]


def sync(*clients: TestClient) -> None:
    """One poll of each replica (its poller thread does the same every shop_poll_seconds)."""
    for client in clients:
        feedback(client).sync()


def recommend(client: TestClient, user: str) -> dict[str, Any]:
    response = client.get("/v1/recommendations", params={"user_id": user, "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["items"], body
    return body


def click(client: TestClient, shown: dict[str, Any], kind: str = "click", **extra: Any) -> None:
    event = {
        "type": kind,
        "user_id": shown["user_id"],
        "item_id": shown["items"][0]["item_id"],
        "timestamp": T0 + 9_000,
        "recommendation_id": shown["recommendation_id"],
        **extra,
    }
    assert client.post("/v1/events", json=event).status_code == 202


def stats(client: TestClient) -> dict[str, Any]:
    return client.get("/v1/stats").json()


def test_a_response_served_on_a_is_attributed_by_b(replicas: Clients) -> None:  # noqa: F811
    ca, cb = replicas
    shopper = partition_users(6, 1)[1]
    shown = recommend(ca, shopper)
    sync(ca)  # A's poll writes the response to Redis
    click(cb, shown, event_id="c1")
    click(cb, shown, "purchase", event_id="p1")
    key = f"{shown['strategy']}/{shown['model_version']}"
    assert stats(cb)["feedback_unattributed"] == 0
    sync(ca, cb)
    sync(ca)  # A reads back what B pushed after A's last poll
    for client in (ca, cb):
        fb = stats(client)["feedback"][key]
        assert (fb["responses"], fb["items_shown"], fb["clicks"], fb["purchases"]) == (1, 3, 1, 1)
        assert fb["ctr"] == 1.0 and fb["conversion"] == 1.0
        text = client.get("/metrics").text
        labels = f'model_version="{shown["model_version"]}",strategy="{shown["strategy"]}"'
        assert f"freshrec_recommendation_clicks_total{{{labels}}} 1.0" in text
        assert f"freshrec_recommendation_responses_total{{{labels}}} 1.0" in text


def test_counters_are_the_deployments_on_every_replica(replicas: Clients) -> None:  # noqa: F811
    """Responses served and clicks posted on both replicas: after a poll of each, both show
    the same sums (and their own counts since the last poll on top)."""
    ca, cb = replicas
    users = partition_users(6, 0) + partition_users(6, 1)
    shown = [recommend(ca if n % 2 else cb, user) for n, user in enumerate(users)]
    sync(ca, cb)
    for n, body in enumerate(shown[:8]):
        click(cb if n % 3 else ca, body)
    sync(ca, cb)
    sync(ca)
    a, b = stats(ca)["feedback"], stats(cb)["feedback"]
    assert a == b
    assert sum(fb["responses"] for fb in a.values()) == len(users)
    assert sum(fb["clicks"] for fb in a.values()) == 8
    # a replica's own counts since its last poll are in its figures at once
    recommend(ca, users[0])
    assert sum(fb["responses"] for fb in stats(ca)["feedback"].values()) == len(users) + 1
    within(2.0, lambda: sum(f["responses"] for f in stats(cb)["feedback"].values()) > len(users))


def test_a_first_click_counts_once_when_both_replicas_get_clicks(replicas: Clients) -> None:  # noqa: F811
    ca, cb = replicas
    shown = recommend(ca, partition_users(6, 0)[2])
    sync(ca)
    click(ca, shown, event_id="on-a")
    click(cb, shown, event_id="on-b")
    click(ca, shown, event_id="on-b")  # resent to the other replica: a duplicate, not counted
    click(cb, shown, "purchase", event_id="buy-b")
    click(ca, shown, "purchase", event_id="buy-a")
    sync(ca, cb)
    sync(ca)
    key = f"{shown['strategy']}/{shown['model_version']}"
    for client in (ca, cb):
        fb = stats(client)["feedback"][key]
        assert (fb["responses"], fb["clicks"], fb["purchases"]) == (1, 2, 2)
        assert fb["ctr"] == 1.0 and fb["conversion"] == 1.0  # clicked and converted: once


def test_ab_arms_count_clicks_from_every_replica(replicas: Clients) -> None:  # noqa: F811
    ca, cb = replicas
    arms = [
        {"name": "pop", "strategy": "popular", "percent": 50},
        {"name": "ens", "strategy": "ensemble", "percent": 50},
    ]
    assert ca.post("/v1/experiments", json={"id": "ab1", "arms": arms}).status_code == 201
    within(2.0, lambda: cb.get("/v1/experiments/ab1").status_code == 200)
    users = [f"visitor-{n}" for n in range(12)]
    shown = [recommend(ca, user) for user in users]
    assert {body["experiment"]["arm"] for body in shown} == {"pop", "ens"}
    sync(ca)
    clicked = shown[:6]  # clicked on B (twice for some), served on A
    for n, body in enumerate(clicked):
        click(cb, body)
        if n % 2:
            click(ca, body)  # a second click, on A: not a second "clicked" response
    sync(ca, cb)
    expected = {
        arm: (
            sum(b["experiment"]["arm"] == arm for b in shown),
            sum(b["experiment"]["arm"] == arm for b in clicked),
        )
        for arm in ("pop", "ens")
    }

    def readout(client: TestClient) -> dict[str, tuple[int, float]]:
        rows = client.get("/v1/experiments/ab1").json()["arms"]
        return {row["name"]: (row["responses"], row["ctr"]) for row in rows}

    want = {arm: (n, hit / n) for arm, (n, hit) in expected.items()}
    for client in (ca, cb):
        within(2.0, lambda c=client: readout(c) == want)  # type: ignore[misc]

    def clicks(client: TestClient) -> int:
        return sum(row["clicks"] for row in client.get("/v1/experiments/ab1").json()["arms"])

    # the second clicks reach B through A's next push and B's next pull (the replicas' poller
    # threads sync too, so one explicit round may land between two of theirs): wait for them
    sync(ca, cb)
    within(2.0, lambda: clicks(cb) == len(clicked) + len(clicked) // 2)


def test_an_unreachable_redis_fails_nothing_and_counts_are_retried(redis_prefix: str) -> None:
    """Serving and attribution go on without Redis; what could not be sent is sent by the
    next sync that reaches it, once."""
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    live = redis.Redis.from_url(REDIS_URL)
    fb = Feedback(100, remote=RedisFeedback(dead, redis_prefix, 60.0))
    fb.served("r1", "ensemble", "v1", "u1", ["a", "b"])
    click = LoggedEvent(int(EventType.click), "u1", "a", T0, recommendation_id="r1")
    other = LoggedEvent(int(EventType.click), "u2", "a", T0, recommendation_id="elsewhere")
    assert fb.observe([click, other]) == 1  # its own response; the other is unattributed
    with pytest.raises(StorageError):
        fb.sync()
    assert fb.stats()["ensemble/v1"]["ctr"] == 1.0
    fb.remote = RedisFeedback(live, redis_prefix, 60.0)  # Redis is back
    fb.sync()
    fb.sync()
    peer = Feedback(100, remote=RedisFeedback(live, redis_prefix, 60.0))
    peer.sync()
    assert peer.stats() == fb.stats()
    assert peer.stats()["ensemble/v1"] == {
        "responses": 1,
        "items_shown": 2,
        "clicks": 1,
        "purchases": 0,
        "ctr": 1.0,
        "conversion": 0.0,
    }
    # the response went out with the retried sync: the peer attributes a click to it
    assert (
        peer.observe(
            [LoggedEvent(int(EventType.click), "u1", "b", T0, "e2", recommendation_id="r1")]
        )
        == 1
    )
    live.close()
    dead.close()
