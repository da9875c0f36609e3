"""Headless Chromium for the browser tests, one per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.chromium import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
