"""Business filters of a recommendation request, and the shop-wide rules from settings.

A ``Filters`` value is what one request asks for (``exclude_viewed``, ``category``, a price
range, ``exclude`` ids, at most ``max_per_category`` items per category) merged with the shop's
rules (never unavailable items, categories never shown). ``mask`` applies all of it to an array
of item indices at once (one compiled pass); ``diversify`` keeps at most N per category in rank
order.

>>> Filters(min_price=5, max_price=1).check()
Traceback (most recent call last):
...
freshrec.errors.ValidationError: min_price: 5.0 is above max_price 1.0
>>> diversify(np.array([7, 7, 3, 7, 3]), 2).tolist()
[True, True, True, False, True]
"""

from __future__ import annotations

import math

import msgspec
import numba
import numpy as np

from freshrec.errors import ValidationError
from freshrec.features.context import category_id
from freshrec.state import OnlineState
from freshrec.state.arrays import member_of
from freshrec.state.catalogue import Catalogue, catalogue_index, category_of, price_of

MAX_EXCLUDE = 1000


class Filters(msgspec.Struct, frozen=True, gc=False):
    """What a request may leave out; defaults are the shop's defaults. Part of the response
    cache's keys, so untracked by the garbage collector (strings, numbers and tuples only)."""

    exclude_purchased: bool = True
    exclude_viewed: bool = False
    category: str | None = None
    exclude: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    max_per_category: int = 0  # 0 = no limit
    available_only: bool = True  # shop rule
    excluded_categories: tuple[str, ...] = ()  # shop rule

    def check(self) -> Filters:
        """Raise ``ValidationError`` naming the field of a malformed filter; returns self."""
        for name in ("min_price", "max_price"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValidationError(name, f"must be a finite number >= 0, got {value!r}")
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise ValidationError(
                "min_price", f"{float(self.min_price)} is above max_price {float(self.max_price)}"
            )
        if self.max_per_category < 0:
            raise ValidationError("max_per_category", "must be >= 0")
        if len(self.exclude) > MAX_EXCLUDE:
            raise ValidationError("exclude", f"at most {MAX_EXCLUDE} item ids")
        if self.category is not None and not self.category:
            raise ValidationError("category", "must not be empty")
        return self

    @property
    def restricts_items(self) -> bool:
        """Whether the filters may drop many of the catalogue's items (fill from a scan)."""
        return self.category is not None or self.min_price is not None or self.max_price is not None


class FilterSet:
    """``Filters`` compiled against the catalogue and the state for one request."""

    def __init__(self, filters: Filters, state: OnlineState, catalogue: Catalogue) -> None:
        self.filters = filters
        self.state = state
        self.catalogue = catalogue
        self.category = None if filters.category is None else category_id(filters.category)
        self.banned = np.asarray(
            [category_id(c) for c in filters.excluded_categories], dtype=np.int32
        )

    def mask(self, items: np.ndarray) -> np.ndarray:
        """Which state item indices pass every filter (exclusion lists aside): one compiled
        pass over ``items`` (the catalogue's entry of each, else what events said)."""
        f, c = self.filters, self.catalogue
        return _mask(
            np.asarray(items, dtype=np.int64),
            c.state_to_c[: c.synced],
            c.c_available,
            c.c_category,
            c.c_price,
            self.state.item_category,
            self.state.item_price,
            f.available_only and c.unavailable > 0,  # nothing hidden: no availability check
            -1 if self.category is None else self.category,
            self.category is not None,
            self.banned,
            np.nan if f.min_price is None else float(f.min_price),
            np.nan if f.max_price is None else float(f.max_price),
        )

    def mask_fresh(self, fresh: np.ndarray) -> np.ndarray:
        """The same filters on catalogue indices of items no event has touched yet."""
        c = self.catalogue
        ok = c.c_available[fresh].copy()
        cats = c.c_category[fresh]
        if self.category is not None:
            ok &= cats == self.category
        if self.banned.size:
            ok &= ~member_of(cats, self.banned)
        prices = c.c_price[fresh]
        if self.filters.min_price is not None:
            ok &= prices >= self.filters.min_price
        if self.filters.max_price is not None:
            ok &= prices <= self.filters.max_price
        if self.filters.exclude:
            ok &= ~member_of(fresh, c.ids.lookup(list(self.filters.exclude)))
        return ok


@numba.njit(cache=True, nogil=True)
def _mask(
    items,
    state_to_c,
    c_available,
    c_category,
    c_price,
    state_category,
    state_price,
    check_available,
    category,
    by_category,
    banned,
    lo,
    hi,
):  # pragma: no cover - compiled
    """``FilterSet.mask``: availability, category (the catalogue's, else the events'), banned
    categories and a price range (the catalogue's, else the events'; unknown never passes)."""
    ok = np.ones(items.shape[0], dtype=np.bool_)
    by_price = not (np.isnan(lo) and np.isnan(hi))
    for j in range(items.shape[0]):
        i = items[j]
        c = catalogue_index(i, state_to_c)
        if check_available and c >= 0 and not (c < c_available.shape[0] and c_available[c]):
            ok[j] = False
            continue
        if by_category or banned.shape[0]:
            cat = category_of(i, c, c_category, state_category)
            if by_category and cat != category:
                ok[j] = False
                continue
            for b in banned:
                if cat == b:
                    ok[j] = False
            if not ok[j]:
                continue
        if by_price:
            price = price_of(i, c, c_price, state_price)
            # unknown (NaN) prices never pass a price filter: comparisons with NaN are False
            if (not np.isnan(lo) and not price >= lo) or (not np.isnan(hi) and not price <= hi):
                ok[j] = False
    return ok


def diversify(categories: np.ndarray, per_category: int) -> np.ndarray:
    """Keep-mask allowing at most ``per_category`` items of each category, in rank order
    (unknown categories, -1, are never limited)."""
    if per_category <= 0 or categories.size == 0:
        return np.ones(categories.shape[0], dtype=np.bool_)
    return _diversify(categories.astype(np.int64), per_category)


@numba.njit(cache=True, nogil=True)
def _diversify(categories, per_category):  # pragma: no cover - compiled
    n = categories.shape[0]
    order = np.argsort(categories, kind="mergesort")  # stable: rank order within a category
    keep = np.ones(n, dtype=np.bool_)
    run = 0
    for i in range(n):
        c = categories[order[i]]
        run = run + 1 if i > 0 and c == categories[order[i - 1]] else 1
        if c >= 0 and run > per_category:
            keep[order[i]] = False
    return keep
