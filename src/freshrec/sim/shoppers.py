"""The simulated shop's customers: each with a taste over a few categories, a country, a pace.

A taste is a probability distribution over categories: most of its mass on the two to four
categories the shopper likes, a little (``explore``) spread over every category. The first
``regulars`` shoppers (``shopper-0001``...) visit far more often than the rest, so a dashboard
watching them sees their recommendations move.

>>> import numpy as np
>>> shoppers = Shoppers(n_shoppers=50, n_categories=20, rng=np.random.default_rng(3))
>>> shoppers.user_ids[0], len(shoppers.liked[0]) in (2, 3, 4)
('shopper-0001', True)
>>> bool(abs(shoppers.taste.sum(axis=1) - 1).max() < 1e-9)
True
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

import numpy as np

COUNTRIES: tuple[str, ...] = ("US", "DE", "GB", "FR", "PL", "ES", "IT", "NL", "SE", "BR")
COUNTRY_SHARES: tuple[float, ...] = (0.30, 0.15, 0.12, 0.10, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03)
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet")
DEVICE_SHARES: tuple[float, ...] = (0.58, 0.34, 0.08)


class Shoppers:
    """Customer ids, tastes, home countries and activity levels.

    Parameters
    ----------
    n_shoppers
        Number of shoppers, named ``shopper-0001``...
    n_categories
        Number of catalogue categories the tastes range over.
    rng
        The random generator that draws the shoppers.
    explore
        Share of a taste spread evenly over every category.
    regulars
        How many of the first shoppers are regulars.
    regular_boost
        How much more often a regular starts a session than a typical shopper.
    """

    def __init__(
        self,
        n_shoppers: int,
        n_categories: int,
        rng: np.random.Generator,
        explore: float = 0.05,
        regulars: int = 8,
        regular_boost: float = 30.0,
    ) -> None:
        if n_shoppers < 1:
            raise ValueError("need at least one shopper")
        self.n_shoppers = n_shoppers
        self.explore = explore
        self.regulars = min(regulars, n_shoppers)
        self.regular_boost = regular_boost
        width = max(4, len(str(n_shoppers)))
        self.user_ids = [f"shopper-{i + 1:0{width}d}" for i in range(n_shoppers)]
        self.index = {user_id: i for i, user_id in enumerate(self.user_ids)}
        n_liked = rng.choice([2, 3, 4], n_shoppers, p=[0.4, 0.4, 0.2])
        order = rng.random((n_shoppers, n_categories)).argsort(axis=1)
        self.liked: list[tuple[int, ...]] = [
            tuple(sorted(order[s, : min(int(n_liked[s]), n_categories)].tolist()))
            for s in range(n_shoppers)
        ]
        taste = np.full((n_shoppers, n_categories), explore / n_categories)
        for s, liked in enumerate(self.liked):
            taste[s, list(liked)] += (1.0 - explore) * rng.dirichlet(np.full(len(liked), 2.0))
        self.taste = taste
        self._cumulative = [list(accumulate(row)) for row in taste.tolist()]
        self.country: list[str] = rng.choice(COUNTRIES, n_shoppers, p=COUNTRY_SHARES).tolist()
        activity = rng.lognormal(0.0, 1.0, n_shoppers)
        activity[: self.regulars] = regular_boost * np.median(activity)
        self.activity = activity / activity.sum()
        self._activity_cumulative = list(accumulate(self.activity.tolist()))
        self._devices = list(accumulate(DEVICE_SHARES))

    def category(self, shopper: int, u: float) -> int:
        """A category drawn from ``shopper``'s taste, given a uniform number ``u`` in [0, 1)."""
        cumulative = self._cumulative[shopper]
        return min(bisect_right(cumulative, u * cumulative[-1]), len(cumulative) - 1)

    def pick(self, u: float) -> int:
        """A shopper drawn by activity, given a uniform number ``u`` in [0, 1)."""
        cumulative = self._activity_cumulative
        return min(bisect_right(cumulative, u * cumulative[-1]), self.n_shoppers - 1)

    def device(self, u: float) -> str:
        """The device of a new session, given a uniform number ``u`` in [0, 1)."""
        return DEVICES[min(bisect_right(self._devices, u * self._devices[-1]), len(DEVICES) - 1)]

    def likes(self, shopper: int, category: int) -> bool:
        """Whether ``category`` is one of ``shopper``'s liked categories."""
        return category in self.liked[shopper]
