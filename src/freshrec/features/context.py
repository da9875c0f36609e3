"""Context enrichment: an event's (or a request's) context as small categorical ids.

Pure functions, used by the processor for every event and by serving for every request, so both
see the same features:

- **device**: ``context["device"]`` normalised (``phone`` -> ``mobile``, ``pc`` -> ``desktop``,
  ...), else the device class of ``context["user_agent"]`` or of the request's User-Agent
  (``freshrec.features.useragent``); ids in ``DEVICES``, 0 = unknown;
- **country**: ``context["country"]`` as an upper-case ISO 3166 alpha-2 code, else the value of
  the trusted header the server was configured to read (set by a CDN or load balancer), else
  unknown; id ``1 + 26 * letter1 + letter2`` (1..676), 0 = unknown, so ids need no vocabulary;
- **local hour (0-23) and weekday (0 = Monday)** from the event time and
  ``context["tz_offset_minutes"]`` (an int, minutes east of UTC, -720..840; anything else is
  ignored and UTC used);
- **price bucket** of the item (``context["price"]``, a number >= 0): half-octaves of
  ``1 + price``, ``1 + floor(2 log2(1 + price))`` capped at ``PRICE_BUCKETS - 1``; 0 = unknown;
- **category** of the item (``context["category"]``, a non-empty string or an int): the
  CRC-32 of its text, masked to 31 bits; -1 = unknown.

Ids are stateless -- closed vocabularies for device, country, hour, weekday and price, a stable
hash (``zlib.crc32``, never Python's randomised ``hash()``) for open category names -- so the
processor, every API replica and every scale-out worker agree on them without sharing or
snapshotting a vocabulary, and a restart or a replay gives the same ids. The price of hashing:
two category names may share an id (about 1 % chance for some pair among 10,000 names).

>>> c = enrich({"device": "Phone", "country": "de", "tz_offset_minutes": 120,
...             "price": 19.99, "category": "shoes"}, ts=1_700_000_000.0)
>>> DEVICES[c.device], country_code(c.country), c.hour, WEEKDAYS[c.weekday], c.price_bucket
('mobile', 'DE', 0, 'Wed', 9)
>>> c.category == category_id("shoes")
True
>>> country_code(enrich(None, 0.0, trusted_country="fr").country)
'FR'
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from freshrec.features.useragent import device_of

DEVICES: tuple[str, ...] = ("unknown", "mobile", "tablet", "desktop", "bot", "other")
DEVICE_IDS: dict[str, int] = {name: i for i, name in enumerate(DEVICES)}
WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
PRICE_BUCKETS = 64
TZ_MIN, TZ_MAX = -720, 840  # minutes east of UTC: UTC-12:00 .. UTC+14:00
UNKNOWN_COUNTRIES = frozenset({"XX", "ZZ"})  # what CDNs send when they do not know
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday
_DEVICE_ALIASES = {
    "mobile": "mobile",
    "phone": "mobile",
    "smartphone": "mobile",
    "mobile_phone": "mobile",
    "feature_phone": "mobile",
    "phablet": "mobile",
    "tablet": "tablet",
    "desktop": "desktop",
    "pc": "desktop",
    "computer": "desktop",
    "laptop": "desktop",
    "bot": "bot",
    "crawler": "bot",
    "spider": "bot",
    "robot": "bot",
}


@dataclass(frozen=True, slots=True)
class Context:
    """Categorical context of one event or request (ids as described in the module)."""

    ts: float  # the time the context refers to (unix seconds)
    hour: int  # local hour 0..23
    weekday: int  # local weekday, 0 = Monday
    device: int = 0
    country: int = 0
    category: int = -1
    price_bucket: int = 0
    tz_offset_minutes: int = 0


@lru_cache(maxsize=1024)
def device_id(value: str) -> int:
    """Id of a device name sent by a shop (case and separators ignored); unknown names -> other.

    >>> DEVICES[device_id("Smart-Phone")], DEVICES[device_id("fridge")], device_id(" ")
    ('other', 'other', 0)
    >>> DEVICES[device_id("Mobile Phone")]
    'mobile'
    """
    key = "_".join(value.strip().lower().replace("-", " ").split())
    if not key:
        return 0
    return DEVICE_IDS[_DEVICE_ALIASES.get(key, "other")]


def user_agent_device(user_agent: str) -> int:
    """Id of the device class of a User-Agent string (parsed with ua-parser, cached)."""
    return DEVICE_IDS[device_of(user_agent)] if user_agent.strip() else 0


def device_from(context: Mapping[str, Any] | None, user_agent: str | None = None) -> int:
    """The device id: ``context["device"]``, else ``context["user_agent"]``, else ``user_agent``."""
    if context:
        device = context.get("device")
        if isinstance(device, str) and device.strip():
            return device_id(device)
        agent = context.get("user_agent")
        if isinstance(agent, str) and agent.strip():
            return user_agent_device(agent)
    if user_agent:
        return user_agent_device(user_agent)
    return 0


@lru_cache(maxsize=1024)
def _country(value: str) -> int:
    code = value.strip().upper()
    if len(code) != 2 or not (code.isascii() and code.isalpha()) or code in UNKNOWN_COUNTRIES:
        return 0
    return 1 + 26 * (ord(code[0]) - 65) + (ord(code[1]) - 65)


def country_id(value: object) -> int:
    """Id of an ISO 3166 alpha-2 code (any case, spaces ignored); 0 for anything else.

    >>> country_id("de") == country_id(" DE "), country_id("DEU"), country_id("XX"), country_id(7)
    (True, 0, 0, 0)
    """
    return _country(value) if isinstance(value, str) else 0


def country_code(country: int) -> str | None:
    """The two letters of a country id (None for 0 = unknown)."""
    if not 1 <= country <= 676:
        return None
    a, b = divmod(country - 1, 26)
    return chr(65 + a) + chr(65 + b)


def country_from(context: Mapping[str, Any] | None, trusted: str | None = None) -> int:
    """``context["country"]`` if it is a valid code, else the trusted header value, else 0."""
    country = country_id(context.get("country")) if context else 0
    return country or country_id(trusted)


def tz_offset(value: object) -> int:
    """Minutes east of UTC from ``context["tz_offset_minutes"]``; 0 (UTC) if missing or invalid.

    >>> tz_offset(330), tz_offset(-300.0), tz_offset(900), tz_offset("60"), tz_offset(True)
    (330, -300, 0, 0, 0)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not value.is_integer():
        return 0
    minutes = int(value)
    return minutes if TZ_MIN <= minutes <= TZ_MAX else 0


