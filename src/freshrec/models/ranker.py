"""A context-aware ranker: a factorisation machine over hashed features, learned online.

Each (user, item, context) is a set of categorical features, one per field of ``FIELDS``: the
user, the item, the item's category and price bucket, the local hour (in ``hour_buckets``
buckets) and weekday, the device, the country, the length of the current session (log2 buckets
of the events so far) and how long ago the user last touched the item's category (buckets: not
among their recent items, < 1 min, < 10 min, < 1 h, < 6 h, < 1 day, < 1 week, older). An unknown
value (no device, no category...) leaves its feature out. Every feature is hashed (splitmix64 of
field and value) to a row of fixed tables -- ``2**hash_bits`` rows of ``factors`` float32 plus a
linear weight -- so nothing grows with users or items, and the prediction is the FM of Rendle
(2010):

    logit = b + sum_j w_j + sum_{j<l} <v_j, v_l>,  p = sigmoid(logit)

Learning: for every event of weight ``w > 0``, one logistic-loss SGD step on the event (target 1)
and on ``negatives`` items drawn uniformly from the items seen in positive events (target 0),
each with the user's context and the sampled item's own category, price and category recency,
with step ``learning_rate * min(log2(1 + w), weight_cap)`` and L2 ``regularization`` on the rows
touched. Events are processed in log order inside one numba kernel whose random generator lives
in the model state, so what is learned does not depend on how events were batched.

``score(user, candidates)`` is ``p`` for each candidate, with the request's context from
``user.context`` (``freshrec.features.context.enrich``); 0 ("no opinion") for items the model has
never seen and before any learning. The ranker proposes no candidates: it re-ranks other models'.

>>> import numpy as np
>>> from freshrec.features.context import DEVICE_IDS, enrich
>>> from freshrec.testing import make_batch
>>> rng = np.random.default_rng(0)  # on mobile shoppers pick items 0-4, on desktop items 5-9
>>> mobile = rng.random(4000) < 0.5
>>> batch = make_batch(items=(np.where(mobile, 0, 5) + rng.integers(0, 5, 4000)).tolist(),
...                    users=rng.integers(0, 50, 4000).tolist())
>>> batch.device = np.where(mobile, DEVICE_IDS["mobile"], DEVICE_IDS["desktop"]).astype(np.int8)
>>> ranker = ContextRanker(seed=1)
>>> ranker.learn(batch)
>>> view = UserView(3, np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0, bool))
>>> view.context = enrich({"device": "mobile"}, ts=0.0)
>>> sorted(np.argsort(-ranker.score(view, np.arange(10)))[:5].tolist())  # the best five
[0, 1, 2, 3, 4]
>>> view.context = enrich({"device": "desktop"}, ts=0.0)
>>> sorted(np.argsort(-ranker.score(view, np.arange(10)))[:5].tolist())
[5, 6, 7, 8, 9]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from freshrec.features.context import local_time
from freshrec.models.base import Model, ModelError, dense
from freshrec.models.common import _FASTMATH, _below, _choice, _init_rows, _mix, _number
from freshrec.registry.mapped import as_held
from freshrec.state import Batch, UserView
from freshrec.state.arrays import grow

FIELDS: tuple[str, ...] = (
    "user",
    "item",
    "category",
    "price",
    "hour",
    "weekday",
    "device",
    "country",
    "session",
    "recency",
)
_USER, _ITEM, _CATEGORY, _PRICE, _HOUR, _WEEKDAY, _DEVICE, _COUNTRY, _SESSION, _RECENCY = range(10)
_N_FIELDS = len(FIELDS)
SESSION_BUCKETS = 8  # 0, 1, 2-3, 4-7, 8-15, 16-31, 32-63, 64+ earlier events in the session
RECENCY_EDGES = np.array([60.0, 600.0, 3600.0, 6 * 3600.0, 86_400.0, 7 * 86_400.0])
_FIELD_KEY = np.uint64(0xD6E8FEB86659FD93)
_ROW_SALT = 3


@numba.njit(cache=True, nogil=True)
def _row(field, value, mask):  # pragma: no cover - compiled
    """The table row of feature ``(field, value)``: splitmix64 of both, ``& mask``."""
    z = _mix(np.uint64(field + 1) * _FIELD_KEY + np.uint64(value))
    return np.int64(z & np.uint64(mask))


@numba.njit(cache=True, nogil=True)
def _session_bucket(events):  # pragma: no cover - compiled
    b = 0
    while events > 0 and b < SESSION_BUCKETS - 1:
        events >>= 1
        b += 1
    return b


@numba.njit(cache=True, nogil=True)
def _recency_bucket(category, recent_cat, recent_ts, now):  # pragma: no cover - compiled
    """0 if ``category`` is not among the user's recent categories, else 1 + age bucket."""
    for m in range(recent_cat.shape[0]):
        c = recent_cat[m]
        if c < 0:
            break
        if c == category:
            age = now - recent_ts[m]
            b = 1
            for edge in RECENCY_EDGES:
                if age < edge:
                    return b
                b += 1
            return b
    return 0


