"""``freshrec demo`` as a real process: live traffic reaches the engine, recommendations move."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import Demo, start_demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    demo = start_demo(tmp_path, "--rate", "300", "--seed", "7")
    try:
        yield demo
    finally:
        demo.stop()


def test_demo_serves_live_traffic_and_stops_on_ctrl_c(demo: Demo) -> None:
    with httpx.Client(base_url=demo.url, timeout=5.0) as client:
        accepted = []
        rankings = set()
        personal = False
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            accepted.append(client.get("/v1/stats").json()["events_accepted"])
            body = client.get("/v1/recommendations", params={"user_id": "shopper-0001", "k": 5})
            assert body.status_code == 200
            items = body.json()["items"]
            rankings.add(tuple(i["item_id"] for i in items))
            personal |= any(i["reason"]["type"].startswith("because_you") for i in items)
            if len(rankings) >= 3 and personal and accepted[-1] > max(accepted[0], 0):
                break
            time.sleep(0.5)
        assert accepted[-1] > max(accepted[0], 0), demo.log()
        assert len(rankings) >= 2, "shopper-0001's recommendations never changed"
        assert personal, "no recommendation was explained by shopper-0001's own events"
        page = client.get("/")
        assert page.status_code == 200 and "app.js" in page.text

    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=30) == 0, demo.log()
    log = demo.log()
    assert "dashboard at " + demo.url in log
    assert "freshrec demo stopped" in log
    assert "Traceback" not in log, log


def test_demo_stops_cleanly_on_sigterm(demo: Demo) -> None:
    deadline = time.monotonic() + 10.0
    while httpx.get(f"{demo.url}/v1/stats").json()["events_accepted"] == 0:
        assert time.monotonic() < deadline, demo.log()
        time.sleep(0.2)
    demo.process.terminate()
    assert demo.process.wait(timeout=30) == 0, demo.log()
    assert "freshrec demo stopped" in demo.log()
    assert "Traceback" not in demo.log()
