"""The HTTP contract of DESIGN §3, through the real app (in-process ASGI client)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from freshrec import Engine
from freshrec.serving import create_app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    engine = Engine.open(tmp_path, max_body_bytes=200_000, max_batch_events=1000)
    with TestClient(create_app(engine)) as c:
        c.engine = engine  # type: ignore[attr-defined]
        yield c
    engine.close()


def post(client: TestClient, body: object) -> tuple[int, dict]:
    r = client.post("/v1/events", content=json.dumps(body))
    return r.status_code, r.json()


def settle(client: TestClient) -> None:
    assert client.engine.wait_processed(timeout=10)  # type: ignore[attr-defined]


def test_batch_keeps_valid_events_and_lists_each_invalid_one(client: TestClient) -> None:
    status, body = post(
        client,
        {
            "events": [
                {"type": "view", "user_id": "u", "item_id": "a", "event_id": "e1"},
                {"type": "jump", "user_id": "u", "item_id": "a"},
                {"type": "view", "user_id": "u", "item_id": 3},
                {"type": "view", "user_id": "u", "item_id": "b", "event_id": "e1"},
            ]
        },
    )
    assert status == 202
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert [(e["index"], e["error"].split(":")[0]) for e in body["errors"]] == [
        (1, "type"),
        (2, "item_id"),
    ]


def test_single_event_and_duplicate(client: TestClient) -> None:
    event = {"type": "purchase", "user_id": "u", "item_id": "a", "event_id": "x", "value": 3.5}
    assert post(client, event) == (202, {"accepted": 1, "duplicates": 0, "errors": []})
    assert post(client, event) == (202, {"accepted": 0, "duplicates": 1, "errors": []})


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"{oops", 400, "body: not valid JSON"),
        # the typed pass stops at the single event's first field; the syntax error is later
        (b'{"type": "view", "user_id": "u", "item_id": "a", "value": NaN}', 400, "not valid JSON"),
        (b'{"type": "view", "user_id": "u"', 400, "not valid JSON"),
        (b'{"type": "view", "user_id": "u", "item_id": "a"} trailing', 400, "not valid JSON"),
        (b'{"type": "view", "user_id": "u", "item_id": "a", "value": 1e400}', 400, "not valid"),
        (b"", 400, "body: empty; send an event object"),
        (b'"just a string"', 400, "body: expected an event object"),
        (b'{"type": "view", "user_id": "", "item_id": "a"}', 422, "user_id"),
        (
            json.dumps({"events": [{"type": "x", "user_id": "u", "item_id": "i"}] * 3}).encode(),
            422,
            "type: unknown event type",
        ),
        (
            json.dumps(
                {"events": [{"type": "view", "user_id": "u", "item_id": "i"}] * 1001}
            ).encode(),
            413,
            "over the limit of 1000",
        ),
        (b"[" + b" " * 300_000 + b"]", 413, "over the limit of 200000"),
    ],
)
def test_bad_bodies_get_a_clear_4xx(
    client: TestClient, content: bytes, status: int, words: str
) -> None:
    r = client.post("/v1/events", content=content)
    assert r.status_code == status
    assert words in r.json()["error"]
    assert client.get("/healthz").status_code == 200  # and the server keeps serving


def test_chunked_body_over_the_limit_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(30):
            yield b" " * 10_000

    r = client.post("/v1/events", content=chunks())
    assert r.status_code == 413


def test_recommendations_contract(client: TestClient, checkerboard: list[dict]) -> None:
    post(client, {"events": checkerboard})
    settle(client)
    r = client.get("/v1/recommendations", params={"user_id": "u0", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"recommendation_id", "model_version", "items"}
    assert len(body["items"]) == 3
    for item in body["items"]:
        assert set(item) == {"item_id", "score", "reason"} and "type" in item["reason"]
    unknown = client.get("/v1/recommendations", params={"user_id": "never-seen"}).json()
    assert unknown["items"] and all(i["reason"]["type"] == "popular" for i in unknown["items"])
    assert unknown["recommendation_id"] != body["recommendation_id"]


def test_recommendations_reflect_the_latest_event(
    client: TestClient, checkerboard: list[dict]
) -> None:
    post(client, {"events": checkerboard})
    settle(client)
    post(client, {"type": "view", "user_id": "shopper", "item_id": "b0"})
    settle(client)
    items = client.get("/v1/recommendations", params={"user_id": "shopper", "k": 2}).json()["items"]
    assert [i["item_id"] for i in items] == ["b1", "b2"]
    assert items[0]["reason"] == {"type": "because_you_viewed", "item_id": "b0"}
    post(client, {"type": "purchase", "user_id": "shopper", "item_id": "b1"})
    settle(client)
    got = client.get("/v1/recommendations", params={"user_id": "shopper", "exclude": "b2"}).json()
    assert not {"b1", "b2"} & {i["item_id"] for i in got["items"]}


def test_query_validation_names_the_parameter(client: TestClient) -> None:
    r = client.get("/v1/recommendations", params={"user_id": "u", "k": 0})
    assert r.status_code == 422 and r.json()["error"].startswith("k:")
    r = client.get("/v1/recommendations")
    assert r.status_code == 422 and r.json()["error"].startswith("user_id:")


def test_similar_items(client: TestClient, checkerboard: list[dict]) -> None:
    post(client, {"events": checkerboard})
    settle(client)
    body = client.get("/v1/items/a0/similar", params={"k": 5}).json()
    assert [i["item_id"] for i in body["items"]] == ["a1", "a2"]
    r = client.get("/v1/items/nope/similar")
    assert r.status_code == 404 and "item_id" in r.json()["error"]


def test_stats_health_and_metrics(client: TestClient, checkerboard: list[dict]) -> None:
    post(client, {"events": [*checkerboard, {"type": "bad", "user_id": "u", "item_id": "i"}]})
    settle(client)
    stats = client.get("/v1/stats").json()
    assert (stats["events_accepted"], stats["events_processed"], stats["events_rejected"]) == (
        60,
        60,
        1,
    )
    assert (stats["users"], stats["items"]) == (20, 6)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.get("/v1/recommendations", params={"user_id": "u0"})
    text = client.get("/metrics").text
    for line in (
        "freshrec_events_accepted_total 60.0",
        "freshrec_events_rejected_total 1.0",
        "freshrec_events_duplicate_total 0.0",
        "freshrec_events_processed_total 60.0",
    ):
        assert line in text
    assert (
        'freshrec_http_request_duration_seconds_count{method="GET",route="/v1/recommendations"'
        in text
    )
    assert "freshrec_recommend_duration_seconds_count 1.0" in text


def test_readyz_is_503_until_the_log_is_replayed(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "x")
    app = create_app(engine, run_processor=False)
    with TestClient(app) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "replaying" in r.json()["reason"]
    engine.close()


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/events",
        "/v1/recommendations",
        "/v1/items/{item_id}/similar",
        "/v1/stats",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(paths)


def test_models_endpoint_and_quality_metrics(client: TestClient, checkerboard: list[dict]) -> None:
    post(client, {"events": checkerboard})
    settle(client)
    body = client.get("/v1/models").json()
    assert {m["name"] for m in body["models"]} == {
        "popularity",
        "covisitation",
        "mf",
        "ranker",
        "popularity_fast",  # the default short time-window member (ensemble_fast_members)
    }
    assert abs(sum(m["weight"] for m in body["models"]) - 1) < 1e-9
    text = client.get("/metrics").text
    assert 'freshrec_model_hit_rate{model="covisitation"}' in text
    assert 'freshrec_ensemble_weight{model="popularity"}' in text
    assert "freshrec_live_tests_total" in text


def test_request_context_reaches_the_ranker(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path, trusted_country_header="CF-IPCountry")
    with TestClient(create_app(engine)) as c:
        post(
            c,
            {
                "events": [
                    {
                        "type": "view",
                        "user_id": f"u{n}",
                        "item_id": f"i{n % 3}",
                        "context": {"device": "mobile", "country": "DE"},
                    }
                    for n in range(30)
                ]
            },
        )
        assert engine.wait_processed(timeout=10)
        phone = (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
        )
        r = c.get(
            "/v1/recommendations",
            params={"user_id": "new", "tz_offset_minutes": 60},
            headers={"user-agent": phone, "CF-IPCountry": "de"},
        )
        assert r.status_code == 200
        reasons = {i["reason"]["type"] for i in r.json()["items"]}
        assert "popular_in_your_context" in reasons  # device and country came from the headers
        anonymous = c.get(
            "/v1/recommendations", params={"user_id": "new"}, headers={"user-agent": "curl/8"}
        ).json()
        assert {i["reason"]["type"] for i in anonymous["items"]} == {"popular"}
        bad = c.get("/v1/recommendations", params={"user_id": "x", "tz_offset_minutes": 9999})
        assert bad.status_code == 422 and bad.json()["error"].startswith("tz_offset_minutes:")
    engine.close()


def test_model_error_metrics_are_exported(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert 'freshrec_model_errors_total{model="mf"} 0.0' in text
    assert 'freshrec_model_disabled{model="mf"} 0.0' in text
