"""Fixtures of the shop API tests: a real engine on disk behind the real app."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from freshrec import Engine
from freshrec.serving import create_app

T0 = 1_700_000_000.0


class Shop:
    """A test client with the shortcuts every shop test needs."""

    def __init__(self, client: TestClient, engine: Engine) -> None:
        self.client = client
        self.engine = engine

    def events(self, events: list[dict[str, Any]]) -> dict:
        r = self.client.post("/v1/events", content=json.dumps({"events": events}))
        assert r.status_code == 202, r.text
        assert self.engine.wait_processed(timeout=10)
        return r.json()

    def items(self, items: list[dict[str, Any]]) -> dict:
        r = self.client.post("/v1/items", json={"items": items})
        assert r.status_code == 200, r.text
        return r.json()

    def recommend(self, user_id: str, **params: Any) -> dict:
        r = self.client.get("/v1/recommendations", params={"user_id": user_id, **params})
        assert r.status_code == 200, r.text
        return r.json()

    def ids(self, user_id: str, **params: Any) -> list[str]:
        return [i["item_id"] for i in self.recommend(user_id, **params)["items"]]


def event(kind: str, user: str, item: str, ts: float = T0, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "user_id": user, "item_id": item, "timestamp": ts, **extra}


@pytest.fixture
def open_shop(tmp_path: Path) -> Iterator[Callable[..., Shop]]:
    """Open a shop (engine + app) with the given settings; closed at teardown."""
    opened: list[tuple[TestClient, Engine]] = []

    def open_(**settings: Any) -> Shop:
        # a generous time budget: a first request may load compiled kernels (fallback tests
        # set their own)
        settings.setdefault("recommend_budget_ms", 5000.0)
        engine = Engine.open(tmp_path / f"data{len(opened)}", **settings)
        client = TestClient(create_app(engine))
        client.__enter__()
        opened.append((client, engine))
        return Shop(client, engine)

    yield open_
    for client, engine in opened:
        client.__exit__(None, None, None)
        engine.close()


@pytest.fixture
def shop(open_shop: Callable[..., Shop]) -> Shop:
    return open_shop()