@numba.njit(cache=True, nogil=True)
def _context_rows(
    rows, on, mask, user, hour, weekday, device, country, session, hour_buckets
):  # pragma: no cover - compiled
    """Rows of the user-side features into ``rows[0:]``; returns how many."""
    n = 0
    if on[_USER] and user >= 0:
        rows[n] = _row(_USER, user, mask)
        n += 1
    if on[_HOUR] and hour >= 0:
        rows[n] = _row(_HOUR, hour * hour_buckets // 24, mask)
        n += 1
    if on[_WEEKDAY] and weekday >= 0:
        rows[n] = _row(_WEEKDAY, weekday, mask)
        n += 1
    if on[_DEVICE] and device > 0:
        rows[n] = _row(_DEVICE, device, mask)
        n += 1
    if on[_COUNTRY] and country > 0:
        rows[n] = _row(_COUNTRY, country, mask)
        n += 1
    if on[_SESSION] and session >= 0:
        rows[n] = _row(_SESSION, _session_bucket(session), mask)
        n += 1
    return n


@numba.njit(cache=True, nogil=True)
def _item_rows(
    rows, start, on, mask, item, item_cat, item_bucket, recent_cat, recent_ts, now
):  # pragma: no cover - compiled
    """Rows of the item-side features into ``rows[start:]``; returns the new end."""
    n = start
    if on[_ITEM]:
        rows[n] = _row(_ITEM, item, mask)
        n += 1
    cat = item_cat[item]
    if cat >= 0:
        if on[_CATEGORY]:
            rows[n] = _row(_CATEGORY, cat, mask)
            n += 1
        if on[_RECENCY]:
            rows[n] = _row(_RECENCY, _recency_bucket(cat, recent_cat, recent_ts, now), mask)
            n += 1
    if on[_PRICE] and item_bucket[item] > 0:
        rows[n] = _row(_PRICE, item_bucket[item], mask)
        n += 1
    return n


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _logit(V, w, bias, rows, n, S):  # pragma: no cover - compiled
    """FM prediction over ``rows[:n]``; leaves the factor sums in ``S``."""
    k = V.shape[1]
    out = bias[0]
    for f in range(k):
        S[f] = 0.0
    sq = np.float32(0.0)
    for a in range(n):
        r = rows[a]
        out += w[r]
        for f in range(k):
            v = V[r, f]
            S[f] += v
            sq += v * v
    pair = np.float32(0.0)
    for f in range(k):
        pair += S[f] * S[f]
    return out + np.float32(0.5) * (pair - sq)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _step(V, w, bias, rows, n, S, target, s, reg):  # pragma: no cover - compiled
    """One logistic-loss SGD step on ``rows[:n]``; False if anything became non-finite."""
    z = _logit(V, w, bias, rows, n, S)
    if not np.isfinite(z):
        return False
    p = np.float32(1.0) / (np.float32(1.0) + np.exp(-max(min(z, np.float32(30.0)), -30.0)))
    g = p - target
    bias[0] -= s * g
    total = bias[0]
    for a in range(n):
        r = rows[a]
        wr = w[r] - s * (g + reg * w[r])
        w[r] = wr
        total += wr
        for f in range(V.shape[1]):
            v = V[r, f]
            v = v - s * (g * (S[f] - v) + reg * v)
            V[r, f] = v
            total += v
    return np.isfinite(total)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _learn(
    users,
    items,
    weight,
    ts,
    hour,
    weekday,
    device,
    country,
    category,
    bucket,
    session,
    recent_cat,
    recent_ts,
    V,
    w,
    bias,
    item_cat,
    item_bucket,
    meta,
    rng,
    on,
    hour_buckets,
    lr,
    reg,
    cap,
    negatives,
):  # pragma: no cover - compiled
    """SGD over the events in order; False as soon as something is not finite.

    ``meta`` = [items seen in positive events (max index + 1), positive events learned].
    """
    mask = V.shape[0] - 1
    rows = np.empty(_N_FIELDS, dtype=np.int64)
    S = np.empty(V.shape[1], dtype=np.float32)
    reg32 = np.float32(reg)
    for e in range(users.shape[0]):
        i = items[e]
        if category[e] >= 0:
            item_cat[i] = category[e]
        if bucket[e] > 0:
            item_bucket[i] = bucket[e]
        wt = weight[e]
        if not wt > 0.0:
            continue
        if i + 1 > meta[0]:
            meta[0] = i + 1
        s = np.float32(lr * min(math.log2(1.0 + wt), cap))
        nc = _context_rows(
            rows,
            on,
            mask,
            users[e],
            hour[e],
            weekday[e],
            device[e],
            country[e],
            session[e],
            hour_buckets,
        )
        rc, rt, now = recent_cat[e], recent_ts[e], ts[e]
        n = _item_rows(rows, nc, on, mask, i, item_cat, item_bucket, rc, rt, now)
        if not _step(V, w, bias, rows, n, S, np.float32(1.0), s, reg32):
            return False
        for _ in range(negatives):
            j = _below(rng, meta[0])
            if j == i:
                continue
            n = _item_rows(rows, nc, on, mask, j, item_cat, item_bucket, rc, rt, now)
            if not _step(V, w, bias, rows, n, S, np.float32(0.0), s, reg32):
                return False
        meta[1] += 1
    return True


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _score(
    candidates,
    n_items,
    on,
    user,
    hour,
    weekday,
    device,
    country,
    session,
    hour_buckets,
    V,
    w,
    bias,
    item_cat,
    item_bucket,
    recent_cat,
    recent_ts,
    now,
    out,
):  # pragma: no cover - compiled
    """``sigmoid(logit)`` per candidate: the request's context rows (``_context_rows``) and
    their sums are computed once, then each candidate adds its own rows (0 for items never
    seen)."""
    mask = V.shape[0] - 1
    ctx_rows = np.empty(_N_FIELDS, dtype=np.int64)
    nc = _context_rows(
        ctx_rows, on, mask, user, hour, weekday, device, country, session, hour_buckets
    )
    k = V.shape[1]
    Sc = np.zeros(k, dtype=np.float32)
    sq_c = np.float32(0.0)
    base = bias[0]
    for a in range(nc):
        r = ctx_rows[a]
        base += w[r]
        for f in range(k):
            v = V[r, f]
            Sc[f] += v
            sq_c += v * v
    rows = np.empty(_N_FIELDS, dtype=np.int64)
    T = np.empty(k, dtype=np.float32)
    for c in range(candidates.shape[0]):
        i = candidates[c]
        if i < 0 or i >= n_items:
            out[c] = 0.0
            continue
        n = _item_rows(rows, 0, on, mask, i, item_cat, item_bucket, recent_cat, recent_ts, now)
        z = base
        sq = sq_c
        T[:] = Sc
        for a in range(n):
            r = rows[a]
            z += w[r]
            for f in range(k):
                v = V[r, f]
                T[f] += v
                sq += v * v
        pair = np.float32(0.0)
        for f in range(k):
            pair += T[f] * T[f]
        z += np.float32(0.5) * (pair - sq)
        out[c] = 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))


