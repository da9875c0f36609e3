"""Device class of a User-Agent string, read from what ua-parser (uap-python) finds in it.

ua-parser holds the crowd-maintained rules (``ua-parser-builtins``, updated monthly; the
``regex`` extra brings its native matcher, ~0.1 ms a string instead of ~0.7 ms); this module only
maps its structured answer -- device family and brand, operating system -- to one of ``mobile``,
``tablet``, ``desktop``, ``bot`` or ``other``:

- ``bot``: the device family ``Spider`` (crawlers, link previewers, monitoring robots);
- ``tablet``: an iPad, a Kindle, a device the rules call a tablet, or an Android device the rules
  do not know whose browser leaves out the ``Mobile`` token (the Android convention that tells a
  tablet from a phone; ua-parser reports the device model, not its form);
- ``mobile``: any other device of a phone operating system;
- ``desktop``: a desktop operating system;
- ``other``: anything else (smart TVs, consoles, ``curl``, empty or unreadable strings).

Parsing is cached (``lru_cache``): shoppers' browsers send a few thousand distinct strings, not
one per event.

>>> device_of("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
...           "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
'mobile'
>>> device_of("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
'bot'
>>> device_of("curl/8.5.0")
'other'
"""

from __future__ import annotations

from functools import lru_cache

import ua_parser

CACHE_SIZE = 8192
MAX_LENGTH = 1024  # longer strings are cut before parsing (and before caching)

_MOBILE_OS = frozenset(
    {
        "Android",
        "iOS",
        "Windows Phone",
        "Windows Mobile",
        "BlackBerry OS",
        "BlackBerry Tablet OS",
        "KaiOS",
        "Firefox OS",
        "Symbian OS",
        "Symbian^3",
        "Bada",
        "webOS",
        "Tizen",
        "HarmonyOS",
        "Sailfish",
        "Ubuntu Touch",
    }
)
_DESKTOP_OS = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Mac OS",
        "Linux",
        "Ubuntu",
        "Debian",
        "Fedora",
        "Red Hat",
        "SUSE",
        "Mint",
        "Arch Linux",
        "Gentoo",
        "Slackware",
        "Mandriva",
        "Chrome OS",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Solaris",
        "Haiku",
    }
)
_PHONE_FAMILIES = frozenset({"iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone"})
_TABLET_FAMILIES = frozenset({"iPad", "Generic Tablet", "Kindle", "Kindle Fire", "Kindle Fire HD"})
_TABLET_BRANDS = frozenset({"Generic_Android_Tablet"})
_CONSOLES = ("PlayStation", "Xbox", "Nintendo")


@lru_cache(maxsize=CACHE_SIZE)
def _classify(user_agent: str) -> str:
    result = ua_parser.parse(user_agent)
    device, os_ = result.device, result.os
    family = device.family if device is not None else ""
    brand = (device.brand or "") if device is not None else ""
    os_family = os_.family if os_ is not None else ""
    if family == "Spider":
        return "bot"
    if family in _TABLET_FAMILIES or brand in _TABLET_BRANDS:
        return "tablet"
    if "TV" in family or family.startswith(_CONSOLES):
        return "other"
    if os_family == "Android" and family not in _PHONE_FAMILIES:
        return "mobile" if "Mobile" in user_agent else "tablet"
    if family in _PHONE_FAMILIES or os_family in _MOBILE_OS:
        return "mobile"
    if family == "Mac" or os_family in _DESKTOP_OS:
        return "desktop"
    return "other"


def device_of(user_agent: str) -> str:
    """``mobile``, ``tablet``, ``desktop``, ``bot`` or ``other`` for a User-Agent string."""
    return _classify(user_agent.strip()[:MAX_LENGTH])


def warm_up() -> None:
    """Load ua-parser's rules now (~0.15 s) rather than on the first request that needs them."""
    device_of("Mozilla/5.0 (X11; Linux x86_64)")


def cache_info() -> object:
    """Hits and misses of the parse cache (for metrics and tests)."""
    return _classify.cache_info()
