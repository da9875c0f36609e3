"""Context enrichment: device from context or User-Agent, country, local time, price, category."""

from __future__ import annotations

import numpy as np
import pytest

from freshrec.features.context import (
    DEVICE_IDS,
    DEVICES,
    category_id,
    country_code,
    country_id,
    device_from,
    enrich,
    enrich_many,
    local_time,
    local_times,
    price_bucket,
    tz_offset,
)
from freshrec.features.useragent import cache_info, device_of

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 9; SAMSUNG SM-T510) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/16.0 Chrome/92.0.4515.166 Safari/537.36"
)
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
MAC_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_PHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/124.0.0.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)"
)


@pytest.mark.parametrize(
    ("agent", "device"),
    [
        (IPHONE, "mobile"),
        (ANDROID_PHONE, "mobile"),
        (IPAD, "tablet"),
        (ANDROID_TABLET, "tablet"),
        (WINDOWS_CHROME, "desktop"),
        (MAC_SAFARI, "desktop"),
        (GOOGLEBOT, "bot"),
        (GOOGLEBOT_PHONE, "bot"),
        ("curl/8.5.0", "other"),
        ("", "other"),
    ],
)
def test_user_agent_device_class(agent: str, device: str) -> None:
    assert device_of(agent) == device


def test_user_agent_parses_are_cached() -> None:
    device_of(WINDOWS_CHROME)
    hits = cache_info().hits  # type: ignore[attr-defined]
    device_of(WINDOWS_CHROME)
    assert cache_info().hits == hits + 1  # type: ignore[attr-defined]


def test_device_from_context_wins_over_user_agents() -> None:
    assert DEVICES[device_from({"device": "Tablet"}, IPHONE)] == "tablet"
    assert DEVICES[device_from({"device": "smartphone"})] == "mobile"
    assert DEVICES[device_from({"device": "PC"})] == "desktop"
    assert DEVICES[device_from({"device": "toaster"})] == "other"
    assert DEVICES[device_from({"user_agent": IPAD}, WINDOWS_CHROME)] == "tablet"
    assert DEVICES[device_from({"device": " ", "page": "home"}, WINDOWS_CHROME)] == "desktop"
    assert DEVICES[device_from({"device": 3}, GOOGLEBOT)] == "bot"  # not a name: ignored
    assert device_from(None) == device_from({}) == 0


def test_country_precedence_and_validation() -> None:
    de, fr = country_id("DE"), country_id("FR")
    assert country_code(de) == "DE" and country_code(0) is None
    assert enrich({"country": "de"}, 0.0, trusted_country="FR").country == de
    assert enrich({"country": "Germany"}, 0.0, trusted_country="fr").country == fr
    assert enrich({"country": "XX"}, 0.0, trusted_country="FR").country == fr
    assert enrich(None, 0.0, trusted_country="FR").country == fr
    assert enrich({}, 0.0, trusted_country="not a country").country == 0
    assert enrich({"country": 49}, 0.0).country == 0
    ids = {country_id(a + b) for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for b in "AZ"}  # ZZ: unknown
    assert len(ids - {0}) == 51 and min(ids - {0}) >= 1 and max(ids) <= 676


def test_local_hour_and_weekday_with_offsets_and_day_wrap() -> None:
    monday_2330_utc = 1_704_151_800.0  # 2024-01-01 (a Monday) 23:30 UTC
    assert local_time(monday_2330_utc) == (23, 0)
    assert local_time(monday_2330_utc, 60) == (0, 1)  # UTC+1: Tuesday 00:30
    assert local_time(monday_2330_utc, 840) == (13, 1)  # UTC+14
    assert local_time(monday_2330_utc - 23 * 3600, -720) == (12, 6)  # UTC-12: Sunday 12:30
    sunday_2330 = monday_2330_utc - 86_400
    assert local_time(sunday_2330, 60) == (0, 0)  # Sunday -> Monday wraps the week
    c = enrich({"tz_offset_minutes": 330}, monday_2330_utc)  # India, UTC+5:30
    assert (c.hour, c.weekday, c.tz_offset_minutes) == (5, 1, 330)


@pytest.mark.parametrize("bad", [841, -721, 12.5, "60", None, True, float("nan"), [60]])
def test_invalid_tz_offsets_are_ignored(bad: object) -> None:
    assert tz_offset(bad) == 0
    ts = 1_704_151_800.0
    c = enrich({"tz_offset_minutes": bad}, ts)
    assert (c.hour, c.weekday) == local_time(ts)


def test_price_buckets_grow_on_a_log_scale() -> None:
    buckets = [price_bucket(p) for p in (0, 0.5, 1, 2, 5, 10, 50, 100, 1000, 10_000)]
    assert buckets == sorted(buckets) and buckets[0] == 1
    assert price_bucket(100) - price_bucket(10) == pytest.approx(price_bucket(1000) - 14, abs=1)
    assert price_bucket(-5) == price_bucket("12") == price_bucket(float("inf")) == 0


def test_category_ids_are_stable_and_need_no_vocabulary() -> None:
    assert category_id("shoes") == 349_143_447  # zlib.crc32(b"shoes") & 0x7fffffff
    assert category_id(42) == category_id("42") >= 0
    assert category_id("") == category_id(None) == category_id(4.2) == category_id(True) == -1


def test_enrich_many_agrees_with_enrich() -> None:
    contexts = [
        None,
        {},
        {"device": "mobile", "country": "de", "tz_offset_minutes": -300},
        {"user_agent": IPAD, "category": "shoes", "price": 49.9},
        {"device": "Desktop", "category": 7, "price": -1, "tz_offset_minutes": 9999},
        {"device": 5, "country": " us ", "price": True, "category": 1.0},
        {"device": "mobile", "country": "de", "tz_offset_minutes": -300},  # memoised repeat
        {"device": " ", "user_agent": IPAD},  # blank device: the User-Agent decides
        {"device": " ", "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"},
        {"category": 1, "price": 1},  # equal as keys, not as features: not mixed up by the memo
        {"category": 1.0, "price": 1.0},
        {"category": True, "price": True},
        {"country": ["de"], "category": {"a": 1}},  # unhashable values: parsed, not remembered
    ]
    ts = 1_700_000_000.0 + 5_000.0 * np.arange(len(contexts))
    cols = enrich_many(contexts, ts)
    for k, context in enumerate(contexts):
        one = enrich(context, float(ts[k]))
        got = (
            cols.device[k],
            cols.country[k],
            cols.hour[k],
            cols.weekday[k],
            cols.category[k],
            cols.price_bucket[k],
        )
        want = (one.device, one.country, one.hour, one.weekday, one.category, one.price_bucket)
        assert tuple(int(x) for x in got) == want, k
    assert cols.price.tolist()[3] == 49.9 and cols.price[4] == -1.0
    assert cols.device[3] == DEVICE_IDS["tablet"]


def test_local_times_vectorised() -> None:
    ts = np.array([-1.0, 0.0, 86_399.0, 1_704_151_800.0])
    offsets = np.array([0, -60, 1, 60], dtype=np.int16)
    hour, weekday = local_times(ts, offsets)
    want = [local_time(float(t), int(o)) for t, o in zip(ts, offsets, strict=True)]
    assert list(zip(hour.tolist(), weekday.tolist(), strict=True)) == want
