"""A micro-batch of events as arrays: what the state produces and every model learns from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Batch:
    """Events in log order, ids mapped to indices, plus each event's session context.

    ``prev_items[k]`` holds the items the user interacted with earlier in the same session, most
    recent first, padded with -1; ``prev_types`` their event-type codes. ``weight`` is the
    event-type weight (0 for events that say nothing about taste, such as impressions).
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

    def __len__(self) -> int:
        return int(self.users.shape[0])
