"""The dashboard in headless Chromium against a real ``freshrec demo`` process."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.e2e.chromium import needs_chromium
from tests.processes import start_demo

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    needs_chromium,
]

from playwright.sync_api import Browser, Page, expect  # noqa: E402


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    demo = start_demo(tmp_path_factory.mktemp("demo"), "--rate", "300")
    try:
        yield demo.url
        demo.process.terminate()
        assert demo.process.wait(timeout=30) == 0, demo.log()
    finally:
        demo.stop()


@pytest.fixture
def page(browser: Browser, demo_url: str) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(demo_url + "/")
    yield page
    page.close()
    assert not errors, errors


def counter(page: Page, name: str) -> int:
    text = page.locator(f"#c-{name}").text_content() or ""
    digits = text.replace(",", "")
    return int(digits) if digits.isdigit() else -1


def test_counters_update(page: Page) -> None:
    expect(page.locator("#status")).to_have_class(re.compile(r"\bok\b"), timeout=15_000)
    page.wait_for_function(
        "() => /^[0-9,]+$/.test(document.querySelector('#c-accepted').textContent)"
        " && document.querySelector('#c-accepted').textContent !== '0'",
        timeout=15_000,
    )
    first = counter(page, "accepted")
    page.wait_for_function(
        f"() => Number(document.querySelector('#c-accepted').textContent.replace(/,/g, ''))"
        f" > {first}",
        timeout=30_000,  # the dashboard polls every second; a loaded CI machine is slow
    )
    expect(page.locator("#c-rate")).to_have_text(re.compile(r"^[0-9][0-9,.]*$"), timeout=10_000)
    assert counter(page, "processed") > 0
    assert counter(page, "users") > 0 and counter(page, "items") > 0


def test_shopper_panels_show_recommendations_with_reasons(page: Page) -> None:
    cards = page.locator(".shopper")
    expect(cards).to_have_count(6)
    for n in range(6):
        expect(cards.nth(n).locator(".recs li").first).to_be_visible(timeout=15_000)
    reasons = page.locator(".shopper .reason.personal")
    expect(reasons.first).to_have_text(re.compile(r"^because you .+ sku-\d{6}"), timeout=15_000)
    first_item = cards.first.locator(".item").first
    expect(first_item).to_have_text(re.compile(r"^sku-\d{6}$"))
    # the panels are live: some shopper's list changes within a few seconds
    expect(page.locator(".shopper .meta", has_text="change")).not_to_have_count(0, timeout=15_000)


def test_look_up_a_user_and_similar_items(page: Page) -> None:
    page.fill("#user-input", "shopper-0002")
    page.click("#user-form button")
    expect(page.locator("#lookup-title-text")).to_have_text("Recommendations for shopper-0002")
    expect(page.locator("#lookup-list li").first).to_be_visible(timeout=10_000)
    item = page.locator("#lookup-list .item").first.text_content() or ""
    page.locator("#lookup-list .item").first.click()
    expect(page.locator("#lookup-title-text")).to_have_text(f"Similar to {item}")
    expect(page.locator("#item-input")).to_have_value(item)
    expect(page.locator("#lookup-list li").first).to_be_visible(timeout=10_000)
    page.fill("#item-input", "sku-does-not-exist")
    page.click("#item-form button")
    expect(page.locator("#lookup-message")).to_contain_text("unknown item", timeout=10_000)


def test_text_from_the_server_is_not_markup(page: Page) -> None:
    hostile = '<img src=x onerror="window.__pwned=1"><b>x</b>'
    page.fill("#user-input", hostile)
    page.click("#user-form button")
    expect(page.locator("#lookup-title-text")).to_have_text(f"Recommendations for {hostile}")
    expect(page.locator("#lookup-list li").first).to_be_visible(timeout=10_000)
    assert page.locator("#lookup img, #lookup b").count() == 0
    assert page.evaluate("() => window.__pwned === undefined")


def test_models_panel_shows_members_versions_and_drift(page: Page) -> None:
    rows = page.locator("#models-body tr")
    expect(rows.first).to_be_visible(timeout=15_000)
    names = rows.locator("td:first-child").all_text_contents()
    assert {"covisitation", "mf", "popularity"} <= set(names), names
    weights = rows.locator("td:nth-child(2)").all_text_contents()
    assert all(re.fullmatch(r"\d+\.\d %", w) for w in weights), weights
    total = sum(float(w.split()[0]) for w in weights)
    assert 99.0 <= total <= 101.0, weights  # the ensemble's weights sum to one
    # versions: a table once the first snapshot is written, a message before (read at once:
    # the panel refreshes every 5 s); drift detections likewise
    for body, empty in (("#versions-body tr", "versions-empty"), ("#drift-list li", "drift-empty")):
        shown, hidden = page.evaluate(
            f"() => [document.querySelectorAll('{body}').length,"
            f" document.getElementById('{empty}').hidden]"
        )
        assert hidden == (shown > 0), (body, shown, hidden)
