"""Feedback attribution: clicks and purchases that carry a ``recommendation_id``.

Every served response is remembered (the last ``max_responses`` of them) with its strategy,
model version, experiment arm and items. An ingested ``click`` or ``purchase`` whose
``recommendation_id`` names a remembered response, and whose item was in it, is attributed to
that response -- and so to its strategy, model version and arm. Per ``(strategy,
model_version)``: responses served, clicks, purchases, the click-through rate (responses with a
click / responses) and the conversion rate (responses with a purchase / responses).

Counters live in memory: they restart from zero with the process (the events themselves are in
the log).

>>> fb = Feedback(max_responses=10)
>>> fb.served("r1", "ensemble", "v1", "u1", ["a", "b"])
>>> from freshrec.events import LoggedEvent
>>> fb.observe([LoggedEvent(1, "u1", "b", 0.0, recommendation_id="r1"),
...             LoggedEvent(1, "u1", "zz", 0.0, recommendation_id="r1")])  # zz was not shown
1
>>> fb.stats()["ensemble/v1"]["ctr"]
1.0
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from freshrec.events import EventType, LoggedEvent

_KINDS = {int(EventType.click): "click", int(EventType.purchase): "purchase"}


class _Response(msgspec.Struct, gc=False):
    """One remembered response. Up to ``max_responses`` of them live for minutes: they are
    kept out of the cyclic garbage collector's sight (``gc=False``; they hold only strings,
    so they can form no cycle), the items as a tuple (a set would be one more tracked object
    each), the attribution sets made only when something is attributed."""

    strategy: str
    version: str
    user_id: str
    items: tuple[str, ...]
    experiment: str | None
    arm: str | None
    seen: set[str] | None = None  # kinds already attributed
    event_ids: set[str] | None = None  # a resent event counts once


@dataclass(slots=True)
class Counts:
    responses: int = 0
    items_shown: int = 0
    clicks: int = 0
    purchases: int = 0
    clicked: int = 0
    converted: int = 0

    def as_dict(self) -> dict[str, Any]:
        n = self.responses
        return {
            "responses": n,
            "items_shown": self.items_shown,
            "clicks": self.clicks,
            "purchases": self.purchases,
            "ctr": self.clicked / n if n else 0.0,
            "conversion": self.converted / n if n else 0.0,
        }


class Feedback:
    """Remembers served responses; attributes clicks and purchases to them."""

    def __init__(
        self,
        max_responses: int = 200_000,
        on_attributed: Callable[[str, str, str, bool], None] | None = None,
    ) -> None:
        self.max_responses = max_responses
        self.on_attributed = on_attributed  # (experiment, arm, kind, first) for A/B counters
        self._responses: OrderedDict[str, _Response] = OrderedDict()
        self.counts: dict[tuple[str, str], Counts] = {}
        self.unattributed = 0  # events naming a response we do not remember (or another item)
        self._lock = threading.Lock()

    def served(
        self,
        recommendation_id: str,
        strategy: str,
        version: str,
        user_id: str,
        items: Sequence[str],
        experiment: str | None = None,
        arm: str | None = None,
    ) -> None:
        with self._lock:
            self._responses[recommendation_id] = _Response(
                strategy, version, user_id, tuple(items), experiment, arm
            )
            if len(self._responses) > self.max_responses:
                self._responses.popitem(last=False)
            c = self.counts.setdefault((strategy, version), Counts())
            c.responses += 1
            c.items_shown += len(items)

    def observe(self, events: Sequence[LoggedEvent]) -> int:
        """Attribute the clicks and purchases among ``events``; returns how many were."""
        found = 0
        notify = []
        with self._lock:
            for e in events:
                rid = e.recommendation_id
                kind = _KINDS.get(e.type)
                if rid is None or kind is None:
                    continue
                response = self._responses.get(rid)
                if response is None or e.item_id not in response.items:
                    self.unattributed += 1
                    continue
                if e.event_id is not None:
                    if response.event_ids is None:
                        response.event_ids = set()
                    elif e.event_id in response.event_ids:
                        continue
                    response.event_ids.add(e.event_id)
                if response.seen is None:
                    response.seen = set()
                first = kind not in response.seen
                response.seen.add(kind)
                c = self.counts[(response.strategy, response.version)]
                if kind == "click":
                    c.clicks += 1
                    c.clicked += first
                else:
                    c.purchases += 1
                    c.converted += first
                found += 1
                if response.experiment is not None and response.arm is not None:
                    notify.append((response.experiment, response.arm, kind, first))
        if self.on_attributed is not None:
            for args in notify:
                self.on_attributed(*args)
        return found

    def stats(self) -> dict[str, dict[str, Any]]:
        """Counters and rates per ``"strategy/model_version"``."""
        with self._lock:
            return {f"{s}/{v}": c.as_dict() for (s, v), c in sorted(self.counts.items())}

    def rows(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(strategy, model_version, counters)`` of every pair served."""
        with self._lock:
            return [(s, v, c.as_dict()) for (s, v), c in sorted(self.counts.items())]
