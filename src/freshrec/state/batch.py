"""A micro-batch of events as arrays: what the state produces and every model learns from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from freshrec.features.context import local_times


@dataclass(slots=True)
class Batch:
    """Events in log order, ids mapped to indices, plus each event's session context.

    ``prev_items[k]`` holds the items the user interacted with earlier in the same session, most
    recent first, padded with -1; ``prev_types`` their event-type codes. ``weight`` is the
    event-type weight (0 for events that say nothing about taste, such as impressions).

    Context features (``freshrec.features.context``; left out, they default to "unknown", with
    hour and weekday taken from ``ts`` in UTC): ``device``, ``country``, local ``hour`` and
    ``weekday``; the item's ``category`` and ``price_bucket`` as last known when the event is
    learned (the event's own context, else an earlier event's); ``session_events``, the user's
    events earlier in the same session; ``since_last``, seconds since the user's previous event
    (inf for their first). ``recent_categories[k]`` lists the distinct categories of the user's
    last ``recent_items`` items before event ``k``, most recent first, -1 padded, and
    ``category_ts[k]`` when each was last touched (filled for events with weight > 0 only).
    """

    users: np.ndarray  # int32 (n,)
    items: np.ndarray  # int32 (n,)
    types: np.ndarray  # int8 (n,)
    ts: np.ndarray  # float64 (n,) event time, unix seconds
    weight: np.ndarray  # float64 (n,)
    new_session: np.ndarray  # bool (n,)
    prev_items: np.ndarray  # int32 (n, W)
    prev_types: np.ndarray  # int8 (n, W)
    n_users: int
    n_items: int
    device: np.ndarray = None  # type: ignore[assignment]  # int8 (n,), 0 unknown
    country: np.ndarray = None  # type: ignore[assignment]  # int16 (n,), 0 unknown
    hour: np.ndarray = None  # type: ignore[assignment]  # int8 (n,) local hour
    weekday: np.ndarray = None  # type: ignore[assignment]  # int8 (n,) 0 = Monday
    category: np.ndarray = None  # type: ignore[assignment]  # int32 (n,), -1 unknown
    price_bucket: np.ndarray = None  # type: ignore[assignment]  # int8 (n,), 0 unknown
    session_events: np.ndarray = None  # type: ignore[assignment]  # int32 (n,)
    since_last: np.ndarray = None  # type: ignore[assignment]  # float64 (n,)
    recent_categories: np.ndarray = None  # type: ignore[assignment]  # int32 (n, C)
    category_ts: np.ndarray = None  # type: ignore[assignment]  # float64 (n, C)

    def __post_init__(self) -> None:
        n = int(self.users.shape[0])
        if self.hour is None or self.weekday is None:
            self.hour, self.weekday = local_times(self.ts)
        defaults = (
            ("device", np.int8, 0),
            ("country", np.int16, 0),
            ("category", np.int32, -1),
            ("price_bucket", np.int8, 0),
            ("session_events", np.int32, 0),
            ("since_last", np.float64, np.inf),
        )
        for name, dtype, fill in defaults:
            if getattr(self, name) is None:
                setattr(self, name, np.full(n, fill, dtype=dtype))
        if self.recent_categories is None:
            self.recent_categories = np.full((n, 0), -1, dtype=np.int32)
        if self.category_ts is None:
            self.category_ts = np.zeros(self.recent_categories.shape, dtype=np.float64)

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def sizes(self) -> tuple[int, int]:
        """(users, items) the batch needs room for, checked: compiled kernels that index with
        these do not check bounds, so negative indices are refused here."""
        if len(self) == 0:
            return self.n_users, self.n_items
        if self.users.min() < 0 or self.items.min() < 0:
            raise ValueError("batch holds negative user or item indices")
        return (
            max(self.n_users, int(self.users.max()) + 1),
            max(self.n_items, int(self.items.max()) + 1),
        )
