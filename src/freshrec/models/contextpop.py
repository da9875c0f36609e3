"""Popularity within a context, and what is trending now: the cold-start model.

Keeps a time-decayed, type-weighted event count per item for each *key* -- a context value the
event carried (``country=DE``, ``device=mobile``, ``daypart=evening``) or an attribute of the
user's profile (``age_band=25-34``, ``segment=vip``, see ``freshrec.state.profiles``) -- plus a
global count with a short half-life (``trending``). Serving blends the rows that match a new
user's request and profile (``freshrec.engine.coldstart``). It is not an ensemble member: the
processor teaches it alongside the models, and snapshots it like them.

Rows are allocated as keys appear, up to ``max_keys``; later keys are not counted. Learning is
one compiled pass over the batch's ``(row, item, weight)`` triples.

>>> from freshrec.testing import make_batch
>>> m = ContextPopularity(half_life_seconds=3600.0)
>>> b = make_batch(items=[0, 1, 1], ts=[0.0, 0.0, 0.0])
>>> b.country[:] = [country_id("DE"), country_id("DE"), country_id("FR")]
>>> m.learn(b)
>>> m.top(m.row("country=DE"), 2).tolist(), m.top(m.row("country=FR"), 2).tolist()
([0, 1], [1])
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

from freshrec.features.context import DEVICES, country_code, country_id
from freshrec.models.base import Model, best_first
from freshrec.models.decay import ForwardDecay
from freshrec.state import Batch, IdMap, UserView
from freshrec.state.arrays import capacity_for

DAYPARTS = ("night", "morning", "afternoon", "evening")  # local hours 0-5, 6-11, 12-17, 18-23
_N_COUNTRIES = 677

__all__ = ["DAYPARTS", "ContextPopularity", "country_id"]


@numba.njit(cache=True, nogil=True)
def _accumulate(counts, mass, rows, items, w):  # pragma: no cover - compiled
    """``counts[rows[p, k], items[k]] += w[k]`` (and the rows' mass) for every row >= 0, in
    event order (the same sums however the events were batched)."""
    for k in range(items.shape[0]):
        for p in range(rows.shape[0]):
            r = rows[p, k]
            if r >= 0:
                counts[r, items[k]] += np.float32(w[k])
                mass[r] += w[k]


def daypart(hour: int | np.ndarray) -> int | np.ndarray:
    """Daypart index of a local hour (0..23)."""
    return hour // 6


class ContextPopularity(Model):
    """Decayed popularity per context/profile key, and short-term (trending) popularity."""

    name = "context_popularity"
    reason = "popular"

    def __init__(
        self,
        half_life_seconds: float = 86_400.0,
        trending_half_life_seconds: float = 3_600.0,
        max_keys: int = 128,
        user_keys: Callable[[np.ndarray], np.ndarray] | None = None,
        vocabulary: IdMap | None = None,
    ) -> None:
        self.half_life_seconds = half_life_seconds
        self.trending_half_life_seconds = trending_half_life_seconds
        self.max_keys = max_keys
        self.user_keys = user_keys  # state user indices -> (n, A) vocabulary ids, -1 unset
        self.vocabulary = vocabulary
        self._clock = ForwardDecay(half_life_seconds)
        self._trend_clock = ForwardDecay(trending_half_life_seconds)
        self._counts = np.zeros((0, 0), dtype=np.float32)
        self._trend = np.zeros(0, dtype=np.float64)
        self._mass = np.zeros(max_keys, dtype=np.float64)  # decayed total weight of each row
        self._total = 0.0  # ... of every event
        self._trend_total = 0.0
        self._n_items = 0
        self._rows: dict[str, int] = {}
        self._keys: list[str] = []
        self._country_rows = np.full(_N_COUNTRIES, -2, dtype=np.int32)  # -2 not looked up yet
        self._device_rows = np.full(len(DEVICES), -2, dtype=np.int32)
        self._daypart_rows = np.full(len(DAYPARTS), -2, dtype=np.int32)
        self._vocab_rows = np.full(0, -2, dtype=np.int32)
        self._top: dict[int, tuple[np.ndarray, float]] = {}  # row -> (top items, row max)

    def params(self) -> dict[str, float]:
        return {
            "half_life_seconds": self.half_life_seconds,
            "trending_half_life_seconds": self.trending_half_life_seconds,
            "max_keys": self.max_keys,
        }

    # -- keys ----------------------------------------------------------------------------------
    def row(self, key: str) -> int:
        """Row of ``key`` (``"country=DE"``...), or -1 when it was never counted."""
        return self._rows.get(key, -1)

    def keys(self) -> list[str]:
        return self._keys

    def _row_for(self, key: str) -> int:
        row = self._rows.get(key)
        if row is None:
            if len(self._keys) >= self.max_keys:
                return -1
            row = self._rows[key] = len(self._keys)
            self._keys.append(key)
        return row

    def _lookup(self, table: np.ndarray, ids: np.ndarray, name: Callable[[int], str | None]):
        """Rows of ``ids`` through ``table``, filling the table for ids met the first time."""
        for i in np.unique(ids[table[ids] == -2]).tolist():
            key = name(i)
            table[i] = -1 if key is None else self._row_for(key)
        return table[ids]

    def country_key(self, cid: int) -> str | None:
        return None if cid <= 0 else f"country={country_code(cid)}"

    @staticmethod
    def device_key(did: int) -> str | None:
        return None if did <= 0 else f"device={DEVICES[did]}"

    @staticmethod
    def daypart_key(part: int) -> str:
        return f"daypart={DAYPARTS[part]}"

    def _vocab_key(self, v: int) -> str | None:
        return None if self.vocabulary is None else self.vocabulary.key(v)

    # -- learning ------------------------------------------------------------------------------
    def learn(self, batch: Batch) -> None:
        if len(batch) == 0:
            return
        self._grow_items(batch.n_items)
        factor = self._clock.rebase(batch.ts)
        if factor != 1.0:
            self._counts *= np.float32(factor)
            self._mass *= factor
            self._total *= factor
        trend_factor = self._trend_clock.rebase(batch.ts)
        if trend_factor != 1.0:
            self._trend *= trend_factor
            self._trend_total *= trend_factor
        w = batch.weight * self._clock.weights(batch.ts)
        pos = np.flatnonzero(w > 0)
        if pos.size == 0:
            return
        trend_w = (batch.weight * self._trend_clock.weights(batch.ts))[pos]
        np.add.at(self._trend, batch.items[pos], trend_w)
        self._trend_total += float(trend_w.sum())
        items, w = batch.items[pos], w[pos]
        self._total += float(w.sum())
        parts = [
            self._lookup(self._country_rows, batch.country[pos].astype(np.int64), self.country_key),
            self._lookup(self._device_rows, batch.device[pos].astype(np.int64), self.device_key),
            self._lookup(
                self._daypart_rows, daypart(batch.hour[pos].astype(np.int64)), self.daypart_key
            ),
        ]
        if self.user_keys is not None and self.vocabulary is not None:
            vocab = self.user_keys(batch.users[pos])
            if not (vocab >= 0).any():  # nobody in this batch has a profile
                vocab = vocab[:, :0]
            if len(self.vocabulary) > self._vocab_rows.shape[0]:
                grown = np.full(len(self.vocabulary), -2, dtype=np.int32)
                grown[: self._vocab_rows.shape[0]] = self._vocab_rows
                self._vocab_rows = grown
            for a in range(vocab.shape[1]):
                col = vocab[:, a].astype(np.int64)
                rows = np.full(col.shape[0], -1, dtype=np.int32)
                set_ = col >= 0
                rows[set_] = self._lookup(self._vocab_rows, col[set_], self._vocab_key)
                parts.append(rows)
        self._grow_rows(len(self._keys))
        _accumulate(self._counts, self._mass, np.stack(parts), items, w)
        self._top.clear()

    def _grow_items(self, n: int) -> None:
        if n > self._n_items:
            if n > self._counts.shape[1]:
                cap = capacity_for(n, self._counts.shape[1])
                counts = np.zeros((self._counts.shape[0], cap), dtype=np.float32)
                counts[:, : self._counts.shape[1]] = self._counts
                self._counts = counts
                trend = np.zeros(cap, dtype=np.float64)
                trend[: self._trend.shape[0]] = self._trend
                self._trend = trend
            self._n_items = n

    def _grow_rows(self, n: int) -> None:
        if n > self._counts.shape[0]:
            cap = min(capacity_for(n, self._counts.shape[0]), max(self.max_keys, n))
            counts = np.zeros((cap, self._counts.shape[1]), dtype=np.float32)
            counts[: self._counts.shape[0]] = self._counts
            self._counts = counts

    # -- serving -------------------------------------------------------------------------------
    def share(self, row: int) -> float:
        """Share of all (decayed) event weight that ``row`` holds (-1 = trending: 1.0)."""
        if row == -1:
            return 1.0
        return float(self._mass[row] / self._total) if self._total > 0 else 0.0

    def trend_shares(self, candidates: np.ndarray) -> np.ndarray:
        """Each candidate's share of the short-term (trending) event weight."""
        out = np.zeros(candidates.shape[0])
        if self._trend_total > 0:
            known = candidates < self._n_items
            out[known] = self._trend[candidates[known]] / self._trend_total
        return out

    def counts(self, row: int) -> np.ndarray:
        """Stored counts of every item for ``row`` (-1: the trending row)."""
        if row == -1:
            return self._trend[: self._n_items]
        return self._counts[row, : self._n_items]

    def top(self, row: int, n: int) -> np.ndarray:
        """The ``n`` items with the highest count in ``row`` (-1 = trending), best first."""
        return self._top_and_max(row, n)[0][:n]

    def row_max(self, row: int) -> float:
        return self._top_and_max(row, 1)[1]

    def _top_and_max(self, row: int, n: int) -> tuple[np.ndarray, float]:
        cached = self._top.get(row)
        if cached is not None and cached[0].shape[0] >= min(n, self._n_items):
            return cached
        counts = self.counts(row)
        if counts.size == 0:
            return np.zeros(0, dtype=np.int32), 0.0
        m = min(max(n, 200), counts.shape[0])
        part = np.flatnonzero(counts > 0)  # exact at the cut: ties to the lower index
        order = part[best_first(part, counts[part], m)].astype(np.int32)
        found = (order, float(counts[order[0]]) if order.size else 0.0)
        self._top[row] = found
        return found

    def score(self, user: UserView, candidates: np.ndarray) -> np.ndarray:
        """Trending score (short-term popularity scaled to [0, 1]) of each candidate."""
        top = self.row_max(-1)
        if top <= 0:
            return np.zeros(candidates.shape[0])
        known = candidates < self._n_items
        out = np.zeros(candidates.shape[0])
        out[known] = self._trend[candidates[known]] / top
        return out

    # -- snapshots -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        return {
            "counts": self._counts[: len(self._keys), : self._n_items],
            "trend": self._trend[: self._n_items],
            # the key names as UTF-8 bytes, one per line (snapshots hold numeric arrays only)
            "keys": np.frombuffer("\n".join(self._keys).encode(), dtype=np.uint8),
            "mass": self._mass[: len(self._keys)],
            "totals": np.asarray([self._total, self._trend_total]),
            "t_ref": self._clock.state(),
            "trend_t_ref": self._trend_clock.state(),
        }

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        text = arrays["keys"].astype(np.uint8).tobytes().decode()
        self._keys = text.split("\n") if text else []
        self._rows = {k: r for r, k in enumerate(self._keys)}
        trend = arrays["trend"]
        self._n_items = trend.shape[0]
        self._trend = trend.astype(np.float64, copy=True)
        counts = arrays["counts"]
        self._counts = np.zeros((len(self._keys), self._n_items), dtype=np.float32)
        self._counts[: counts.shape[0], : counts.shape[1]] = counts
        self._mass = np.zeros(max(self.max_keys, len(self._keys)), dtype=np.float64)
        self._mass[: len(self._keys)] = arrays["mass"]
        self._total, self._trend_total = (float(x) for x in arrays["totals"])
        self._clock.load(arrays["t_ref"])
        self._trend_clock.load(arrays["trend_t_ref"])
        for table in (self._country_rows, self._device_rows, self._daypart_rows):
            table[:] = -2
        self._vocab_rows = np.full(0, -2, dtype=np.int32)
        self._top.clear()
