"""The fast lane (``freshrec.serving.lane``) answers exactly as FastAPI's routed path does."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from freshrec import Engine
from freshrec.serving import create_app
from freshrec.serving.lane import FastLane

T0 = 1_700_000_000.0

QUERIES = [
    {"user_id": "u1"},
    {"user_id": "u1", "k": 3, "exclude_viewed": "true"},
    {"user_id": "u2", "category": "c1", "max_per_category": 1},
    {"user_id": "nobody", "device": "mobile", "country": "DE"},
    {"user_id": "u1", "k": 0},  # 422: k
    {"user_id": "u1", "k": "many"},  # 422: k
    {"k": 3},  # 422: user_id
    {"user_id": "u1", "min_price": 9, "max_price": 1},  # engine error: price range
    {"user_id": "u1", "strategy": "psychic"},  # engine error: strategy
    {"user_id": "u1", "exclude": "no-such-item"},
]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = Engine.open(tmp_path, recommend_budget_ms=5000.0)
    events = [
        {"type": "view", "user_id": f"u{u}", "item_id": f"i{(u * 3 + j) % 12}", "timestamp": T0 + j}
        for u in range(6)
        for j in range(5)
    ]
    with TestClient(create_app(engine)) as client:
        assert client.post("/v1/events", json={"events": events}).status_code == 202
        items = [{"item_id": f"i{i}", "category": f"c{i % 3}", "price": i} for i in range(12)]
        assert client.post("/v1/items", json={"items": items}).status_code == 200
        assert engine.wait_processed(timeout=10)
    yield engine
    engine.close()


def _answers(engine: Engine, fast_lane: bool) -> list[tuple[int, object]]:
    app = create_app(engine, run_processor=False, fast_lane=fast_lane)
    out: list[tuple[int, object]] = []
    with TestClient(app) as client:
        for params in QUERIES:
            r = client.get("/v1/recommendations", params=params)
            body = r.json()
            if r.status_code == 200:
                body = [(i["item_id"], i["reason"]) for i in body["items"]]
            out.append((r.status_code, body))
        metrics = client.get("/metrics").text
        assert client.post("/v1/recommendations").status_code == 405  # not GET: routed
    assert 'method="GET",route="/v1/recommendations",status="422"' in metrics
    return out


def test_the_lane_answers_as_the_routed_path(engine: Engine) -> None:
    fast, routed = _answers(engine, True), _answers(engine, False)
    assert fast == routed
    assert [status for status, _ in fast] == [200] * 4 + [422] * 6
    assert all(items for _, items in fast[:4])
    # validation errors (pydantic) and engine errors (FreshrecError): each names its field
    errors = [body["error"].split(":")[0] for _, body in fast[4:]]  # type: ignore[index]
    assert errors == ["k", "k", "user_id", "min_price", "strategy", "exclude"]


def test_the_lane_takes_endpoints_of_the_request_alone() -> None:
    async def takes_request(request: Request) -> None: ...

    async def takes_more(request: Request, k: int) -> None: ...

    api = create_app(Engine.open(), run_processor=False)
    metrics = api.state.metrics
    FastLane(api, {"/a": takes_request}, metrics)
    with pytest.raises(TypeError, match="takes the Request alone"):
        FastLane(api, {"/b": takes_more}, metrics)


def test_an_unexpected_error_in_the_lane_is_a_500_and_counted(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(engine, run_processor=False)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.state.service, "recommend_async", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/v1/recommendations", params={"user_id": "u1"})
        assert (r.status_code, r.text) == (500, "Internal Server Error")
        metrics = client.get("/metrics").text
    assert 'method="GET",route="/v1/recommendations",status="500"} 1.0' in metrics


def test_with_cors_a_cross_origin_request_gets_its_headers(tmp_path: Path) -> None:
    shop = "https://shop.example"
    engine = Engine.open(tmp_path, cors_origins=[shop])
    app = create_app(engine, run_processor=False)
    served = []
    serve = app.lane.serve  # type: ignore[union-attr]

    async def counted(*args: object) -> None:
        served.append(True)
        await serve(*args)  # type: ignore[arg-type]

    app.lane.serve = counted  # type: ignore[union-attr,method-assign]
    with TestClient(app) as client:
        plain = client.get("/v1/recommendations", params={"user_id": "u1"})
        assert plain.status_code == 200 and len(served) == 1  # the lane
        cross = client.get(
            "/v1/recommendations", params={"user_id": "u1"}, headers={"Origin": shop}
        )
        assert cross.status_code == 200 and len(served) == 1  # routed: CORS middleware
        assert cross.headers["access-control-allow-origin"] == shop
        assert cross.json()["items"] == plain.json()["items"]
    engine.close()
