"""Time-decayed item popularity: each event adds its type weight, halving every ``half_life``
(seconds of event time; or, with ``half_life_events``, every so many events learned).

>>> from freshrec.testing import make_batch
>>> pop = DecayedPopularity(half_life_seconds=3600.0)
>>> pop.learn(make_batch(items=[0, 1, 1, 2], ts=[0.0, 0.0, 0.0, 3600.0]))
>>> pop.top(3).tolist()  # item 1 twice at t=0 (weight 1 each), item 2 once an hour later (2)
[1, 2, 0]
"""

from __future__ import annotations

import numba
import numpy as np

from freshrec.models.base import Model, best_first
from freshrec.models.decay import EventCount, ForwardDecay
from freshrec.state import Batch, UserView
from freshrec.state.arrays import Marks, grow

_TOP_CACHE = 1000


@numba.njit(cache=True, nogil=True)
def _better(scores, a, b):  # pragma: no cover - compiled
    """Whether item ``a`` ranks before item ``b``: higher score, ties to the lower index."""
    return scores[a] > scores[b] or (scores[a] == scores[b] and a < b)


@numba.njit(cache=True, nogil=True)
def _merge_top(top, touched, scores, m, mark, stamp):  # pragma: no cover - compiled
    """The best ``m`` of ``top`` (ordered best first) and ``touched`` (items whose scores rose
    since ``top`` was ordered; any order, repeats allowed), best first.

    An item of ``top`` not touched kept its score, so ``top`` without the touched ones is still
    in order; a touched item scoring below every item of a full ``top`` cannot enter it. So only
    the few touched items that can are sorted, then merged in: no sort of the whole pool.
    ``mark[i] == stamp`` says ``i`` was touched (the scratch array is never cleared)."""
    floor = -np.inf
    if top.shape[0] >= m:
        floor = np.inf
        for i in top:
            floor = min(floor, scores[i])
    fresh = np.empty(touched.shape[0], dtype=top.dtype)
    u = 0
    for t in touched:
        if mark[t] != stamp:
            mark[t] = stamp
            if scores[t] >= floor:
                fresh[u] = t
                u += 1
    fresh = np.sort(fresh[:u])
    fresh = fresh[np.argsort(-scores[fresh], kind="mergesort")]  # stable: ties to the lower index
    out = np.empty(min(m, top.shape[0] + u), dtype=top.dtype)
    a = b = o = 0
    while o < out.shape[0]:
        while a < top.shape[0] and mark[top[a]] == stamp:  # moved: comes in through ``fresh``
            a += 1
        if a < top.shape[0] and (b >= u or _better(scores, top[a], fresh[b])):
            out[o] = top[a]
            a += 1
        elif b < u:
            out[o] = fresh[b]
            b += 1
        else:
            break
        o += 1
    return out[:o]


class DecayedPopularity(Model):
    """Scores every item by its decayed, type-weighted event count."""

    name = "popularity"
    reason = "popular"

    def __init__(
        self, half_life_seconds: float = 3 * 86_400.0, half_life_events: float | None = None
    ) -> None:
        self.half_life_seconds = half_life_seconds
        self.half_life_events = half_life_events  # set: decay on event count, not event time
        self._count = None if half_life_events is None else EventCount()
        self._clock = ForwardDecay(
            half_life_seconds if half_life_events is None else half_life_events
        )
        self._scores = np.zeros(0, dtype=np.float64)
        self._n_items = 0
        self._top: np.ndarray | None = None
        self._touched: list[np.ndarray] = []  # items learned since the top list was ordered
        self._marks = Marks()  # scratch of the top list's merge
        self._highest: float | None = None  # ``highest()`` until the scores change

    def params(self) -> dict[str, float]:
        if self.half_life_events is not None:
            return {"half_life_events": self.half_life_events}
        return {"half_life_seconds": self.half_life_seconds}

    def learn(self, batch: Batch) -> None:
        if len(batch) == 0:
            return
        self._n_items = max(self._n_items, batch.n_items)
        self._scores = grow(self._scores, self._n_items)
        ts = batch.ts if self._count is None else self._count.times(len(batch))
        factor = self._clock.rebase(ts)
        if factor != 1.0:
            self._scores *= factor
        w = batch.weight * self._clock.weights(ts)
        np.add.at(self._scores, batch.items, w)  # in event order: sums independent of batching
        self._highest = None
        if self._top is not None:
            self._touched.append(batch.items[w > 0])

    def raw_scores(self) -> np.ndarray:
        """Stored popularity of every known item (same order as decayed values)."""
        return self._scores[: self._n_items]

    def score(self, user: UserView, candidates: np.ndarray) -> np.ndarray:
        top = self.highest()
        if top <= 0:
            return np.zeros(candidates.shape[0])
        return self.raw_scores().take(candidates) / top  # take: no fancy-index machinery

    def highest(self) -> float:
        """The highest stored popularity, from the cached top list (no pass over the
        catalogue per request), remembered until the scores change; 0 before anything was
        learned."""
        if self._highest is None:
            best = self.top(1)
            self._highest = float(self._scores[best[0]]) if best.size else 0.0
        return self._highest

    def top(self, n: int) -> np.ndarray:
        """Indices of the ``n`` most popular items, best first.

        The cached top list is updated from the items learned since (only they can have moved
        up: every other score kept its place), so a new micro-batch costs O(cache + batch),
        not a pass over the catalogue.
        """
        scores = self.raw_scores()
        if self._top is None or (self._top.shape[0] < n and self._top.shape[0] < self._n_items):
            m = min(max(n, _TOP_CACHE), scores.shape[0])
            positive = np.flatnonzero(scores > 0)  # exact at the cut: ties to the lower index
            self._top = positive[best_first(positive, scores[positive], m)]
            self._touched = []
        elif self._touched:
            touched = np.concatenate(self._touched).astype(self._top.dtype, copy=False)
            m = max(self._top.shape[0], _TOP_CACHE)
            stamp, (mark,) = self._marks.take(self._n_items)
            self._top = _merge_top(self._top, touched, scores, m, mark, stamp)
            self._touched = []
        return self._top[:n]

    def candidates(self, user: UserView, n: int) -> np.ndarray:
        return self.top(n)

    def decayed(self, at: float) -> np.ndarray:
        """Popularity of every item as decayed to event time ``at`` (with ``half_life_events``:
        to the ``at``-th event learned)."""
        return self._clock.decayed(self.raw_scores(), at)

    def state_dict(self) -> dict[str, np.ndarray]:
        arrays = {"scores": self.raw_scores(), "t_ref": self._clock.state()}
        if self._count is not None:
            arrays["events"] = np.asarray([self._count.seen], dtype=np.int64)
        return arrays

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self._scores = arrays["scores"].astype(np.float64, copy=True)
        self._n_items = self._scores.shape[0]
        self._clock.load(arrays["t_ref"])
        if self._count is not None:
            self._count.seen = int(arrays["events"][0]) if "events" in arrays else 0
        self._top = None
        self._touched = []
        self._highest = None

    # -- drift hooks (freshrec.drift.policy) -------------------------------------------------
    def forget(self, factor: float) -> None:
        """Scale every stored score by ``factor`` in (0, 1]: events from now on count
        ``1 / factor`` times more than everything before (an instant extra decay; the order,
        hence the cached top list, is unchanged)."""
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"factor must be in (0, 1], got {factor!r}")
        self._scores[: self._n_items] *= factor
        self._highest = None
