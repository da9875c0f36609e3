"""A seeded shop: shoppers browse a catalogue in sessions and emit events in the public contract.

A fixed number of sessions run at once. Each event comes from one of them, picked at random: the
shopper views an item from a category they like (by the category's popularity), or, more often,
one next to the item they just viewed. A view is sometimes followed by a click on that item or
an add-to-cart, and a cart sometimes by a purchase. When a session ends another shopper, chosen
by how active they are, starts one. Every random number comes from one ``numpy`` generator
seeded by ``seed``, drawn in blocks, so the stream is reproducible and cheap (well over 20,000
events per second in pure Python).

>>> sim = ShopSimulator(n_items=200, n_shoppers=30, seed=1, start_time=1_700_000_000)
>>> events = sim.take(500)
>>> sorted(events[0])
['context', 'event_id', 'item_id', 'session_id', 'timestamp', 'type', 'user_id']
>>> ShopSimulator(n_items=200, n_shoppers=30, seed=1, start_time=1_700_000_000).take(500) == events
True
>>> sum(e["type"] == "view" for e in events) > sum(e["type"] == "purchase" for e in events)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from freshrec.sim.catalogue import Catalogue
from freshrec.sim.shoppers import Shoppers

_BLOCK = 1 << 16  # uniform numbers drawn per call to the generator

Pending = tuple[str, int, str | None]  # (event type, item index, recommendation_id)


class ShopSimulator:
    """Shoppers with tastes browsing a catalogue in sessions; a stream of event dicts.

    Parameters
    ----------
    n_items, n_categories, n_shoppers
        Size of the shop.
    seed
        Seed of the one random generator everything is drawn from.
    start_time
        Unix time of the first event; event time then advances by random gaps.
    mean_gap_seconds
        Mean time between two events of the whole shop.
    concurrent_sessions
        Sessions in progress at any moment.
    mean_session_events
        Mean number of events in a session.
    p_related
        Chance that a view follows on from the previous one (a neighbour of the last item).
    p_click, p_cart, p_purchase
        Chance that a view is followed by a click or by an add-to-cart of the same item, and that
        an add-to-cart is followed by a purchase.
    follow_probability
        Chance that a shopper shown recommendations clicks one they like (see ``follow``).
    explore, regulars
        Passed to ``Shoppers``: taste mass spread over all categories; number of regulars.
    run_id
        Prefix of event and session ids (default ``s<seed>``); give each run of a shop that
        writes to the same log its own, so its events are not taken for duplicates.
    """

    def __init__(
        self,
        n_items: int = 3000,
        n_categories: int = 20,
        n_shoppers: int = 500,
        seed: int = 0,
        start_time: float = 1_700_000_000.0,
        mean_gap_seconds: float = 0.05,
        concurrent_sessions: int = 40,
        mean_session_events: float = 12.0,
        p_related: float = 0.6,
        p_click: float = 0.10,
        p_cart: float = 0.04,
        p_purchase: float = 0.3,
        follow_probability: float = 0.3,
        explore: float = 0.05,
        regulars: int = 8,
        run_id: str | None = None,
    ) -> None:
        self.n_items = n_items
        self.n_categories = n_categories
        self.n_shoppers = n_shoppers
        self.seed = seed
        self.start_time = start_time
        self.mean_gap_seconds = mean_gap_seconds
        self.concurrent_sessions = concurrent_sessions
        self.mean_session_events = mean_session_events
        self.p_related = p_related
        self.p_click = p_click
        self.p_cart = p_cart
        self.p_purchase = p_purchase
        self.follow_probability = follow_probability
        self.run_id = f"s{seed}" if run_id is None else run_id
        self.rng = np.random.default_rng(seed)
        self.catalogue = Catalogue(n_items, n_categories, self.rng)
        self.shoppers = Shoppers(n_shoppers, n_categories, self.rng, explore, regulars)
        self.time = float(start_time)
        self.emitted = 0
        self._gap = mean_gap_seconds
        self._pool: list[float] = []
        self._next = 0
        self._busy = [False] * n_shoppers
        self._sessions = [0] * n_shoppers
        self._session_id = [""] * n_shoppers
        self._left = [0] * n_shoppers
        self._last = [-1] * n_shoppers
        self._device = [""] * n_shoppers
        self._pending: list[Pending | None] = [None] * n_shoppers
        self._active: list[int] = []
        self._prices: list[float] = self.catalogue.price.tolist()
        for _ in range(max(1, min(concurrent_sessions, n_shoppers))):
            self._start_session(self._pick_idle())

    # -- randomness and sessions -------------------------------------------------------------
    def _u(self) -> float:
        if self._next >= len(self._pool):
            self._pool = self.rng.random(_BLOCK).tolist()
            self._next = 0
        u = self._pool[self._next]
        self._next += 1
        return u

    def _pick_idle(self) -> int:
        for _ in range(16):
            s = self.shoppers.pick(self._u())
            if not self._busy[s]:
                return s
        start = int(self._u() * self.n_shoppers)
        for k in range(self.n_shoppers):
            s = (start + k) % self.n_shoppers
            if not self._busy[s]:
                return s
        raise RuntimeError("every shopper is in a session")  # unreachable: sessions < shoppers

    def _start_session(self, s: int) -> None:
        self._busy[s] = True
        self._active.append(s)
        self._sessions[s] += 1
        self._session_id[s] = f"{self.run_id}-{self.shoppers.user_ids[s]}-{self._sessions[s]}"
        self._left[s] = 1 + int(-math.log1p(-self._u()) * (self.mean_session_events - 1))
        self._device[s] = self.shoppers.device(self._u())
        self._last[s] = -1
        self._pending[s] = None

    def _end_session(self, slot: int) -> None:
        active = self._active
        s = active[slot]
        active[slot] = active[-1]
        active.pop()
        self._busy[s] = False
        self._pending[s] = None
        self._start_session(self._pick_idle())

    # -- events ------------------------------------------------------------------------------
    def _event(
        self, s: int, etype: str, item: int, recommendation_id: str | None
    ) -> dict[str, Any]:
        self.time += -math.log1p(-self._u()) * self._gap
        self.emitted += 1
        event: dict[str, Any] = {
            "type": etype,
            "user_id": self.shoppers.user_ids[s],
            "item_id": self.catalogue.item_ids[item],
            "event_id": f"{self.run_id}-{self.emitted}",
            "session_id": self._session_id[s],
            "timestamp": round(self.time, 3),
            "context": {"device": self._device[s], "country": self.shoppers.country[s]},
        }
        if recommendation_id is not None:
            event["recommendation_id"] = recommendation_id
        if etype in ("add_to_cart", "purchase"):
            event["value"] = self._prices[item]
        return event

    def _step(self) -> dict[str, Any]:
        u = self._u
        slot = int(u() * len(self._active))
        s = self._active[slot]
        pending = self._pending[s]
        self._pending[s] = None
        if pending is not None:
            etype, item, recommendation_id = pending
        else:
            etype, recommendation_id = "view", None
            last = self._last[s]
            if last >= 0 and u() < self.p_related:
                item = self.catalogue.neighbour(last, u())
            else:
                item = self.catalogue.sample(self.shoppers.category(s, u()), u())
            self._last[s] = item
        if etype == "view":
            r = u()
            if r < self.p_cart:
                self._pending[s] = ("add_to_cart", item, None)
            elif r < self.p_cart + self.p_click:
                self._pending[s] = ("click", item, None)
        elif etype == "add_to_cart" and u() < self.p_purchase:
            self._pending[s] = ("purchase", item, None)
        event = self._event(s, etype, item, recommendation_id)
        self._left[s] -= 1
        if self._left[s] <= 0 and self._pending[s] is None:
            self._end_session(slot)
        return event

    def take(self, n: int, until: float | None = None) -> list[dict[str, Any]]:
        """The next ``n`` events, in time order.

        With ``until`` (a unix time, e.g. the wall clock of a live driver) the events are spread
        between the simulator's clock and ``until``, so event time keeps pace with it; the clock
        jumps forward rather than spreading a batch over a long idle stretch.
        """
        if n <= 0:
            return []
        if until is None:
            self._gap = self.mean_gap_seconds
        else:
            self.time = max(self.time, until - n * self.mean_gap_seconds)
            self._gap = max((until - self.time) / n, 1e-4)
        step = self._step
        return [step() for _ in range(n)]

    def events(self, block: int = 1024) -> Iterator[dict[str, Any]]:
        """An endless stream of events, ``block`` at a time."""
        while True:
            yield from self.take(block)

    # -- recommendations ---------------------------------------------------------------------
    def browsing_shopper(self) -> str:
        """The user id of a shopper in a session right now, picked at random."""
        return self.shoppers.user_ids[self._active[int(self._u() * len(self._active))]]

    def context_of(self, user_id: str) -> dict[str, str]:
        """The device and country a page would send for ``user_id`` (empty if unknown)."""
        s = self.shoppers.index.get(user_id)
        if s is None:
            return {}
        return {"device": self._device[s], "country": self.shoppers.country[s]}

    def follow(
        self, user_id: str, response: Mapping[str, Any], depth: int = 5
    ) -> dict[str, Any] | None:
        """Maybe click one of the recommendations shown to ``user_id``.

        ``response`` is the body of ``GET /v1/recommendations``. A shopper in a session looks at
        the first ``depth`` items and, with probability ``follow_probability``, clicks the first
        one from a category they like: the click carries the ``recommendation_id`` and the
        shopper goes on to view that item. Returns the click event, or None.
        """
        s = self.shoppers.index.get(user_id)
        if s is None or not self._busy[s]:
            return None
        recommendation_id = response.get("recommendation_id")
        for entry in list(response.get("items") or ())[:depth]:
            item = self.catalogue.index.get(entry.get("item_id"))
            if item is not None and self.shoppers.likes(s, self.catalogue.category_of(item)):
                if self._u() >= self.follow_probability:
                    return None
                self._last[s] = item
                self._pending[s] = ("view", item, None)
                rid = recommendation_id if isinstance(recommendation_id, str) else None
                return self._event(s, "click", item, rid)
        return None
