"""The simulated shop's catalogue: items in named categories, each with a price and a popularity.

Items of a category form a ring in id order; an item's *neighbours* are the items a few places
away on that ring. Shoppers often move from an item to a neighbour, which gives co-visitation
something real to learn.

>>> import numpy as np
>>> catalogue = Catalogue(n_items=100, n_categories=5, rng=np.random.default_rng(7))
>>> catalogue.item_ids[:2], len(catalogue.category_names)
(['sku-000000', 'sku-000001'], 5)
>>> item = catalogue.sample(category=2, u=0.5)
>>> int(catalogue.category[catalogue.neighbour(item, u=0.1)]) == int(catalogue.category[item]) == 2
True
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import Any

import numpy as np

CATEGORY_NAMES: tuple[str, ...] = (
    "shoes", "dresses", "t-shirts", "jeans", "jackets", "watches", "bags", "sunglasses",
    "headphones", "phones", "laptops", "cameras", "books", "board-games", "toys", "kitchen",
    "garden", "beauty", "sports", "pet-supplies",
)  # fmt: skip


class Catalogue:
    """Items ``sku-000000``... spread over named categories, with prices and popularity.

    Parameters
    ----------
    n_items
        Number of items (at least ``n_categories``).
    n_categories
        Number of categories; the first 20 have names, later ones are ``category-21``...
    rng
        The random generator that draws the catalogue.
    popularity_exponent
        Zipf exponent of the popularity of items within a category (0 = all equally popular).
    neighbour_span
        How far along its category's ring a neighbour of an item may be.
    """

    def __init__(
        self,
        n_items: int,
        n_categories: int,
        rng: np.random.Generator,
        popularity_exponent: float = 0.9,
        neighbour_span: int = 3,
    ) -> None:
        if n_categories < 1 or n_items < n_categories:
            raise ValueError("need at least one category and at least one item per category")
        self.n_items = n_items
        self.n_categories = n_categories
        self.popularity_exponent = popularity_exponent
        self.neighbour_span = neighbour_span
        width = max(6, len(str(n_items - 1)))
        self.item_ids = [f"sku-{i:0{width}d}" for i in range(n_items)]
        self.index = {item_id: i for i, item_id in enumerate(self.item_ids)}
        self.category_names = [
            CATEGORY_NAMES[c] if c < len(CATEGORY_NAMES) else f"category-{c + 1}"
            for c in range(n_categories)
        ]
        # categories of uneven size, none empty
        shares = rng.dirichlet(np.full(n_categories, 4.0))
        category = np.concatenate(
            [np.arange(n_categories), rng.choice(n_categories, n_items - n_categories, p=shares)]
        )
        self.category = rng.permutation(category).astype(np.int32)
        base_price = rng.lognormal(3.5, 0.8, n_categories)
        self.price = np.round(base_price[self.category] * rng.lognormal(0.0, 0.4, n_items), 2)
        self.members: list[list[int]] = []
        self._cumulative: list[list[float]] = []
        self.position = np.zeros(n_items, dtype=np.int64)
        for c in range(n_categories):
            members = np.flatnonzero(self.category == c)
            self.position[members] = np.arange(members.size)
            rank = rng.permutation(members.size)
            weight = 1.0 / (rank + 1.0) ** popularity_exponent
            self.members.append(members.tolist())
            self._cumulative.append(list(accumulate((weight / weight.sum()).tolist())))
        self._category_list: list[int] = self.category.tolist()
        self._position_list: list[int] = self.position.tolist()

    def sample(self, category: int, u: float) -> int:
        """An item of ``category`` drawn by popularity, given a uniform number ``u`` in [0, 1)."""
        cumulative = self._cumulative[category]
        members = self.members[category]
        return members[min(bisect_right(cumulative, u * cumulative[-1]), len(members) - 1)]

    def neighbour(self, item: int, u: float) -> int:
        """An item at most ``neighbour_span`` places from ``item`` on its category's ring."""
        members = self.members[self._category_list[item]]
        if len(members) == 1:
            return item
        span = min(self.neighbour_span, len(members) - 1)
        step = int(u * 2 * span)  # 0 .. 2*span-1, mapped to -span..-1, 1..span
        offset = step - span if step < span else step - span + 1
        return members[(self._position_list[item] + offset) % len(members)]

    def category_of(self, item: int) -> int:
        """The category index of item index ``item``."""
        return self._category_list[item]

    def records(self) -> list[dict[str, Any]]:
        """Catalogue metadata, one dict per item: ``item_id``, ``category``, ``price``."""
        names = self.category_names
        return [
            {"item_id": item_id, "category": names[c], "price": p}
            for item_id, c, p in zip(
                self.item_ids, self._category_list, self.price.tolist(), strict=True
            )
        ]
