"""The session protocol: "because you viewed X" -- predict the next item of a session.

Events are re-keyed by session (``datasets.sessions_of``: the data's session ids, or a user's
events split after 30 minutes of inactivity) and grouped: sessions in the order of their first
event (ties: order of appearance), each session's events in time order. Every event after the
first of its session is tested: the model, which has learned the session so far, recommends its
top-K for the session (the session id is the adapter's ``user_id``), nothing excluded (shoppers
return to items), and the rank of the event's item is recorded. Then the model learns the event.
Metrics are HR@K (= Recall@K with the one next item) and MRR@K, as Ludewig et al. (2021) report
them for next-item prediction.

>>> from freshrec.events import LoggedEvent
>>> events = [LoggedEvent(0, s, i, float(t)) for t, (s, i) in
...           enumerate([("s1", "a"), ("s2", "b"), ("s1", "c"), ("s2", "b")])]
>>> plan = session_plan(events)
>>> [(e.user_id, e.item_id) for e in plan.events], plan.tested.tolist()
([('s1', 'a'), ('s1', 'c'), ('s2', 'b'), ('s2', 'b')], [False, True, False, True])
"""

from __future__ import annotations

import numpy as np

from freshrec.eval.protocol import Plan
from freshrec.events import LoggedEvent


def session_plan(events: list[LoggedEvent]) -> Plan:
    """Group ``events`` (time-ordered, ``user_id`` = session) by session; test all but firsts."""
    groups: dict[str, list[LoggedEvent]] = {}
    for e in events:
        groups.setdefault(e.user_id, []).append(e)
    ordered = sorted(groups.values(), key=lambda g: g[0].ts)  # stable: ties keep first-seen order
    flat = [e for g in ordered for e in g]
    tested = np.ones(len(flat), dtype=bool)
    starts = np.cumsum([0] + [len(g) for g in ordered[:-1]]) if ordered else np.zeros(0, int)
    tested[starts] = False
    return Plan("session", flat, tested, exclude_seen=False)


__all__ = ["session_plan"]
