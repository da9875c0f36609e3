"""Blend co-visitation from the user's recent items with decayed popularity, and explain it."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
import numpy as np

from freshrec.events import EventType
from freshrec.models import CoVisitation, DecayedPopularity
from freshrec.models.covisitation import recency_weights
from freshrec.state import OnlineState

_REASON_BY_TYPE = {
    EventType.view: "because_you_viewed",
    EventType.click: "because_you_viewed",
    EventType.favorite: "because_you_liked",
    EventType.add_to_cart: "because_you_added_to_cart",
    EventType.purchase: "because_you_bought",
    EventType.rating: "because_you_rated",
}


class Recommendation(msgspec.Struct, frozen=True):
    """One recommended item: its id, blended score and why it is shown."""

    item_id: str
    score: float
    reason: dict[str, str]


class Recommender:
    """Candidates from co-visitation and popularity, exclusions, top-K, reasons."""

    def __init__(
        self,
        state: OnlineState,
        popularity: DecayedPopularity,
        covisitation: CoVisitation,
        popularity_blend: float,
    ) -> None:
        self.state = state
        self.popularity = popularity
        self.covisitation = covisitation
        self.popularity_blend = popularity_blend

    def recommend(self, user_id: str, k: int, exclude: Iterable[str] = ()) -> list[Recommendation]:
        state = self.state
        user = state.view(user_id)
        excluded = np.fromiter(user.purchased, dtype=np.int32, count=len(user.purchased))
        if exclude:
            excluded = np.concatenate([excluded, state.items.lookup(list(exclude))])
        cov_items, cov_scores, top_source = self.covisitation.aggregate(
            user.recent_items, recency_weights(user)
        )
        if cov_scores.size:
            cov_scores = cov_scores / cov_scores.max()
        pop_items = self.popularity.top(k + excluded.shape[0] + 8)
        candidates = np.union1d(cov_items, pop_items).astype(np.int32)
        if excluded.size:
            candidates = candidates[~np.isin(candidates, excluded)]
        if candidates.size == 0:
            return []
        pop_score = self.popularity.score(user, candidates)
        # a user without co-visitation candidates is ranked by popularity alone
        pop_part = pop_score if cov_items.size == 0 else self.popularity_blend * pop_score
        cov_part = np.zeros(candidates.shape[0])
        where = np.searchsorted(cov_items, candidates)
        found = where < cov_items.shape[0]
        found[found] = cov_items[where[found]] == candidates[found]
        cov_part[found] = cov_scores[where[found]]
        scores = cov_part + pop_part
        ok = np.isfinite(scores)
        candidates, scores, cov_part, pop_part = (
            candidates[ok],
            scores[ok],
            cov_part[ok],
            pop_part[ok],
        )
        found = found[ok]
        where = where[ok]
        n = min(k, candidates.shape[0])
        top = np.argpartition(-scores, n - 1)[:n] if n < candidates.shape[0] else np.arange(n)
        top = top[np.lexsort((candidates[top], -scores[top]))]
        keys = state.items.keys()
        out = []
        for t in top.tolist():
            if found[t] and cov_part[t] >= pop_part[t]:
                src = int(top_source[where[t]])
                kind = _REASON_BY_TYPE.get(
                    EventType(int(user.recent_types[src])), "because_you_viewed"
                )
                reason = {"type": kind, "item_id": keys[int(user.recent_items[src])]}
            else:
                reason = {"type": "popular"}
            out.append(Recommendation(keys[int(candidates[t])], float(scores[t]), reason))
        return out

    def similar(self, item: int, k: int) -> list[Recommendation]:
        items, scores = self.covisitation.similar(item, k)
        keys = self.state.items.keys()
        source = keys[item]
        return [
            Recommendation(keys[i], float(s), {"type": "also_viewed", "item_id": source})
            for i, s in zip(items.tolist(), scores.tolist(), strict=True)
        ]
