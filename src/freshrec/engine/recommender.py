"""Turn the ensemble's ranking into recommendations: exclusions, ids and reasons."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
import numpy as np

from freshrec.features import Context
from freshrec.models import CoVisitation
from freshrec.models.ensemble import Ensemble
from freshrec.state import OnlineState, UserView


class Recommendation(msgspec.Struct, frozen=True):
    """One recommended item: its id, blended score and why it is shown."""

    item_id: str
    score: float
    reason: dict[str, str]


class Recommender:
    """Ranks with the ensemble, leaves out purchased and excluded items, explains each item."""

    def __init__(
        self,
        state: OnlineState,
        ensemble: Ensemble,
        covisitation: CoVisitation,
        exclude_recent: int = 0,
    ) -> None:
        self.state = state
        self.ensemble = ensemble
        self.covisitation = covisitation
        self.exclude_recent = exclude_recent

    def excluded(self, user: UserView, exclude: Iterable[str] = ()) -> np.ndarray:
        """Item indices never to recommend to ``user``: purchased ones, the latest
        ``exclude_recent`` items (what they are looking at now) and ``exclude``."""
        bought = np.fromiter(user.purchased, dtype=np.int32, count=len(user.purchased))
        parts = [bought, user.recent_items[: self.exclude_recent]]
        extra = list(exclude)
        if extra:
            parts.append(self.state.items.lookup(extra))
        return np.concatenate(parts)

    def recommend(
        self, user_id: str, k: int, exclude: Iterable[str] = (), context: Context | None = None
    ) -> list[Recommendation]:
        user = self.state.view(user_id, context=context)
        ranked = self.ensemble.rank(user, k, self.excluded(user, exclude))
        if ranked.items.size == 0:
            return []
        keys = self.state.items.keys()
        leader = ranked.parts.argmax(axis=1)
        reasons: list[dict[str, str]] = [{}] * ranked.items.shape[0]
        for m, member in enumerate(self.ensemble.members):
            rows = np.flatnonzero(leader == m)
            if rows.size:
                for row, reason in zip(
                    rows.tolist(), member.explain(user, ranked.items[rows]), strict=True
                ):
                    reasons[row] = _named(reason, keys)
        return [
            Recommendation(keys[i], float(s), r)
            for i, s, r in zip(ranked.items.tolist(), ranked.scores.tolist(), reasons, strict=True)
        ]

    def top_k(self, user: UserView, k: int, exclude: np.ndarray) -> np.ndarray:
        """The ensemble's top-``k`` item indices (for live quality tests)."""
        return self.ensemble.rank(user, k, exclude).items

    def similar(self, item: int, k: int) -> list[Recommendation]:
        items, scores = self.covisitation.similar(item, k)
        keys = self.state.items.keys()
        source = keys[item]
        return [
            Recommendation(keys[i], float(s), {"type": "also_viewed", "item_id": source})
            for i, s in zip(items.tolist(), scores.tolist(), strict=True)
        ]


def _named(reason: dict[str, int | str], keys: list[str]) -> dict[str, str]:
    """A model's reason with item indices replaced by item ids (``item`` -> ``item_id``)."""
    out = {k: str(v) for k, v in reason.items() if k != "item"}
    if "item" in reason:
        out["item_id"] = keys[int(reason["item"])]
    return out
