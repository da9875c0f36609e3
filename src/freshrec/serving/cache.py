"""Response cache per user and request, invalidated by that user's next event.

An entry remembers the *version* of its user when it was computed -- the user's session number
and event count in that session, which change with every event the processor applies to that
user -- and of the catalogue. A lookup whose user or catalogue version differs is a miss, so a
cached list is never served after the user did something new or an item became unavailable:
freshness is not traded for speed. Other users' events (which move popularity and
co-visitation a little) are bounded by ``ttl_seconds``. Least recently used entries go first.

>>> cache = ResponseCache(max_entries=2, ttl_seconds=60)
>>> cache.put(("u1", 10), "u1", (1, 0), 7, ["a", "b"])
>>> cache.get(("u1", 10), (1, 0), 7)
['a', 'b']
>>> cache.get(("u1", 10), (1, 1), 7) is None  # the user's next event
True
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class ResponseCache:
    """LRU of computed responses keyed by request, checked against user/catalogue versions."""

    def __init__(self, max_entries: int = 100_000, ttl_seconds: float = 30.0) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._entries: OrderedDict[Hashable, tuple[Any, Any, int, float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, user_version: Any, catalogue_version: int) -> Any | None:
        if self.max_entries == 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                _, version, catalogue, born, value = entry
                if (
                    version == user_version
                    and catalogue == catalogue_version
                    and time.monotonic() - born < self.ttl_seconds
                ):
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return value
                del self._entries[key]
            self.misses += 1
            return None

    def put(
        self,
        key: Hashable,
        user_id: str,
        user_version: Any,
        catalogue_version: int,
        value: Any,
    ) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            self._entries[key] = (user_id, user_version, catalogue_version, time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