class ContextRanker(Model):
    """Factorisation machine over user, item and context features, learned online."""

    name = "ranker"
    reason = "popular_in_your_context"

    def __init__(
        self,
        factors: int = 8,
        hash_bits: int = 18,
        learning_rate: float = 0.05,
        regularization: float = 1e-5,
        negatives: int = 2,
        weight_cap: float = 4.0,
        init_std: float = 0.01,
        hour_buckets: int = 8,
        fields: Sequence[str] = FIELDS,
        seed: int = 0,
    ) -> None:
        _number("factors", factors, integer=True, most=256)
        _number("hash_bits", hash_bits, integer=True, most=26)
        _number("learning_rate", learning_rate, most=1.0)
        _number("regularization", regularization, zero=True, most=1.0)
        _number("negatives", negatives, integer=True, most=64)
        _number("weight_cap", weight_cap)
        _number("init_std", init_std, zero=True, most=1.0)
        _number("hour_buckets", hour_buckets, integer=True, most=24)
        _number("seed", seed, integer=True, zero=True, most=2**63 - 1)
        if isinstance(fields, str) or not fields:
            raise ValueError(f"fields must be a non-empty sequence of {FIELDS}, got {fields!r}")
        for field in fields:
            _choice("fields", field, FIELDS)
        self.factors = int(factors)
        self.hash_bits = int(hash_bits)
        self.learning_rate = float(learning_rate)
        self.regularization = float(regularization)
        self.negatives = int(negatives)
        self.weight_cap = float(weight_cap)
        self.init_std = float(init_std)
        self.hour_buckets = int(hour_buckets)
        self.fields = tuple(f for f in FIELDS if f in fields)
        self.seed = int(seed)
        self._on = np.array([f in self.fields for f in FIELDS], dtype=np.bool_)
        rows = 1 << self.hash_bits
        self._V = np.empty((rows, self.factors), dtype=np.float32)
        _init_rows(self._V, 0, self.seed, _ROW_SALT, self.init_std)
        self._w = np.zeros(rows, dtype=np.float32)
        self._bias = np.zeros(1, dtype=np.float32)
        self._item_cat = np.zeros(0, dtype=np.int32)  # -1 unknown
        self._item_bucket = np.zeros(0, dtype=np.int8)  # 0 unknown
        self._meta = np.zeros(2, dtype=np.int64)  # [items seen in positives, positives learned]
        self._rng = np.asarray([self.seed], dtype=np.uint64)
        self._n_items = 0

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "hash_bits": self.hash_bits,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "negatives": self.negatives,
            "weight_cap": self.weight_cap,
            "init_std": self.init_std,
            "hour_buckets": self.hour_buckets,
            "fields": list(self.fields),
            "seed": self.seed,
        }

    # -- learning ----------------------------------------------------------------------------
    def _ensure(self, n_items: int) -> None:
        """Grow the per-item tables (arrays replaced before the count grows)."""
        self._item_cat = grow(self._item_cat, n_items, fill=-1)
        self._item_bucket = grow(self._item_bucket, n_items)
        self._n_items = max(self._n_items, n_items)

    def learn(self, batch: Batch) -> None:
        if len(batch) == 0:
            return
        self._ensure(batch.sizes()[1])
        ok = _learn(
            batch.users,
            batch.items,
            batch.weight,
            batch.ts,
            batch.hour,
            batch.weekday,
            batch.device,
            batch.country,
            batch.category,
            batch.price_bucket,
            batch.session_events,
            batch.recent_categories,
            batch.category_ts,
            self._V,
            self._w,
            self._bias,
            self._item_cat,
            self._item_bucket,
            self._meta,
            self._rng,
            self._on,
            self.hour_buckets,
            self.learning_rate,
            self.regularization,
            self.weight_cap,
            self.negatives,
        )
        if not ok:
            raise ModelError(f"{self.name}: non-finite parameters while learning (diverged)")

    # -- scoring -----------------------------------------------------------------------------
    def score(self, user: UserView, candidates: np.ndarray) -> np.ndarray:
        candidates = np.asarray(candidates)
        out = np.zeros(candidates.shape[0])
        if self._meta[1] == 0 or candidates.shape[0] == 0:
            return out
        context = user.context
        now = context.ts if context is not None else user.now
        if context is not None:
            hour, weekday, device, country = (
                context.hour,
                context.weekday,
                context.device,
                context.country,
            )
        else:
            (hour, weekday), device, country = local_time(now), 0, 0
        _score(
            candidates,
            self._n_items,
            self._on,
            user.index,
            hour,
            weekday,
            device,
            country,
            user.session_events,
            self.hour_buckets,
            self._V,
            self._w,
            self._bias,
            self._item_cat,
            self._item_bucket,
            user.recent_categories,
            user.category_ts,
            float(now),
            out,
        )
        return out

    # -- snapshots ---------------------------------------------------------------------------
    def explain(self, user: UserView, items: np.ndarray) -> list[dict[str, int | str]]:
        """``popular_in_your_context`` when the request named a device or country, else
        ``popular`` (what the ranker then knows is how items do at this time of day)."""
        ctx = user.context
        known = ctx is not None and (1 <= ctx.device <= 3 or ctx.country > 0)  # mobile..desktop
        kind = self.reason if known else "popular"
        return [{"type": kind} for _ in range(items.shape[0])]

    def state_dict(self) -> dict[str, np.ndarray]:
        n = self._n_items
        return {
            "factors": self._V,
            "linear": self._w,
            "bias": self._bias.copy(),
            "item_category": self._item_cat[:n].copy(),
            "item_price_bucket": self._item_bucket[:n].copy(),
            "meta": self._meta.copy(),
            "rng": self._rng.copy(),
        }

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self._load(arrays, copy=True)

    def load_frozen(self, arrays: dict[str, Any]) -> None:
        """The parameter tables read where they are (a gate's frozen copy): a test reads the
        rows of a few features."""
        self._load({k: dense(v) for k, v in arrays.items()}, copy=False)

    def _load(self, arrays: dict[str, np.ndarray], copy: bool) -> None:
        rows = 1 << self.hash_bits
        V, w = arrays["factors"], arrays["linear"]
        if V.shape != (rows, self.factors) or w.shape != (rows,) or arrays["bias"].shape != (1,):
            raise ModelError(
                f"{self.name}: parameter tables are not {rows} x {self.factors} "
                "(hash_bits or factors changed?)"
            )
        cat, bucket = arrays["item_category"], arrays["item_price_bucket"]
        if cat.shape != bucket.shape or arrays["meta"].shape != (2,) or arrays["rng"].size != 1:
            raise ModelError(f"{self.name}: inconsistent state arrays")
        if copy:
            self._V, self._w = np.array(V, dtype=np.float32, order="C"), np.array(w, np.float32)
        else:
            self._V, self._w = as_held(V, np.float32), as_held(w, np.float32)
        self._bias = np.array(arrays["bias"], dtype=np.float32)
        self._item_cat = cat.astype(np.int32, copy=True)
        self._item_bucket = bucket.astype(np.int8, copy=True)
        self._meta = arrays["meta"].astype(np.int64, copy=True)
        self._rng = arrays["rng"].astype(np.uint64, copy=True).reshape(1)
        self._n_items = cat.shape[0]


__all__ = ["FIELDS", "ContextRanker"]
