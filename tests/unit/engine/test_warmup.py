"""The kernels are compiled before a server with a processor answers anything."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from freshrec import Engine
from freshrec.engine import warmup
from freshrec.serving import create_app


def test_a_second_call_in_the_process_returns_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warmup, "_compiled", False)
    assert warmup.compile_kernels() > 0.0
    assert warmup._compiled
    assert warmup.compile_kernels() == 0.0


@pytest.mark.parametrize("run_processor", [True, False])
def test_the_server_compiles_the_kernels_before_it_answers_if_it_learns(
    monkeypatch: pytest.MonkeyPatch, run_processor: bool
) -> None:
    monkeypatch.setattr(warmup, "_compiled", False)
    engine = Engine.open(None)
    with TestClient(create_app(engine, run_processor=run_processor)) as client:
        assert warmup._compiled is run_processor  # a serving replica's paths: service.warm_up
        assert client.get("/healthz").status_code == 200
    engine.close()


def test_the_throwaway_engine_leaves_the_servers_engine_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(warmup, "_compiled", False)
    engine = Engine.open(None)
    assert warmup.compile_kernels() > 0.0
    assert engine.stats()["events_processed"] == 0
    assert len(engine.state.users) == len(engine.state.items) == 0
    engine.close()