def local_time(ts: float, tz_offset_minutes: int = 0) -> tuple[int, int]:
    """``(hour 0-23, weekday 0=Monday)`` at ``ts`` (unix seconds) in a UTC offset.

    >>> local_time(0.0), local_time(0.0, -60), local_time(86_400 * 4 - 1, 1)
    ((0, 3), (23, 2), (0, 0))
    """
    local = ts + 60.0 * tz_offset_minutes
    hour = int(local // 3600.0) % 24
    weekday = (int(local // 86_400.0) + _EPOCH_WEEKDAY) % 7
    return hour, weekday


def local_times(ts: np.ndarray, tz_offset_minutes: np.ndarray | int = 0) -> tuple[np.ndarray, ...]:
    """``local_time`` over arrays: ``(hour, weekday)`` as int8 arrays."""
    local = np.asarray(ts, dtype=np.float64) + 60.0 * np.asarray(tz_offset_minutes)
    hour = (np.floor_divide(local, 3600.0) % 24).astype(np.int8)
    weekday = ((np.floor_divide(local, 86_400.0) + _EPOCH_WEEKDAY) % 7).astype(np.int8)
    return hour, weekday


def price_bucket(value: object) -> int:
    """Log-scale bucket of a price (half-octaves of ``1 + price``); 0 if not a number >= 0.

    >>> [price_bucket(p) for p in (0, 1, 9.99, 10, 100, 1e12, -1, "3", float("nan"))]
    [1, 3, 7, 7, 14, 63, 0, 0, 0]
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    price = float(value)
    if not (price >= 0.0 and math.isfinite(price)):
        return 0
    return min(1 + int(2.0 * math.log2(1.0 + price)), PRICE_BUCKETS - 1)


@lru_cache(maxsize=65_536)
def _category(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) & 0x7FFF_FFFF


def category_id(value: object) -> int:
    """Stable id of a category name (CRC-32, 31 bits) or an int category; -1 if none.

    >>> category_id("shoes") == category_id("shoes"), category_id(""), category_id(12) >= 0
    (True, -1, True)
    """
    if isinstance(value, str):
        return _category(value) if value else -1
    if isinstance(value, int) and not isinstance(value, bool):
        return _category(str(value))
    return -1


def enrich(
    context: Mapping[str, Any] | None,
    ts: float,
    user_agent: str | None = None,
    trusted_country: str | None = None,
) -> Context:
    """The ``Context`` of an event or a request at time ``ts``.

    ``user_agent`` is the request's User-Agent header (used when the context names no device),
    ``trusted_country`` the value of the configured trusted country header (used when the
    context has no valid country).
    """
    offset = tz_offset(context.get("tz_offset_minutes")) if context else 0
    hour, weekday = local_time(ts, offset)
    return Context(
        ts=float(ts),
        hour=hour,
        weekday=weekday,
        device=device_from(context, user_agent),
        country=country_from(context, trusted_country),
        category=category_id(context.get("category")) if context else -1,
        price_bucket=price_bucket(context.get("price")) if context else 0,
        tz_offset_minutes=offset,
    )


@dataclass(slots=True)
class ContextColumns:
    """``enrich`` over a batch of events, one array per feature."""

    device: np.ndarray  # int8
    country: np.ndarray  # int16
    hour: np.ndarray  # int8
    weekday: np.ndarray  # int8
    category: np.ndarray  # int32, -1 unknown
    price: np.ndarray  # float64, -1 unknown
    price_bucket: np.ndarray  # int8, 0 unknown


def enrich_many(contexts: Sequence[Mapping[str, Any] | None], ts: np.ndarray) -> ContextColumns:
    """Context columns of a batch of events (their context dicts and times).

    Same answers as ``enrich`` per event; Python work only for events that carry a context, and
    repeated raw values (device names, countries, categories, prices) are looked up in bounded
    memo tables rather than parsed again.
    """
    n = len(contexts)
    device, country, offset = [0] * n, [0] * n, [0] * n
    category, price, bucket = [-1] * n, [-1.0] * n, [0] * n
    device_seen, country_seen = _DEVICES_SEEN.get, _COUNTRIES_SEEN.get
    for k, context in enumerate(contexts):
        if not context:
            continue
        get = context.get
        value = get("device")
        # the memo tables hold str keys as themselves: a seen device or country is one lookup
        found = device_seen(value) if value.__class__ is str else None
        if found is not None:
            device[k] = found
        elif value.__class__ is str and value.strip():
            device[k] = _memo(_DEVICES_SEEN, value, device_id)
        elif "user_agent" in context:
            device[k] = device_from(context)
        value = get("country")
        if value is not None:
            found = country_seen(value) if value.__class__ is str else None
            country[k] = _memo(_COUNTRIES_SEEN, value, country_id) if found is None else found
        value = get("tz_offset_minutes")
        if value is not None:
            offset[k] = tz_offset(value)
        value = get("category")
        if value is not None:
            category[k] = _memo(_CATEGORIES_SEEN, value, category_id)
        value = get("price")
        if value is not None:
            b = _memo(_PRICES_SEEN, value, price_bucket)
            if b:
                bucket[k] = b
                price[k] = float(value)
    hour, weekday = local_times(ts, np.asarray(offset, dtype=np.int16))
    return ContextColumns(
        np.asarray(device, dtype=np.int8),
        np.asarray(country, dtype=np.int16),
        hour,
        weekday,
        np.asarray(category, dtype=np.int32),
        np.asarray(price, dtype=np.float64),
        np.asarray(bucket, dtype=np.int8),
    )


_MEMO_SIZE = 50_000
_DEVICES_SEEN: dict[Any, int] = {}
_COUNTRIES_SEEN: dict[Any, int] = {}
_CATEGORIES_SEEN: dict[Any, int] = {}
_PRICES_SEEN: dict[Any, int] = {}


def _memo(table: dict[Any, int], value: Any, fn: Any) -> int:
    """``fn(value)``, remembered in ``table`` (cleared when full) for str, int and float values."""
    kind = value.__class__
    if kind is str:
        key = value
    elif kind is int or kind is float:
        key = (kind, value)  # 1 == 1.0 == True as keys, but not as categories
    else:
        return int(fn(value))
    out = table.get(key)
    if out is None:
        out = int(fn(value))
        if len(table) >= _MEMO_SIZE:
            table.clear()
        table[key] = out
    return out


__all__ = [
    "DEVICES",
    "DEVICE_IDS",
    "PRICE_BUCKETS",
    "WEEKDAYS",
    "Context",
    "ContextColumns",
    "category_id",
    "country_code",
    "country_from",
    "country_id",
    "device_from",
    "device_id",
    "enrich",
    "enrich_many",
    "local_time",
    "local_times",
    "price_bucket",
    "tz_offset",
    "user_agent_device",
]
