"""Shared plumbing of the baselines: id maps, each user's history, exclusion and top-K.

A baseline implements ``_learn(u, i, event)`` on dense indices and ``_scores(u)``, which returns
either dense scores over every known item (``items=None``) or sparse ``(items, scores)``;
``-inf`` (or absence, when sparse) means "not recommendable". Every event is an interaction:
baselines do not weight event types.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from freshrec.eval.adapters import top_indices
from freshrec.events import LoggedEvent
from freshrec.state import IdMap
from freshrec.state.arrays import member_of


class Baseline(abc.ABC):
    """A recommender on dense indices with per-user histories (distinct items, in order)."""

    name = "baseline"

    def __init__(self) -> None:
        self.users = IdMap()
        self.items = IdMap()
        self.history: list[list[int]] = []  # distinct items per user, first interaction order
        self.history_set: list[set[int]] = []
        self.sequence: list[list[int]] = []  # items per user in event order, repeats included

    @property
    def n_items(self) -> int:
        return len(self.items)

    def learn(self, event: LoggedEvent) -> None:
        u = self.users.add(event.user_id)
        if u == len(self.history):
            self.history.append([])
            self.history_set.append(set())
            self.sequence.append([])
        i = self.items.add(event.item_id)
        self._learn(u, i, event)
        if i not in self.history_set[u]:
            self.history_set[u].add(i)
            self.history[u].append(i)
        self.sequence[u].append(i)

    @abc.abstractmethod
    def _learn(self, u: int, i: int, event: LoggedEvent) -> None:
        """Update with user ``u`` interacting with item ``i`` (history not yet updated)."""

    @abc.abstractmethod
    def _scores(self, u: int | None) -> tuple[np.ndarray | None, np.ndarray]:
        """``(None, dense)`` or ``(items, scores)`` for user ``u`` (None: an unknown user)."""

    def recent_items(self, u: int, n: int) -> list[int]:
        """The user's last ``n`` distinct items, most recent first."""
        out: list[int] = []
        seen: set[int] = set()
        for i in reversed(self.sequence[u]):
            if i not in seen:
                seen.add(i)
                out.append(i)
                if len(out) == n:
                    break
        return out

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        items, scores = self._scores(self.users.get(user_id))
        excluded = self.items.lookup(list(exclude)) if exclude else None
        if items is None:
            if excluded is not None and excluded.size:
                scores = scores.copy()
                scores[excluded] = -np.inf
            top = top_indices(scores, k)
        else:
            if excluded is not None and excluded.size:
                keep = ~member_of(items, excluded)
                items, scores = items[keep], scores[keep]
            top = items[top_indices(scores, k)]
        keys = self.items.keys()
        return [keys[i] for i in top.tolist()]

    def score(self, user_id: str, items: Sequence[str]) -> np.ndarray:
        index = self.items.indices(list(items), add=False)
        cand, scores = self._scores(self.users.get(user_id))
        out = np.full(index.shape[0], -np.inf)
        known = index >= 0
        if cand is None:
            out[known] = scores[index[known]]
        elif cand.size:
            order = np.argsort(cand)
            pos = np.searchsorted(cand, index[known], sorter=order)
            pos = np.minimum(pos, cand.shape[0] - 1)
            found = cand[order[pos]] == index[known]
            sub = np.full(found.shape[0], -np.inf)
            sub[found] = scores[order[pos[found]]]
            out[known] = sub
        return out


__all__ = ["Baseline"]
