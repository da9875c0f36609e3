"""Cold start: what to show a shopper with no history, and how new items get seen at all.

**New users** get items popular in their context and among shoppers like them: each key that
matches the request or the user's profile -- ``country=…`` (request, else profile), the
``device``, the local ``daypart``, and the profile's ``age_band`` / ``gender`` / ``segment``
-- contributes its row of ``ContextPopularity`` scaled to [0, 1], weighted by ``KEY_WEIGHTS``;
short-term (trending) and overall popularity join with smaller weights. Each item's reason names
the key that contributed most ("popular in your country", "trending now", ...).

**New items** (in the catalogue, no event yet) are found by content: available fresh items in
the categories of the user's recent items, same brand first, newest first
(``new_items``). The recommender gives them ``new_item_slots`` places in a list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from freshrec.features import Context
from freshrec.models import DecayedPopularity
from freshrec.models.contextpop import DAYPARTS, ContextPopularity, daypart
from freshrec.state.arrays import member_of, sorted_unique
from freshrec.state.catalogue import Catalogue

TRENDING_LIFT = 1.5  # trending: short-term share at least this many times the long-run one
UNINFORMATIVE = 0.95  # a key carried by this share of all events or more is left out
STRONG = 0.25  # an item is "popular in X" (labels) with this share of X's top count
KEY_WEIGHTS = {
    "country": 1.0,
    "age_band": 1.0,
    "gender": 0.7,
    "segment": 1.0,
    "device": 0.5,
    "daypart": 0.5,
    "trending": 0.5,
    "popular": 0.3,
}


@dataclass(slots=True)
class ColdRanked:
    items: np.ndarray
    scores: np.ndarray
    reasons: list[dict[str, str]]


def _reason(key: str) -> dict[str, str]:
    if key == "trending":
        return {"type": "trending_now"}
    if key == "popular":
        return {"type": "popular"}
    name, _, value = key.partition("=")
    if name == "country":
        return {"type": "popular_in_your_country", "country": value}
    if name == "device":
        return {"type": "popular_on_your_device", "device": value}
    if name == "daypart":
        return {"type": "popular_at_this_time", "daypart": value}
    return {"type": "popular_with_similar_shoppers", "attribute": key}


class ColdStart:
    """Context-aware popular items for new users; content-based picks among new items."""

    def __init__(
        self,
        context_popularity: ContextPopularity,
        popularity: DecayedPopularity,
        catalogue: Catalogue,
    ) -> None:
        self.model = context_popularity
        self.popularity = popularity
        self.catalogue = catalogue

    def keys_for(self, context: Context | None, profile_keys: Sequence[str]) -> list[str]:
        """The context and profile keys that describe this request."""
        keys = list(profile_keys)
        if context is not None:
            country = self.model.country_key(context.country)
            if country is not None:
                keys = [k for k in keys if not k.startswith("country=")] + [country]
            device = self.model.device_key(context.device)
            if device is not None:
                keys.append(device)
            keys.append(f"daypart={DAYPARTS[int(daypart(context.hour))]}")
        return keys

    def _rows(self, keys: Sequence[str]) -> list[tuple[str, int]]:
        rows = [(k, self.model.row(k)) for k in keys]
        # a key that nearly every event carries (all traffic is mobile) tells nothing
        return [(k, r) for k, r in rows if r >= 0 and 0 < self.model.share(r) < UNINFORMATIVE]

    def _parts(
        self, candidates: np.ndarray, rows: list[tuple[str, int]]
    ) -> tuple[np.ndarray, list[str]]:
        """Each key's weighted, [0, 1]-scaled contribution to each candidate's score."""
        names = [k for k, _ in rows] + ["trending", "popular"]
        parts = np.zeros((candidates.shape[0], len(names)))
        for j, (key, row) in enumerate(rows):
            top = self.model.row_max(row)
            counts = self.model.counts(row)
            known = candidates < counts.shape[0]
            weight = KEY_WEIGHTS.get(key.partition("=")[0], 0.5)
            parts[known, j] = weight * counts[candidates[known]] / top
        pop = self.popularity.raw_scores()
        total = pop.sum() if pop.size else 0.0
        if total > 0 and candidates.size:
            known = candidates < pop.shape[0]
            share = np.zeros(candidates.shape[0])
            share[known] = pop[candidates[known]] / total
            if share.max() > 0:
                parts[:, -1] = KEY_WEIGHTS["popular"] * share / share.max()
            # trending: a clearly larger share of the last hours' events than of the longer run
            rise = np.maximum(self.model.trend_shares(candidates) - TRENDING_LIFT * share, 0.0)
            if rise.max() > 0:
                parts[:, -2] = KEY_WEIGHTS["trending"] * rise / rise.max()
        return parts, names

    def rank(self, keys: Sequence[str], n: int, exclude: np.ndarray, allowed=None) -> ColdRanked:
        """Up to ``n`` items for a user described by ``keys`` (``exclude`` left out;
        ``allowed(items) -> bool mask`` applied before the cut)."""
        rows = self._rows(keys)
        fetch = max(4 * n, 100)
        pools = [self.model.top(r, fetch) for _, r in rows]
        pools.append(self.model.top(-1, fetch))
        pools.append(self.popularity.top(fetch))
        candidates = sorted_unique(np.concatenate(pools)).astype(np.int32)
        if exclude.size and candidates.size:
            candidates = candidates[~member_of(candidates, exclude)]
        if allowed is not None and candidates.size:
            candidates = candidates[allowed(candidates)]
        if candidates.size == 0:
            return ColdRanked(candidates, np.zeros(0), [])
        parts, names = self._parts(candidates, rows)
        scores = parts.sum(axis=1)
        m = min(n, candidates.shape[0])
        top = np.lexsort((candidates, -scores))[:m]
        leader = parts[top].argmax(axis=1)
        return ColdRanked(
            candidates[top], scores[top], [_reason(names[j]) for j in leader.tolist()]
        )

    def label(self, items: np.ndarray, keys: Sequence[str]) -> list[dict[str, str]]:
        """The most specific popularity reason for each of ``items`` (what made it popular
        for this request: the country, the device, the time of day, trending, or just
        popular)."""
        parts, names = self._parts(items, self._rows(keys))
        weights = np.asarray([KEY_WEIGHTS.get(n.partition("=")[0], 0.5) for n in names[:-1]])
        strong = parts[:, :-1] >= STRONG * weights  # in the upper part of that key's list
        parts[:, :-1] = np.where(strong, parts[:, :-1], 0.0)
        parts[:, -1] = np.where(strong.any(axis=1), 0.0, parts[:, -1])
        return [_reason(names[j]) for j in parts.argmax(axis=1).tolist()]

    def new_items(
        self,
        categories: np.ndarray,
        brands: np.ndarray,
        sources: np.ndarray,
        n: int,
        accept=None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Catalogue indices of up to ``n`` fresh items in ``categories`` (the user's recent
        items' categories, most recent first), same brand first then newest, and the index in
        ``sources`` of the recent item each one follows."""
        fresh = self.catalogue.fresh()
        if fresh.size == 0 or categories.size == 0 or n <= 0:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
        if accept is not None:
            fresh = fresh[accept(fresh)]
        cat = self.catalogue.c_category[fresh]
        match = member_of(cat, categories[categories >= 0])
        fresh, cat = fresh[match], cat[match]
        if fresh.size == 0:
            return fresh, np.zeros(0, dtype=np.int32)
        # which recent item each fresh item follows: the most recent one of its category
        # (argmax finds the first, i.e. most recent, match among <= recent_items categories)
        source = np.argmax(cat[:, None] == categories[None, :], axis=1).astype(np.int32)
        same_brand = self.catalogue.c_brand[fresh] == brands[source]
        same_brand &= brands[source] >= 0
        order = np.lexsort((-fresh, source, ~same_brand))[:n]
        return fresh[order], source[order]
