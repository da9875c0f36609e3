"""Drift scenarios: the simulated shop with its shoppers' tastes changing at known points.

Each scenario is a seeded ``ShopSimulator`` whose tastes are re-set every ``block`` events:

- ``stationary``: tastes never change (false-alarm runs);
- ``abrupt``: at event ``shift_at`` a trend sets in at once: every shopper gives half of their
  attention to three categories that were little liked, and inside every category other items
  become the popular ones and browsing paths change (each category's ring of items is shuffled),
  so what was learned about items goes stale;
- ``gradual``: the same change spread over ``span`` events from ``shift_at``: the tastes slide
  linearly and the categories' rings are shuffled one category after another;
- ``new_category``: one category's items are never shown before ``shift_at``; from then on every
  shopper gives that (hot, brand-new) category half of their attention;
- ``seasonal``: the categories' appeal follows a sine of period ``period`` events (two halves of
  the catalogue in opposite phase); ``shift_at`` is the first peak.

Events carry their item's category in ``context`` (the category-shift signal reads it).

>>> a = DriftScenario("abrupt", seed=3, n_items=300, n_shoppers=60).take(2000)
>>> a == DriftScenario("abrupt", seed=3, n_items=300, n_shoppers=60).take(2000)
True
>>> sorted(a[0]["context"])
['category', 'country', 'device']
"""

from __future__ import annotations

import math
from itertools import accumulate
from typing import Any

import numpy as np

from freshrec.sim.shop import ShopSimulator

SCENARIOS = ("stationary", "abrupt", "gradual", "new_category", "seasonal")


class DriftScenario:
    """A reproducible event stream with a preference shift of a known kind at a known point."""

    def __init__(
        self,
        kind: str,
        seed: int = 0,
        shift_at: int = 50_000,
        span: int = 20_000,
        period: int = 100_000,
        block: int = 250,
        n_items: int = 3000,
        n_shoppers: int = 2000,
        **shop: Any,
    ) -> None:
        if kind not in SCENARIOS:
            raise ValueError(f"kind: unknown scenario {kind!r} (known: {', '.join(SCENARIOS)})")
        self.kind = kind
        self.shift_at = None if kind == "stationary" else shift_at
        self.span = span
        self.period = period
        self.block = block
        self.shop = ShopSimulator(n_items=n_items, n_shoppers=n_shoppers, seed=seed, **shop)
        rng = np.random.default_rng(seed + 1_000_003)
        shoppers = self.shop.shoppers
        self.base = shoppers.taste.copy()
        n_cat = self.base.shape[1]
        liked = self.base.sum(axis=0)
        trend = np.zeros(n_cat)
        trend[np.argsort(liked)[:3]] = 1.0 / 3.0
        self.shifted = 0.5 * self.base + 0.5 * trend
        catalogue = self.shop.catalogue
        self._rings = [list(m) for m in catalogue.members]
        self._shuffled = [rng.permutation(m).tolist() for m in catalogue.members]
        self._order = rng.permutation(n_cat)  # the order categories shuffle in (gradual)
        self._n_shuffled = 0
        self.hot = int(np.argmin(np.bincount(self.shop.catalogue.category, minlength=n_cat)))
        self.phase = np.where(np.arange(n_cat) % 2 == 0, 0.0, math.pi)
        self.position = 0
        self._names = [
            self.shop.catalogue.category_names[c] for c in self.shop.catalogue.category.tolist()
        ]

    def taste_at(self, position: int) -> np.ndarray:
        """The tastes (shoppers x categories) in force at event ``position``."""
        base, at = self.base, self.shift_at
        if self.kind == "abrupt" and position >= at:  # type: ignore[operator]
            return self.shifted
        if self.kind == "gradual" and position >= at:  # type: ignore[operator]
            a = min(1.0, (position - at) / self.span)  # type: ignore[operator]
            return (1 - a) * base + a * self.shifted
        if self.kind == "new_category":
            taste = base.copy()
            taste[:, self.hot] = 0.0
            taste /= taste.sum(axis=1, keepdims=True)
            if position >= at:  # type: ignore[operator]
                taste *= 0.5
                taste[:, self.hot] = 0.5
            return taste
        if self.kind == "seasonal":
            start = (at or 0) - self.period / 4  # peak of the even categories at shift_at
            angle = 2 * math.pi * (position - start) / self.period + self.phase
            taste = base * (1.0 + 0.8 * np.sin(angle))
            return taste / taste.sum(axis=1, keepdims=True)
        return base

    def shuffled_at(self, position: int) -> int:
        """How many categories have their shuffled ring at event ``position``."""
        at, n_cat = self.shift_at, len(self._rings)
        if self.kind == "abrupt" and position >= at:  # type: ignore[operator]
            return n_cat
        if self.kind == "gradual" and position >= at:  # type: ignore[operator]
            return round(n_cat * min(1.0, (position - at) / self.span))  # type: ignore[operator]
        return 0

    def _set_rings(self, n: int) -> None:
        catalogue = self.shop.catalogue
        chosen = set(self._order[:n].tolist())
        for c in range(len(self._rings)):
            ring = self._shuffled[c] if c in chosen else self._rings[c]
            catalogue.members[c] = ring
            catalogue.position[ring] = np.arange(len(ring))
        catalogue._position_list = catalogue.position.tolist()
        self._n_shuffled = n

    def _set_taste(self, taste: np.ndarray) -> None:
        shoppers = self.shop.shoppers
        shoppers.taste = taste
        shoppers._cumulative = [list(accumulate(row)) for row in taste.tolist()]
        top = np.argsort(-taste, axis=1)
        shoppers.liked = [
            tuple(sorted(top[s, : len(shoppers.liked[s])].tolist())) for s in range(taste.shape[0])
        ]

    def take(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` events."""
        out: list[dict[str, Any]] = []
        while len(out) < n:
            if self.kind != "stationary" or self.position == 0:
                self._set_taste(self.taste_at(self.position))
                if self.shuffled_at(self.position) != self._n_shuffled:
                    self._set_rings(self.shuffled_at(self.position))
            m = min(self.block - self.position % self.block, n - len(out))
            events = self.shop.take(m)
            for e in events:
                e["context"]["category"] = self._names[self.shop.catalogue.index[e["item_id"]]]
            out.extend(events)
            self.position += m
        return out
