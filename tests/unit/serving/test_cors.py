"""Cross-origin calls (the browser SDK on a shop's own domain): allowed origins only."""

from __future__ import annotations

from fastapi.testclient import TestClient

from freshrec import Engine
from freshrec.serving import create_app

SHOP = "https://shop.example"


def client(**settings: object) -> TestClient:
    return TestClient(create_app(Engine.open(None, **settings), run_processor=False))


def test_an_allowed_origin_gets_cors_headers_and_others_do_not() -> None:
    with client(cors_origins=[SHOP]) as c:
        r = c.get("/v1/recommendations", params={"user_id": "u"}, headers={"origin": SHOP})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == SHOP
        preflight = c.options(
            "/v1/events",
            headers={"origin": SHOP, "access-control-request-method": "POST"},
        )
        assert preflight.status_code == 200
        assert "POST" in preflight.headers["access-control-allow-methods"]
        other = c.get("/healthz", headers={"origin": "https://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_unless_configured() -> None:
    with client() as c:
        r = c.get("/healthz", headers={"origin": SHOP})
        assert "access-control-allow-origin" not in r.headers
