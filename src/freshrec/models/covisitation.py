"""Session-aware item-to-item co-visitation with bounded memory.

When a shopper interacts with item ``j``, every item ``r`` they touched earlier in the same
session (up to ``window`` back) gains weight towards ``j`` (forward: "viewed r, then j") and,
scaled by ``backward_weight``, ``j`` towards ``r``. The weight is the event's type weight
(purchase > add_to_cart > click > view), divided by ``distance ** distance_exponent`` (the
distance in the session, 1 = just before), and decayed on event time with ``half_life_seconds``
(or, with ``half_life_events``, on the number of events learned).

Each item keeps its ``neighbours`` strongest partners in a fixed row, an open-addressing table:
a partner lives in one of ``probes`` slots after its hash, and an unseen partner that finds them
all taken replaces the weakest of them and inherits its weight (the Space-Saving rule, over the
probe window), so frequent pairs are kept while memory stays ``items x neighbours`` and a
learning step costs at most ``probes`` comparisons however wide the rows are.

A user's candidates are the partners of their recent items: the recent item at position ``p``
(0 = the latest) weighs ``(1 + p) ** -source_exponent`` (doubled inside the current session),
and a partner's weight in a row is divided by the row's total to the power ``row_exponent``
(1 would make every row sum to 1, so an item met once would speak as loudly as one met a
thousand times; below 1 the busier rows count for more).

>>> from freshrec.testing import make_batch
>>> cv = CoVisitation(neighbours=4)
>>> cv.learn(make_batch(items=[0, 1, 2], prev_items=[[], [0], [1, 0]]))
>>> items, scores = cv.similar(0, 2)
>>> items.tolist(), [round(s, 3) for s in scores.tolist()]
([1, 2], [0.586, 0.414])
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from freshrec.events import EventType
from freshrec.models.base import Model, ModelError, best_first, dense
from freshrec.models.decay import EventCount, ForwardDecay
from freshrec.registry.mapped import rows_into
from freshrec.state import Batch, UserView
from freshrec.state.arrays import Marks, grow


@numba.njit(cache=True, nogil=True)
def _add(nbr, nbw, row, col, w, probes):  # pragma: no cover - compiled
    width = nbr.shape[1]
    start = ((col * 2654435761) & 0xFFFFFFFF) % width
    weakest = start
    for p in range(probes):
        s = start + p
        if s >= width:
            s -= width
        c = nbr[row, s]
        if c == col:
            nbw[row, s] += w
            return
        if c < 0:
            nbr[row, s] = col
            nbw[row, s] = w
            return
        if nbw[row, s] < nbw[row, weakest]:
            weakest = s
    nbr[row, weakest] = col
    nbw[row, weakest] += w


@numba.njit(cache=True, nogil=True)
def _learn(items, weight, prev_items, backward, nbr, nbw, probes, dexp):  # pragma: no cover
    dist_w = np.empty(prev_items.shape[1])
    for m in range(dist_w.shape[0]):
        dist_w[m] = (m + 1.0) ** -dexp
    for k in range(items.shape[0]):
        w = weight[k]
        if w <= 0.0:
            continue
        j = items[k]
        for m in range(prev_items.shape[1]):
            r = prev_items[k, m]
            if r < 0:
                break
            if r == j:
                continue
            pw = w * dist_w[m]
            _add(nbr, nbw, r, j, pw, probes)
            if backward > 0.0:
                _add(nbr, nbw, j, r, pw * backward, probes)


@numba.njit(cache=True, nogil=True)
def _row_scale(nbw, r, weight, exponent):  # pragma: no cover - compiled
    """What a partner's weight in row ``r`` is multiplied by when the row is a source of
    ``weight``: ``weight / total ** exponent`` (0 for an empty row)."""
    total = np.float32(0.0)
    for c in range(nbw.shape[1]):
        total += nbw[r, c]
    if total <= 0:
        return 0.0
    t = np.float64(total)
    return weight / (t if exponent == 1.0 else t**exponent)


@numba.njit(cache=True, nogil=True)
def _accumulate(
    nbr, nbw, rows, sources, weights, rexp, mark, slot, stamp, items, acc, best
):  # pragma: no cover
    """Over the ``sources`` below ``rows`` (the others are unknown items, passed over), sum
    ``weights[s]`` times each partner's weight over source ``s``'s row total to the
    power ``rexp`` (1: its share of the row) into ``acc``; each
    partner met is listed once in ``items`` (in order of first sight, its sum in
    ``acc[slot[j]]``, the source that gave it the most in ``best[slot[j]]``, the earlier on a
    tie: what ``_top_sources`` finds). ``mark[j] == stamp`` says ``j`` was met in this call:
    the scratch arrays are never cleared. Returns the number of partners."""
    width = nbr.shape[1]
    most = np.empty(items.shape[0])
    u = 0
    for s in range(sources.shape[0]):
        r = sources[s]
        if r < 0 or r >= rows:
            continue
        scale = _row_scale(nbw, r, weights[s], rexp)
        for c in range(width):
            j = nbr[r, c]
            if j < 0:
                continue
            w = nbw[r, c] * scale
            if mark[j] != stamp:
                mark[j] = stamp
                slot[j] = u
                items[u] = j
                acc[u] = w
                best[u] = s
                most[u] = w
                u += 1
                continue
            at = slot[j]
            acc[at] += w
            if w > most[at]:
                best[at] = s
                most[at] = w
    return u


@numba.njit(cache=True, nogil=True)
def _lookup(candidates, mark, slot, stamp, acc, out):  # pragma: no cover - compiled
    """``out[c]`` = the sum ``_accumulate`` left for candidate ``c`` (met in the pass of
    ``stamp``), else 0."""
    for c in range(candidates.shape[0]):
        j = candidates[c]
        if 0 <= j < mark.shape[0] and mark[j] == stamp:
            out[c] = acc[slot[j]]
        else:
            out[c] = 0.0


@numba.njit(cache=True, nogil=True)
def _lookup_source(items, mark, slot, stamp, best, out):  # pragma: no cover - compiled
    """``out[i]`` = the source ``_accumulate`` found giving item ``items[i]`` the most in the
    pass of ``stamp``, else -1."""
    for i in range(items.shape[0]):
        j = items[i]
        if 0 <= j < mark.shape[0] and mark[j] == stamp:
            out[i] = best[slot[j]]
        else:
            out[i] = -1


@numba.njit(cache=True, nogil=True)
def _top_sources(
    nbr, nbw, n_items, sources, weights, rexp, items, mark, slot, stamp
):  # pragma: no cover - compiled
    """For each of ``items``, the index of the source contributing most to it (-1: none).
    ``items`` are marked in ``mark`` with ``stamp`` (their index in ``slot``), so each partner
    of a source is looked up at once."""
    best = np.full(items.shape[0], -1, dtype=np.int64)
    best_w = np.zeros(items.shape[0], dtype=np.float64)
    for i in range(items.shape[0]):
        j = items[i]
        if 0 <= j < mark.shape[0]:
            mark[j] = stamp
            slot[j] = i
    width = nbr.shape[1]
    for s in range(sources.shape[0]):
        r = sources[s]
        if r < 0 or r >= n_items:
            continue
        scale = _row_scale(nbw, r, weights[s], rexp)
        for c in range(width):
            j = nbr[r, c]
            if j < 0 or mark[j] != stamp:
                continue
            pos = slot[j]
            w = nbw[r, c] * scale
            if best[pos] < 0 or w > best_w[pos]:
                best[pos] = s
                best_w[pos] = w
    return best


@dataclass(slots=True)
class Reached:
    """What a user's recent items reach: the partners in order of first sight and their
    scores, and the scratch marks of the pass that found them (``mark[j] == stamp``: ``j`` is
    a partner, at ``slot[j]``) -- a partner's score is then one lookup, with no sort of the
    partners. Should another pass have reused this thread's scratch since (another view
    ranked in between), the lookups fall back to a binary search of the sorted partners."""

    items: np.ndarray
    scores: np.ndarray
    marks: Marks
    mark: np.ndarray
    slot: np.ndarray
    stamp: int
    best: np.ndarray | None = None  # per partner, the position of the source giving it most

    def fresh(self) -> bool:
        """Whether the marks are still this pass's (no other pass took the scratch since)."""
        return self.marks.stamp == self.stamp and self.marks.arrays[0] is self.mark

    def sources_of(self, items: np.ndarray) -> np.ndarray | None:
        """For each of ``items``, the position of the source that gave it the most (-1: none
        did), looked up from the pass; None if the marks are stale or the pass kept none."""
        if self.best is None or not self.fresh():
            return None
        out = np.empty(items.shape[0], dtype=np.int64)
        _lookup_source(items, self.mark, self.slot, self.stamp, self.best, out)
        return out

    def ordered(self) -> tuple[np.ndarray, np.ndarray]:
        """The partners sorted, and their scores."""
        order = np.argsort(self.items)
        return self.items[order], self.scores[order]

    def score(self, candidates: np.ndarray) -> np.ndarray:
        """Each candidate's score (0 if none of the sources reaches it)."""
        out = np.zeros(candidates.shape[0])
        if self.items.shape[0] == 0 or candidates.shape[0] == 0:
            return out
        if self.fresh():
            _lookup(candidates, self.mark, self.slot, self.stamp, self.scores, out)
            return out
        items, scores = self.ordered()
        pos = np.minimum(np.searchsorted(items, candidates), items.shape[0] - 1)
        match = items[pos] == candidates
        out[match] = scores[pos[match]]
        return out


