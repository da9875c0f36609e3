"""The traffic driver against a fake server: paced, retried, stoppable, never crashing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import msgspec

from freshrec.sim import ShopSimulator, TrafficDriver


class FakeServer:
    """An ``httpx`` transport answering like freshrec, with scripted failures of ``/v1/events``."""

    def __init__(self, failures: list[Callable[[], httpx.Response]] | None = None) -> None:
        self.failures = list(failures or [])
        self.received: list[str] = []
        self.recommendation_requests = 0
        self.lock = threading.Lock()

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/healthz":
            return httpx.Response(200, json={"status": "ok"})
        if request.url.path == "/v1/recommendations":
            with self.lock:
                self.recommendation_requests += 1
            return httpx.Response(200, json={"recommendation_id": "r1", "items": []})
        with self.lock:
            if self.failures:
                return self.failures.pop(0)()
            events = msgspec.json.decode(request.content)["events"]
            ids = [e["event_id"] for e in events]
            duplicates = sum(i in self.received for i in ids)
            self.received.extend(i for i in ids if i not in self.received)
        return httpx.Response(
            202, json={"accepted": len(ids) - duplicates, "duplicates": duplicates, "errors": []}
        )


def raise_connect_error() -> httpx.Response:
    raise httpx.ConnectError("connection refused")


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def make_driver(
    server: FakeServer, rate_events_per_s: float = 2000.0, follow_recommendations: bool = True
) -> TrafficDriver:
    sim = ShopSimulator(n_items=200, n_shoppers=40, seed=1)
    transport = httpx.MockTransport(server.handle)
    return TrafficDriver(
        "http://127.0.0.1:1",
        sim,
        rate_events_per_s=rate_events_per_s,
        batch_size=50,
        follow_recommendations=follow_recommendations,
        transport=transport,
    )


def test_sends_events_and_counts_acknowledgements() -> None:
    server = FakeServer()
    driver = make_driver(server)
    driver.start()
    try:
        assert wait_for(lambda: driver.acknowledged >= 500)
    finally:
        driver.stop()
    assert not driver.running
    assert driver.connected.is_set()
    assert driver.acknowledged == driver.accepted == len(server.received)
    assert server.recommendation_requests > 0
    assert driver.stats()["failures"] == 0


def test_transient_errors_are_retried_without_losing_events() -> None:
    server = FakeServer(
        [
            raise_connect_error,
            lambda: httpx.Response(503, json={"error": "busy"}),
            lambda: httpx.Response(429),
        ]
    )
    driver = make_driver(server, follow_recommendations=False)
    driver.start()
    try:
        assert wait_for(lambda: driver.acknowledged >= 200)
    finally:
        driver.stop()
    assert driver.failures == 3
    assert driver.running is False
    # the failed batch went through on a retry: ids are consecutive from the first event
    numbers = sorted(int(i.rsplit("-", 1)[1]) for i in server.received)
    assert numbers == list(range(1, len(numbers) + 1))


def test_a_refused_batch_is_dropped_and_sending_goes_on() -> None:
    server = FakeServer([lambda: httpx.Response(400, json={"error": "body: bad"})])
    driver = make_driver(server, follow_recommendations=False)
    driver.start()
    try:
        assert wait_for(lambda: driver.acknowledged >= 100)
    finally:
        driver.stop()
    assert driver.dropped == 50


def test_paced_to_the_rate() -> None:
    server = FakeServer()
    driver = make_driver(server, rate_events_per_s=200.0, follow_recommendations=False)
    driver.start()
    time.sleep(1.0)
    driver.stop()
    assert 100 <= driver.acknowledged <= 300


def test_stops_promptly_while_the_server_is_down() -> None:
    sim = ShopSimulator(n_items=100, n_shoppers=20, seed=0)
    driver = TrafficDriver(
        "http://127.0.0.1:9", sim, transport=httpx.MockTransport(lambda r: raise_connect_error())
    )
    driver.start()
    time.sleep(0.3)
    start = time.monotonic()
    driver.stop()
    assert time.monotonic() - start < 2.0
    assert not driver.running and not driver.connected.is_set() and driver.acknowledged == 0
