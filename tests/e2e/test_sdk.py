"""The browser SDK (``/freshrec.js``) in headless Chromium, on a shop page of another origin,
against a real ``freshrec serve`` that allows that origin (``cors_origins``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.e2e.chromium import needs_chromium
from tests.processes import Child, free_port, start_child

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    needs_chromium,
]

from playwright.sync_api import Browser, Page  # noqa: E402


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the API's url, the shop page's url): two origins."""
    root = tmp_path_factory.mktemp("sdk")
    site = root / "site"
    site.mkdir()
    # the page server holds its port before the API's is picked (two free_port() calls in a
    # row can return the same port)
    pages = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(site)))
    page_port, api_port = pages.server_address[1], free_port()
    api = f"http://127.0.0.1:{api_port}"
    (site / "index.html").write_text(
        f'<!doctype html><title>shop</title><script src="{api}/freshrec.js"></script>'
    )
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    env = {"FRESHREC_CORS_ORIGINS": json.dumps([f"http://127.0.0.1:{page_port}"])}
    args = ["serve", "--data-dir", str(root / "data"), "--port", str(api_port)]
    server: Child = start_child(root, "serve", args, env, port=api_port)
    try:
        # what other shoppers did: x<k> then y<k> in their sessions
        train = [
            {"type": "view", "user_id": f"t{k}-{n}", "item_id": item, "timestamp": 1e9 + s}
            for k in range(3)
            for n in range(20)
            for s, item in enumerate((f"x{k}", f"y{k}"))
        ]
        assert httpx.post(f"{api}/v1/events", json={"events": train}).status_code == 202
        yield api, f"http://127.0.0.1:{page_port}/"
    finally:
        server.stop()
        pages.shutdown()
        pages.server_close()


@pytest.fixture
def page(browser: Browser, shop: tuple[str, str]) -> Iterator[Page]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(shop[1])
    yield page
    page.close()
    assert not errors, errors


def stats(api: str) -> dict:
    return httpx.get(f"{api}/v1/stats").json()


def wait_for(check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_view_shapes_the_next_recommendation_and_a_click_is_attributed(
    page: Page, shop: tuple[str, str]
) -> None:
    api, _ = shop
    answer = page.evaluate(
        """async (api) => {
            const fr = freshrec.init({endpoint: api, userId: "web-1", flushIntervalMs: 0});
            fr.view("x1");
            await fr.flush();
            for (let i = 0; i < 100; i++) {  // until the server has processed the view
                const answer = await fr.recommend({k: 3});
                const hit = answer.items.find((it) => it.item_id === "y1");
                if (hit && hit.reason.item_id === "x1") {
                    fr.clickRecommendation(answer, "y1");
                    await fr.flush();
                    return {answer, sent: fr.sent, queued: fr._queue.length};
                }
                await new Promise((r) => setTimeout(r, 50));
            }
            return null;
        }""",
        api,
    )
    assert answer is not None, "the view never showed in the recommendations"
    assert answer["sent"] == 2 and answer["queued"] == 0
    assert answer["answer"]["items"][0]["reason"]["type"] == "because_you_viewed"
    clicks = wait_for(lambda: sum(f["clicks"] for f in stats(api)["feedback"].values()) or None)
    assert clicks == 1  # the click carried the answer's recommendation_id


def test_events_left_in_the_queue_go_out_by_beacon_when_the_page_goes(
    page: Page, shop: tuple[str, str]
) -> None:
    api, _ = shop
    before = stats(api)["events_accepted"]
    event_id = page.evaluate(
        """(api) => {
            const fr = freshrec.init({endpoint: api, userId: "web-2", flushIntervalMs: 0});
            return fr.addToCart("x2", {value: 19.9});
        }""",
        api,
    )
    assert isinstance(event_id, str) and event_id
    page.goto("about:blank")  # pagehide: navigator.sendBeacon
    assert wait_for(lambda: stats(api)["events_accepted"] == before + 1)
    # a beacon is never answered: the event stays queued, and the shop's next page sends it
    # again -- counted once
    page.goto(shop[1])
    again = page.evaluate(
        """async (api) => {
            const fr = freshrec.init({endpoint: api, userId: "web-2", flushIntervalMs: 0});
            return await fr.flush();
        }""",
        api,
    )
    assert (again["accepted"], again["duplicates"]) == (0, 1)


def test_a_batch_sent_twice_counts_once_and_a_bad_event_is_not_retried(
    page: Page, shop: tuple[str, str]
) -> None:
    api, _ = shop
    result = page.evaluate(
        """async (api) => {
            const fr = freshrec.init({endpoint: api, userId: "web-3", flushIntervalMs: 0});
            fr.view("x0");
            const copy = fr._queue.slice();
            await fr.flush();
            fr._queue = copy;  // as if the answer had been lost: sent again
            const again = await fr.flush();
            fr.track("view", "");  // invalid: no item id
            const bad = await fr.flush();
            return {again, bad, sent: fr.sent, dropped: fr.dropped, queued: fr._queue.length};
        }""",
        api,
    )
    assert result["again"]["duplicates"] == 1 and result["again"]["accepted"] == 0
    assert result["bad"]["errors"][0]["error"].startswith("item_id")
    assert (result["dropped"], result["queued"]) == (1, 0)


def test_events_wait_in_local_storage_for_a_server_that_is_down(
    page: Page, shop: tuple[str, str]
) -> None:
    """Sent while the server cannot be reached (a dead endpoint here), events stay queued in
    localStorage; the next page of the shop sends them, once."""
    api, url = shop
    before = stats(api)["events_accepted"]
    queued = page.evaluate(
        """async () => {
            const fr = freshrec.init({endpoint: "http://127.0.0.1:9", userId: "web-4",
                                      flushIntervalMs: 0});
            fr.view("x0");
            fr.view("x1");
            await fr.flush();  // fails: kept, backing off
            fr.close();
            return JSON.parse(localStorage.getItem("freshrec:queue")).length;
        }"""
    )
    assert queued == 2
    page.goto(url)  # the shop's next page: the beacon on the way out went nowhere either
    sent = page.evaluate(
        """async (api) => {
            const fr = freshrec.init({endpoint: api, userId: "web-4", flushIntervalMs: 0});
            await fr.flush();
            return {sent: fr.sent, left: JSON.parse(localStorage.getItem("freshrec:queue"))};
        }""",
        api,
    )
    assert sent == {"sent": 2, "left": []}
    assert wait_for(lambda: stats(api)["events_accepted"] == before + 2)
