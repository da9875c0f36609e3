"""Helpers for tests and doctests: small batches and event streams with a known answer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from freshrec.events import EventType
from freshrec.state import Batch


def make_batch(
    items: Sequence[int],
    ts: Sequence[float] | None = None,
    users: Sequence[int] | None = None,
    weight: Sequence[float] | None = None,
    prev_items: Sequence[Sequence[int]] | None = None,
    window: int = 10,
) -> Batch:
    """A ``Batch`` of view events built directly from indices (defaults: user 0, t=0, weight 1)."""
    n = len(items)
    prev = np.full((n, window), -1, dtype=np.int32)
    for k, row in enumerate(prev_items or []):
        prev[k, : len(row)] = row
    users_arr = np.asarray(users if users is not None else [0] * n, dtype=np.int32)
    items_arr = np.asarray(items, dtype=np.int32)
    return Batch(
        users=users_arr,
        items=items_arr,
        types=np.full(n, EventType.view, dtype=np.int8),
        ts=np.asarray(ts if ts is not None else [0.0] * n, dtype=np.float64),
        weight=np.asarray(weight if weight is not None else [1.0] * n, dtype=np.float64),
        new_session=np.zeros(n, dtype=np.bool_),
        prev_items=prev,
        prev_types=np.zeros((n, window), dtype=np.int8),
        n_users=int(users_arr.max()) + 1 if n else 0,
        n_items=max(int(items_arr.max()), int(prev.max())) + 1 if n else 0,
    )
