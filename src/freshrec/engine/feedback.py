"""Feedback attribution: clicks and purchases that carry a ``recommendation_id``.

Every served response is remembered (the last ``max_responses`` of them) with its strategy,
model version, experiment arm and items. An ingested ``click`` or ``purchase`` whose
``recommendation_id`` names a remembered response, and whose item was in it, is attributed to
that response -- and so to its strategy, model version and arm. Per ``(strategy,
model_version)``: responses served, clicks, purchases, the click-through rate (responses with a
click / responses) and the conversion rate (responses with a purchase / responses).

Counters live in memory: they restart from zero with the process (the events themselves are in
the log).

With a ``remote`` (scale-out replicas: ``freshrec.state.redis_feedback.RedisFeedback``) the
responses and counters are the deployment's: ``served`` only appends the response id to a
bounded buffer, and ``sync`` (run by the replica's poller every ``shop_poll_seconds``) sends
the buffered responses and the counts added since the last sync in one round trip, reading
back the counters other replicas changed. ``observe`` looks up the responses it does not hold
(one round trip per batch) and claims "first click/purchase of this response" in the remote,
so it counts once over all replicas. ``stats`` shows the deployment's counts as of the last
sync plus this process's since. When the remote cannot be reached nothing fails: responses
and counts wait (bounded) for the next sync, a response held by another replica stays
unattributed, and "first" is decided locally.

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

import dataclasses
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from freshrec.errors import StorageError
from freshrec.events import EventType, LoggedEvent

log = logging.getLogger(__name__)

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

    def as_tuple(self) -> tuple[int, ...]:
        return dataclasses.astuple(self)

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


COUNTERS = tuple(f.name for f in dataclasses.fields(Counts))
Pair = tuple[str, str]  # (strategy, model_version)
# what another process needs to attribute to a response: strategy, model_version, user_id,
# items, experiment, arm
Record = tuple[str, str, str, tuple[str, ...], str | None, str | None]


class Remote(Protocol):
    """Where the responses and counters of a deployment are shared (scale-out: Redis). Each
    call is one round trip and raises ``StorageError`` when the remote cannot be reached."""

    def fetch(self, rids: Sequence[str]) -> dict[str, Record]:
        """The responses stored under ``rids`` (those it has; expired or unknown ones not)."""
        ...

    def claim(self, firsts: Sequence[tuple[str, str]]) -> list[bool]:
        """For each ``(recommendation_id, kind)``: whether this is the first claim of it."""
        ...

    def push(
        self, responses: Sequence[tuple[str, Record]], added: dict[Pair, tuple[int, ...]], seen: int
    ) -> tuple[int, dict[Pair, tuple[int, ...]]]:
        """Store ``responses``, add ``added`` to the shared counters (``COUNTERS`` order), and
        return the counters' version and the totals of every pair changed since ``seen``."""
        ...


def _record(r: _Response) -> Record:
    return (r.strategy, r.version, r.user_id, r.items, r.experiment, r.arm)