class CoVisitation(Model):
    """Item-to-item scores from what shoppers interact with next in their sessions."""

    name = "covisitation"
    reads_in_place = True

    def __init__(
        self,
        neighbours: int = 256,
        backward_weight: float = 0.5,
        half_life_seconds: float = 60 * 86_400.0,
        probes: int = 16,
        distance_exponent: float = 0.5,
        row_exponent: float = 0.75,
        source_exponent: float = 1.0,
        half_life_events: float | None = None,
    ) -> None:
        if neighbours < 1 or probes < 1 or distance_exponent < 0:
            raise ValueError("neighbours and probes must be >= 1, distance_exponent >= 0")
        if not 0 <= row_exponent <= 1 or source_exponent < 0:
            raise ValueError("row_exponent must be in [0, 1] and source_exponent >= 0")
        self.neighbours = neighbours
        self.probes = min(probes, neighbours)
        self.distance_exponent = distance_exponent
        self.row_exponent = float(row_exponent)
        self.source_exponent = float(source_exponent)
        self.backward_weight = backward_weight
        self.half_life_seconds = half_life_seconds
        self.half_life_events = half_life_events  # set: decay on event count, not event time
        self._count = None if half_life_events is None else EventCount()
        self._clock = ForwardDecay(
            half_life_seconds if half_life_events is None else half_life_events
        )
        self._nbr = np.full((0, neighbours), -1, dtype=np.int32)
        self._nbw = np.zeros((0, neighbours), dtype=np.float32)
        self._n_items = 0
        self._frozen = False  # tables read in place (``load_frozen``): never learns
        self._local = threading.local()  # per-thread scratch of ``aggregate``
        # drift hook: a user's items touched before ``_stale_before`` (event time) count
        # ``_stale_weight`` times as sources (``discount_history``)
        self._stale_before = -np.inf
        self._stale_weight = 1.0

    def params(self) -> dict[str, float]:
        decay = (
            {"half_life_seconds": self.half_life_seconds}
            if self.half_life_events is None
            else {"half_life_events": self.half_life_events}
        )
        return {
            "neighbours": self.neighbours,
            "backward_weight": self.backward_weight,
            **decay,
            "probes": self.probes,
            "distance_exponent": self.distance_exponent,
            "row_exponent": self.row_exponent,
            "source_exponent": self.source_exponent,
        }

    def learn(self, batch: Batch) -> None:
        if len(batch) == 0:
            return
        self._n_items = max(self._n_items, batch.n_items)
        self._nbr = grow(self._nbr, self._n_items, fill=-1)
        self._nbw = grow(self._nbw, self._n_items)
        ts = batch.ts if self._count is None else self._count.times(len(batch))
        factor = self._clock.rebase(ts)
        if factor != 1.0:
            self._nbw *= factor
        w = batch.weight * self._clock.weights(ts)
        _learn(
            batch.items,
            w,
            batch.prev_items,
            self.backward_weight,
            self._nbr,
            self._nbw,
            self.probes,
            self.distance_exponent,
        )

    def neighbours_of(
        self, items: np.ndarray, exponent: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Partners of each item (-1 padded) and their weights over the row's total to the power
        ``exponent`` (1: normalised per row, summing to 1)."""
        nbr, nbw, at = self._table(np.asarray(items))
        nbr, nbw = nbr[at], nbw[at]
        total = nbw.sum(axis=1, keepdims=True)
        if exponent != 1.0:
            total = total**exponent
        # weights are >= 0: a row summing to 0 is all zeros, and stays so
        return nbr, nbw / np.maximum(total, np.finfo(np.float32).tiny)

    def aggregate(
        self, sources: np.ndarray, source_weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidates reached from ``sources`` (item indices), sorted, and their scores: the
        sum over sources of the source's weight times the partner's weight over the row's total
        to the power ``row_exponent`` (1: the partner's share of the row)."""
        return self.reach(sources, source_weights).ordered()

    def reach(self, sources: np.ndarray, source_weights: np.ndarray) -> Reached:
        """``aggregate``'s partners and scores, unsorted, with their lookup marks."""
        marks = self._marks()
        n = self._n_items
        if sources.shape[0] == 0 or n == 0:
            empty = np.zeros(0, dtype=np.int32)
            return Reached(empty, np.zeros(0), marks, empty, empty, -1)
        stamp, (mark, slot) = marks.take(n)
        room = sources.shape[0] * self.neighbours
        items, acc = np.empty(room, dtype=np.int32), np.empty(room)
        best = np.empty(room, dtype=np.int64)
        weights = np.asarray(source_weights, dtype=np.float64)
        known = None
        if self._frozen:  # the known sources' rows alone, read from the snapshot
            known = ((sources >= 0) & (sources < n)).nonzero()[0]
            nbr, nbw, rows = self._table(sources[known].astype(np.int64))
            sources, weights, n = rows, weights[known], rows.shape[0]
        else:
            nbr, nbw = self._nbr, self._nbw
        found = _accumulate(
            nbr, nbw, n, sources, weights, self.row_exponent, mark, slot, stamp, items, acc, best
        )
        best = best[:found] if known is None else known[best[:found]]  # positions in ``sources``
        return Reached(items[:found], acc[:found], marks, mark, slot, stamp, best)

    def _table(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Neighbour tables holding ``rows`` (item indices, all known), and where each row is
        in them: the tables themselves, or for a frozen copy (``load_frozen``) those rows
        alone, read from the snapshot where it lies."""
        if self._frozen:
            return _rows_of(self._nbr, rows), _rows_of(self._nbw, rows), np.arange(rows.shape[0])
        return self._nbr, self._nbw, rows

    def _marks(self) -> Marks:
        """This thread's scratch ``mark`` and ``slot`` arrays (``Marks``)."""
        marks = getattr(self._local, "marks", None)
        if marks is None:
            marks = self._local.marks = Marks(arrays=2)
        return marks

    def top_sources(
        self, sources: np.ndarray, source_weights: np.ndarray, items: np.ndarray
    ) -> np.ndarray:
        """For each of ``items``, the position in ``sources`` of the source that gives it the
        most (-1 if none does; ties: the earlier source): what "because you viewed X" names.
        Only for the few items shown, so ranking never pays for it."""
        if items.size == 0 or sources.size == 0:
            return np.full(items.shape[0], -1, dtype=np.int64)
        weights = np.asarray(source_weights, dtype=np.float64)
        stamp, (mark, slot) = self._marks().take(self._n_items)
        if self._frozen:  # the known sources' rows alone, read from the snapshot
            sources = sources.astype(np.int64)
            known = (sources >= 0) & (sources < self._n_items)
            nbr, nbw, rows = self._table(np.where(known, sources, 0))
            sources = np.where(known, rows, -1)
        else:
            nbr, nbw = self._nbr, self._nbw
        return _top_sources(
            nbr, nbw, self._n_items, sources, weights, self.row_exponent, items, mark, slot, stamp
        )

    def _for_user(self, user: UserView) -> Reached:
        found = user.memo.get(self.name)
        if found is None:
            found = user.memo[self.name] = self.reach(user.recent_items, self._sources(user))
        return found  # type: ignore[return-value]

    def _sources(self, user: UserView) -> np.ndarray:
        """Weight of each recent item as a source: ``recency_weights``, times the stale weight
        for items last touched before a drift (``discount_history``); once per request (the
        candidates and the explanations both ask)."""
        key = self.name + "/sources"
        w = user.memo.get(key)
        if w is None:
            w = recency_weights(user, self.source_exponent)
            if self._stale_weight != 1.0 and user.recent_ts.shape[0] == w.shape[0]:
                w = np.where(user.recent_ts < self._stale_before, self._stale_weight * w, w)
            user.memo[key] = w
        return w  # type: ignore[return-value]

    def score(self, user: UserView, candidates: np.ndarray) -> np.ndarray:
        return self._for_user(user).score(np.asarray(candidates))

    def candidates(self, user: UserView, n: int) -> np.ndarray:
        """The ``n`` best-scored items, best first (ties: lower index)."""
        found = self._for_user(user)
        return found.items[best_first(found.items, found.scores, n)]

    def explain(self, user: UserView, items: np.ndarray) -> list[dict[str, int | str]]:
        """``because_you_<what you did>`` naming the recent item that contributed most (as the
        request's pass found it; ``top_sources`` if its scratch marks were reused since)."""
        source = self._for_user(user).sources_of(items)
        if source is None:
            source = self.top_sources(user.recent_items, self._sources(user), items)
        out: list[dict[str, int | str]] = []
        for s in source.tolist():
            if s < 0:
                out.append({"type": "popular"})
                continue
            kind = REASON_BY_TYPE.get(int(user.recent_types[s]), "because_you_viewed")
            out.append({"type": kind, "item": int(user.recent_items[s])})
        return out

    def similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        if item >= self._n_items:
            return np.zeros(0, dtype=np.int32), np.zeros(0)
        nbr, norm = self.neighbours_of(np.asarray([item]))
        nbr, norm = nbr[0], norm[0]
        valid = nbr >= 0
        nbr, norm = nbr[valid], norm[valid]
        order = np.lexsort((nbr, -norm))[:k]
        return nbr[order], norm[order]

    def state_dict(self) -> dict[str, np.ndarray]:
        n = self._n_items
        arrays = {"nbr": self._nbr[:n], "nbw": self._nbw[:n], "t_ref": self._clock.state()}
        if self._count is not None:
            arrays["events"] = np.asarray([self._count.seen], dtype=np.int64)
        if self._stale_weight != 1.0:  # only while a discount is on (its time is then finite)
            arrays["stale"] = np.asarray([self._stale_before, self._stale_weight])
        return arrays

    def load_state_dict(self, arrays: dict[str, Any]) -> None:
        """The tables copied in, into the ones held now when they have room (a version put
        back: never two copies at once), the rows after the version's emptied."""
        nbr, nbw = arrays["nbr"], arrays["nbw"]
        self._check_tables(nbr, nbw)
        if self._frozen:  # a frozen copy's tables are a snapshot's: never written
            self._nbr = np.full((0, self.neighbours), -1, dtype=np.int32)
            self._nbw = np.zeros((0, self.neighbours), dtype=np.float32)
        self._nbr = rows_into(self._nbr, nbr)
        self._nbr[nbr.shape[0] :] = -1
        self._nbw = rows_into(self._nbw, nbw)
        self._nbw[nbw.shape[0] :] = 0.0
        self._frozen = False
        self._load_rest(arrays)

    def load_frozen(self, arrays: dict[str, Any]) -> None:
        """The tables read where they are, a request's rows at a time (a gate's frozen copy,
        ``Model.load_frozen``): a table of every item's partners, of which a test reads the
        rows of one shopper's recent items."""
        nbr, nbw = arrays["nbr"], arrays["nbw"]
        self._check_tables(nbr, nbw)
        if nbr.dtype != np.int32 or nbw.dtype != np.float32:
            raise ModelError(f"{self.name}: neighbour tables of {nbr.dtype}, {nbw.dtype}")
        self._nbr, self._nbw = nbr, nbw
        self._frozen = True
        self._load_rest(arrays)

    def _check_tables(self, nbr: Any, nbw: Any) -> None:
        if nbr.shape != nbw.shape or len(nbr.shape) != 2:
            raise ModelError(f"{self.name}: neighbour tables of shapes {nbr.shape}, {nbw.shape}")

    def _load_rest(self, arrays: dict[str, Any]) -> None:
        self._n_items = arrays["nbr"].shape[0]
        arrays = {k: dense(v) for k, v in arrays.items() if k not in ("nbr", "nbw")}
        self._clock.load(arrays["t_ref"])
        if self._count is not None:
            self._count.seen = int(arrays["events"][0]) if "events" in arrays else 0
        stale = arrays.get("stale")  # absent: no discount on (or a snapshot from before it)
        self._stale_before, self._stale_weight = (
            (-np.inf, 1.0) if stale is None else (float(stale[0]), float(stale[1]))
        )

    # -- drift hooks (freshrec.drift.policy) -------------------------------------------------
    def forget(self, factor: float) -> None:
        """Scale every stored link weight by ``factor`` in (0, 1]: events from now on count
        ``1 / factor`` times more than everything before (an instant extra decay)."""
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"factor must be in (0, 1], got {factor!r}")
        self._nbw[: self._n_items] *= factor

    def discount_history(self, before: float, factor: float) -> None:
        """From now on, a user's recent items last touched before event time ``before`` count
        ``factor`` in [0, 1] times as sources (0: not at all): after a change of tastes the
        paths out of what shoppers looked at before it lead to the old tastes. It lasts until a
        later call; items touched again after ``before`` count fully."""
        if not 0.0 <= factor <= 1.0:
            raise ValueError(f"factor must be in [0, 1], got {factor!r}")
        self._stale_before, self._stale_weight = float(before), float(factor)


def _rows_of(table: Any, rows: np.ndarray) -> np.ndarray:
    """``table``'s rows ``rows``, dense and of their own (a ``SparseArray`` or an array)."""
    return table[rows] if isinstance(table, np.ndarray) else table.rows(rows)


REASON_BY_TYPE = {
    EventType.view: "because_you_viewed",
    EventType.click: "because_you_viewed",
    EventType.favorite: "because_you_liked",
    EventType.add_to_cart: "because_you_added_to_cart",
    EventType.purchase: "because_you_bought",
    EventType.rating: "because_you_rated",
}


def recency_weights(user: UserView, exponent: float = 1.0) -> np.ndarray:
    """Weight of each recent item as a source: ``(1 + position) ** -exponent``, doubled inside
    the session."""
    return _recency(user.in_session, float(exponent))


@numba.njit(cache=True, nogil=True)
def _recency(in_session, exponent):  # pragma: no cover - compiled
    out = np.empty(in_session.shape[0])
    for i in range(in_session.shape[0]):
        w = (1.0 + i) ** -exponent
        out[i] = 2.0 * w if in_session[i] else w
    return out
