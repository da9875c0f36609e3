"""Fixtures of the scale-out tests: a deployment's settings under the test's key prefix and a
serving replica (``test_shop`` adds the shop's settings of its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from freshrec.scaleout import ClusterEngine
from freshrec.serving import create_app
from freshrec.settings import Settings
from tests.unit.scaleout.test_scaleout import scaleout_settings


@pytest.fixture
def settings(redis_prefix: str) -> Settings:
    return scaleout_settings(redis_prefix)


@pytest.fixture
def replica(settings: Settings) -> Iterator[ClusterEngine]:
    engine = ClusterEngine(settings)
    yield engine
    engine.close()


@pytest.fixture
def replica_client(settings: Settings) -> Iterator[tuple[ClusterEngine, TestClient]]:
    """A replica behind its HTTP app (lifespan run: the shop's poller and the service)."""
    engine = ClusterEngine(settings)
    try:
        with TestClient(create_app(engine)) as client:
            yield engine, client
    finally:
        engine.close()