class Feedback:
    """Remembers served responses; attributes clicks and purchases to them."""

    PUSH_MAX = 2_000  # responses sent per sync (a backlog after an outage drains over syncs)

    def __init__(
        self,
        max_responses: int = 200_000,
        on_attributed: Callable[[str, str, str, bool], None] | None = None,
        remote: Remote | None = None,
    ) -> None:
        self.max_responses = max_responses
        self.on_attributed = on_attributed  # (experiment, arm, kind, first) for A/B counters
        self.remote = remote
        self._responses: OrderedDict[str, _Response] = OrderedDict()
        self.counts: dict[Pair, Counts] = {}  # this process's
        self.unattributed = 0  # events naming a response we do not remember (or another item)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        # with a remote: responses not pushed yet (ids; older ones are forgotten anyway), the
        # counts as of the last push, the deployment's totals then and their version
        self._unpushed: deque[str] = deque(maxlen=max_responses)
        self._pushed: dict[Pair, tuple[int, ...]] = {}
        self._totals: dict[Pair, tuple[int, ...]] = {}
        self._version = 0
        self.remote_failures = 0

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
            if self.remote is not None:  # sent by the next sync, never from here
                self._unpushed.append(recommendation_id)

    def observe(self, events: Sequence[LoggedEvent]) -> int:
        """Attribute the clicks and purchases among ``events``; returns how many were."""
        wanted = [
            (e, kind)
            for e in events
            if e.recommendation_id is not None and (kind := _KINDS.get(e.type)) is not None
        ]
        if not wanted:
            return 0
        if self.remote is not None:
            self._fetch_missing([e.recommendation_id for e, _ in wanted])  # type: ignore[misc]
        with self._lock:
            hits = self._attribute(wanted)
            firsts = [first for _, _, _, first in hits]
            if self.remote is None:
                self._count_firsts(hits, firsts)
        if self.remote is not None and hits:
            firsts = self._claim(hits)
            with self._lock:
                self._count_firsts(hits, firsts)
        if self.on_attributed is not None:
            for (_, response, kind, _), first in zip(hits, firsts, strict=True):
                if response.experiment is not None and response.arm is not None:
                    self.on_attributed(response.experiment, response.arm, kind, first)
        return len(hits)

    def _fetch_missing(self, rids: list[str]) -> None:
        """Take in the responses of ``rids`` that another process served (one round trip)."""
        with self._lock:
            missing = list({rid: None for rid in rids if rid not in self._responses})
        if not missing:
            return
        try:
            fetched = self.remote.fetch(missing)  # type: ignore[union-attr]
        except StorageError as exc:  # unattributed, as a response nobody remembers
            self.remote_failures += 1
            log.warning("click attribution: %s", exc)
            return
        with self._lock:
            for rid, (strategy, version, user, items, experiment, arm) in fetched.items():
                if rid not in self._responses:
                    self._responses[rid] = _Response(
                        strategy, version, user, tuple(items), experiment, arm
                    )
                    if len(self._responses) > self.max_responses:
                        self._responses.popitem(last=False)

    def _attribute(
        self, wanted: list[tuple[LoggedEvent, str]]
    ) -> list[tuple[str, _Response, str, bool]]:
        """Count the attributed clicks and purchases (under the lock); returns them as
        ``(recommendation_id, response, kind, first here)``."""
        hits = []
        for e, kind in wanted:
            rid = e.recommendation_id
            response = self._responses.get(rid)  # type: ignore[arg-type]
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
            c = self.counts.setdefault((response.strategy, response.version), Counts())
            if kind == "click":
                c.clicks += 1
            else:
                c.purchases += 1
            hits.append((rid, response, kind, first))  # type: ignore[arg-type]
        return hits

    def _claim(self, hits: list[tuple[str, _Response, str, bool]]) -> list[bool]:
        """Whether each hit is its response's first of its kind over the deployment: those
        first here are claimed in the remote (one round trip); locally when unreachable."""
        mine = [(rid, kind) for rid, _, kind, first in hits if first]
        if not mine:
            return [False] * len(hits)
        try:
            claimed = iter(self.remote.claim(mine))  # type: ignore[union-attr]
        except StorageError as exc:
            self.remote_failures += 1
            log.warning("click attribution: %s; first clicks decided by this replica", exc)
            return [first for _, _, _, first in hits]
        return [first and next(claimed) for _, _, _, first in hits]

    def _count_firsts(
        self, hits: list[tuple[str, _Response, str, bool]], firsts: list[bool]
    ) -> None:
        for (_, response, kind, _), first in zip(hits, firsts, strict=True):
            if first:
                c = self.counts[(response.strategy, response.version)]
                if kind == "click":
                    c.clicked += 1
                else:
                    c.converted += 1

    # -- sharing with the other processes of a deployment ------------------------------------
    def sync(self) -> None:
        """Push the responses served and the counts added since the last sync, and take in
        the deployment's totals (one round trip; a no-op without a remote). When the remote
        cannot be reached, both wait for the next sync (``StorageError`` is raised)."""
        if self.remote is None:
            return
        with self._sync_lock:  # one sync at a time: each pushes what the last one did not
            self._sync()

    def _sync(self) -> None:
        assert self.remote is not None
        with self._lock:
            rids = [
                self._unpushed.popleft() for _ in range(min(self.PUSH_MAX, len(self._unpushed)))
            ]
            responses = [
                (rid, _record(self._responses[rid])) for rid in rids if rid in self._responses
            ]
            now = {pair: c.as_tuple() for pair, c in self.counts.items()}
            pushed, seen = self._pushed, self._version
        added = {}
        for pair, counts in now.items():
            before = pushed.get(pair)
            delta = (
                counts
                if before is None
                else tuple(a - b for a, b in zip(counts, before, strict=True))
            )
            if any(delta):
                added[pair] = delta
        try:
            version, changed = self.remote.push(responses, added, seen)  # one round trip
        except StorageError:
            self.remote_failures += 1
            with self._lock:  # again next time (when the buffer is full, the newest only)
                room = self.max_responses - len(self._unpushed)
                self._unpushed.extendleft(reversed(rids[max(0, len(rids) - room) :]))
            raise
        with self._lock:
            self._pushed = now
            if version < self._version:  # the remote lost its counters: all of them came back
                self._totals = {}
            self._totals.update(changed)
            self._version = version

    def _current(self) -> dict[Pair, Counts]:
        """The counts shown (under the lock): this process's, or with a remote the
        deployment's as of the last sync plus this process's since."""
        if self.remote is None:
            return self.counts
        out = {}
        zero = (0,) * len(COUNTERS)
        for pair in self._totals.keys() | self.counts.keys():
            total = self._totals.get(pair, zero)
            mine = self.counts[pair].as_tuple() if pair in self.counts else zero
            pushed = self._pushed.get(pair, zero)
            out[pair] = Counts(*(t + m - p for t, m, p in zip(total, mine, pushed, strict=True)))
        return out

    def stats(self) -> dict[str, dict[str, Any]]:
        """Counters and rates per ``"strategy/model_version"``."""
        with self._lock:
            return {f"{s}/{v}": c.as_dict() for (s, v), c in sorted(self._current().items())}

    def rows(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(strategy, model_version, counters)`` of every pair served."""
        with self._lock:
            return [(s, v, c.as_dict()) for (s, v), c in sorted(self._current().items())]
