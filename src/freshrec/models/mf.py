"""Online matrix factorisation on implicit feedback, updated by SGD one event at a time.

Each positive event (user ``u``, item ``i``, type weight ``w > 0``) takes SGD steps of size
``learning_rate * min(log2(1 + w), weight_cap)`` -- a view (weight 1) steps by the learning rate,
a purchase (8) by about three times it. ``loss`` picks the steps:

- ``"isgd"``: ISGD (Vinagre et al., 2014), the positive alone: ``e = 1 - p_u . q_i``,
  ``p_u += s (e q_i - reg p_u)``, ``q_i += s (e p_u - reg q_i)``;
- ``"isgd_neg"``: the same, then ``negatives`` sampled items pushed towards 0;
- ``"bpr"``: ``negatives`` pairwise steps raising ``p_u . (q_i - q_j)`` (Rendle et al., 2009).

Negatives are drawn uniformly from the items seen in positive events so far (``sampling=
"uniform"``, the default: popular items stay on top, which recall rewards), or from the items of
the last ``pool_size`` positive events (``"recent"``: popularity-proportional over a sliding
window, O(1) per event, no alias table to rebuild per batch; it demotes popular items and is
cache-friendlier, hence faster). ``negatives * negative_oversampling`` items are drawn and the
``negatives`` the user scores highest are learned from (the hardest; ``negative_oversampling=1``
learns from every draw). Events are processed in log order inside one numba kernel whose
random generator (splitmix64) is part of the state and advances per event, and new factor rows
are initialised from a hash of ``(seed, index)``, so what is learned depends only on the events,
never on how they were batched or when the arrays grew. A non-finite prediction, or a non-finite
row touched by the batch, raises ``ModelError`` from ``learn``.

A user is scored with ``(1 - recent_mix) p_u + recent_mix f`` where ``f`` folds in their recent
items, ``f = sum_r w_r q_r / sum_r w_r`` with ``w_r = 1 / (1 + position)``; a user without
factors (never seen, or no positive event yet) gets ``f`` alone, and no scores without either.

>>> import numpy as np
>>> from freshrec.testing import make_batch
>>> users = np.tile([0, 1], 300)  # user 0 likes items 0-2, user 1 likes items 3-5
>>> items = np.where(users == 0, 0, 3) + np.arange(600) // 2 % 3
>>> mf = OnlineMF(factors=8, learning_rate=0.1, negatives=2, seed=7)
>>> mf.learn(make_batch(items=items.tolist(), users=users.tolist()))
>>> view = UserView(0, np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0, bool))
>>> sorted(mf.top_k(view, 3)[0].tolist())
[0, 1, 2]
>>> mf.top_k(view, 2, exclude=np.array([0, 1]))[0].tolist()[0]
2
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from freshrec.models.base import Model, ModelError, best_first, best_positions, dense
from freshrec.models.common import _FASTMATH, _below, _choice, _init_rows, _number
from freshrec.models.quantised import QuantisedRows
from freshrec.registry.mapped import as_held, release_pages, rows_into
from freshrec.state import Batch, UserView
from freshrec.state.arrays import grow, member_of

LOSSES = ("isgd", "isgd_neg", "bpr")
SAMPLING = ("recent", "uniform")
_ISGD, _ISGD_NEG, _BPR = range(3)
_USER_SALT, _ITEM_SALT = 1, 2
_RESCORE = 512  # approximate candidates ``top_k`` re-scores exactly, at least
_SCAN_LEAST = 100  # rows a scan keeps at least: a live test's top-k of MF (k + the user's recent
# items) and the ensemble's 100 candidates per member then share one scan; a heap of exactly
# the 100 a request asks for lets the scan stop sooner than one of 128 (~17 % at 10k items)
_EXACT_ITEMS = 4_000  # up to this many items, one exact float32 pass instead of the int8 scan:
# on the 100k-item benchmark engine's factors (3,000 users, MF's 100 candidates) the pass and
# its selection cost 26 / 31 / 73 / 185 / 814 us at 1k / 2k / 5k / 10k / 50k items, a scan for
# 128 of the norm-ordered int8 copy 33 / 37 / 38 / 64 / 58 us
_GATHER_MAX = 64  # candidates scored by gathering their rows; more read the request's exact pass


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _gathered(Q, n_items, candidates, p):  # pragma: no cover - compiled
    """``Q[c] . p`` (float32 sums) for each candidate ``c`` below ``n_items``, else 0."""
    out = np.zeros(candidates.shape[0])
    for i in range(candidates.shape[0]):
        c = candidates[i]
        if 0 <= c < n_items:
            acc = np.float32(0.0)
            for j in range(p.shape[0]):
                acc += Q[c, j] * p[j]
            out[i] = acc
    return out


@numba.njit(cache=True, nogil=True)
def _query(Q, n_items, recent, p_u, has_p, mix):  # pragma: no cover - compiled
    """``(1 - mix) p_u + mix f`` (``p_u`` alone without recent items, ``f`` alone without
    ``has_p``), ``f = sum_r w_r Q[r] / sum_r w_r`` over the recent items known (< n_items),
    ``w_r = 1 / (1 + r's place among them)``; float32, as the factors."""
    f = Q.shape[1]
    fold = np.zeros(f, dtype=np.float32)
    total = np.float32(0.0)
    place = 0
    for i in range(recent.shape[0]):
        r = recent[i]
        if r < 0 or r >= n_items:
            continue
        w = np.float32(1.0 / (1.0 + place))
        place += 1
        total += w
        for j in range(f):
            fold[j] += w * Q[r, j]
    if place == 0:
        return p_u.copy()  # zeros for a user with neither
    for j in range(f):
        fold[j] /= total
    if not has_p:
        return fold
    keep = np.float32(1.0) - mix
    for j in range(f):
        fold[j] = keep * p_u[j] + mix * fold[j]
    return fold


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _pointwise(P, Q, u, j, target, s, reg):  # pragma: no cover - compiled
    dot = np.float32(0.0)
    for f in range(P.shape[1]):
        dot += P[u, f] * Q[j, f]
    if not np.isfinite(dot):
        return False
    err = target - dot
    for f in range(P.shape[1]):
        pu = P[u, f]
        qj = Q[j, f]
        P[u, f] = pu + s * (err * qj - reg * pu)
        Q[j, f] = qj + s * (err * pu - reg * qj)
    return True


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _pairwise(P, Q, u, i, j, s, reg):  # pragma: no cover - compiled
    x = np.float32(0.0)
    for f in range(P.shape[1]):
        x += P[u, f] * (Q[i, f] - Q[j, f])
    if not np.isfinite(x):
        return False
    g = np.float32(1.0) / (np.float32(1.0) + np.exp(min(x, np.float32(80.0))))
    for f in range(P.shape[1]):
        pu = P[u, f]
        qi = Q[i, f]
        qj = Q[j, f]
        P[u, f] = pu + s * (g * (qi - qj) - reg * pu)
        Q[i, f] = qi + s * (g * pu - reg * qi)
        Q[j, f] = qj - s * (g * pu + reg * qj)
    return True


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _negatives(
    P, Q, u, i, rng, pool, n_pool, recent, negatives, draws, out, scores
):  # pragma: no cover
    """Fill ``out`` with the negatives of user ``u`` (positive ``i``) and return how many.

    ``draws <= negatives``: each of ``negatives`` draws is used (plain sampling). Otherwise
    ``draws`` items are drawn and the ``negatives`` that ``u`` scores highest are used, best
    first (the hardest: a uniform draw is mostly ranked far below already and teaches little).
    A draw of ``i`` is dropped either way.
    """
    n = 0
    for _ in range(max(draws, negatives)):
        r = _below(rng, n_pool)
        j = pool[r] if recent else r
        if j == i:
            continue
        out[n] = j
        if draws > negatives:
            x = np.float32(0.0)
            for f in range(P.shape[1]):
                x += P[u, f] * Q[j, f]
            scores[n] = x
        n += 1
    if draws <= negatives:
        return n
    keep = min(negatives, n)
    for a in range(keep):  # selection of the best ``keep``, in order (ties: the earlier draw)
        b = a
        for c in range(a + 1, n):
            if scores[c] > scores[b]:
                b = c
        if b != a:
            out[a], out[b] = out[b], out[a]
            scores[a], scores[b] = scores[b], scores[a]
    return keep


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _learn(
    users,
    items,
    weight,
    P,
    Q,
    user_n,
    pool,
    meta,
    rng,
    lr,
    reg,
    cap,
    loss,
    negatives,
    recent,
    dirty,
    draws,
):  # pragma: no cover - compiled
    """SGD over the events in order; False as soon as a prediction is not finite.

    ``meta`` = [items seen in positive events (max index + 1), positive events so far];
    ``dirty[i]`` is set for every item row changed.
    """
    R = pool.shape[0]
    reg32 = np.float32(reg)
    chosen = np.empty(max(draws, negatives), dtype=np.int64)
    scores = np.empty(max(draws, negatives), dtype=np.float32)
    for e in range(users.shape[0]):
        w = weight[e]
        if not w > 0.0:
            continue
        u = users[e]
        i = items[e]
        s = np.float32(lr * min(math.log2(1.0 + w), cap))
        if i + 1 > meta[0]:
            meta[0] = i + 1
        dirty[i] = True
        if loss != _BPR and not _pointwise(P, Q, u, i, np.float32(1.0), s, reg32):
            return False
        n_pool = min(meta[1], R) if recent else meta[0]
        if loss != _ISGD and n_pool > 0:
            found = _negatives(
                P, Q, u, i, rng, pool, n_pool, recent, negatives, draws, chosen, scores
            )
            for m in range(found):
                j = chosen[m]
                dirty[j] = True
                if loss == _BPR:
                    if not _pairwise(P, Q, u, i, j, s, reg32):
                        return False
                elif not _pointwise(P, Q, u, j, np.float32(0.0), s, reg32):
                    return False
        pool[meta[1] % R] = i
        meta[1] += 1
        user_n[u] += 1
    for e in range(users.shape[0]):  # rows touched last are checked now, not at their next use
        if weight[e] > 0.0:
            total = np.float32(0.0)
            for f in range(P.shape[1]):
                total += P[users[e], f] + Q[items[e], f]
            if not np.isfinite(total):
                return False
    return True


class OnlineMF(Model):
    """Implicit-feedback matrix factorisation learned online (ISGD / BPR with negatives)."""

    name = "mf"
    reads_in_place = True
    reason = "picked_for_you"
    scores_are_logits = True

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.08,
        regularization: float = 0.01,
        loss: str = "bpr",
        negatives: int = 4,
        negative_oversampling: int = 2,
        sampling: str = "uniform",
        pool_size: int = 10_000,
        weight_cap: float = 4.0,
        init_std: float = 0.1,
        recent_mix: float = 0.7,
        seed: int = 0,
    ) -> None:
        _number("factors", factors, integer=True)
        _number("learning_rate", learning_rate)
        _number("regularization", regularization, zero=True)
        _choice("loss", loss, LOSSES)
        _number("negatives", negatives, integer=True, zero=loss == "isgd")
        _number("negative_oversampling", negative_oversampling, integer=True)
        _choice("sampling", sampling, SAMPLING)
        _number("pool_size", pool_size, integer=True)
        _number("weight_cap", weight_cap)
        _number("init_std", init_std, zero=True)
        _number("recent_mix", recent_mix, zero=True, most=1.0)
        _number("seed", seed, integer=True, zero=True, most=2**63 - 1)
        self.factors = int(factors)
        self.learning_rate = float(learning_rate)
        self.regularization = float(regularization)
        self.loss = loss
        self.negatives = int(negatives)
        self.negative_oversampling = int(negative_oversampling)
        self.sampling = sampling
        self.pool_size = int(pool_size)
        self.weight_cap = float(weight_cap)
        self.init_std = float(init_std)
        self.recent_mix = float(recent_mix)
        self.seed = int(seed)
        self._P = np.zeros((0, self.factors), dtype=np.float32)  # user factors (rows: capacity)
        self._Q = np.zeros((0, self.factors), dtype=np.float32)  # item factors
        self._user_n = np.zeros(0, dtype=np.int64)  # positive events learned per user
        self._pool = np.full(self.pool_size, -1, dtype=np.int32)  # items of recent positives
        self._meta = np.zeros(2, dtype=np.int64)  # [items seen in positives, positives so far]
        self._rng = np.asarray([self.seed], dtype=np.uint64)  # splitmix64 state
        self._n_users = 0
        self._n_items = 0
        self._norms: np.ndarray | None = None
        self._q8 = QuantisedRows(self.factors)  # int8 mirror of Q for the candidate scan

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "loss": self.loss,
            "negatives": self.negatives,
            "negative_oversampling": self.negative_oversampling,
            "sampling": self.sampling,
            "pool_size": self.pool_size,
            "weight_cap": self.weight_cap,
            "init_std": self.init_std,
            "recent_mix": self.recent_mix,
            "seed": self.seed,
        }

    # -- learning ----------------------------------------------------------------------------
    def _ensure(self, n_users: int, n_items: int) -> None:
        """Grow the factor arrays geometrically; new rows get their per-index initial values.

        Arrays are replaced before the counts grow, so a concurrent reader never indexes past
        the arrays it holds.
        """
        for attr, n, salt in (("_P", n_users, _USER_SALT), ("_Q", n_items, _ITEM_SALT)):
            old = getattr(self, attr)
            new = grow(old, n)
            if new is not old:
                _init_rows(new, old.shape[0], self.seed, salt, self.init_std)
                setattr(self, attr, new)
        self._user_n = grow(self._user_n, n_users)
        self._n_users = max(self._n_users, n_users)
        self._n_items = max(self._n_items, n_items)

    def learn(self, batch: Batch) -> None:
        if len(batch) == 0:
            return
        self._ensure(*batch.sizes())
        self._norms = None
        self._q8.ensure(self._Q.shape[0])
        ok = _learn(
            batch.users,
            batch.items,
            batch.weight,
            self._P,
            self._Q,
            self._user_n,
            self._pool,
            self._meta,
            self._rng,
            self.learning_rate,
            self.regularization,
            self.weight_cap,
            LOSSES.index(self.loss),
            self.negatives,
            self.sampling == "recent",
            self._q8.dirty,
            self.negatives * self.negative_oversampling,
        )
        if not ok:
            raise ModelError(f"{self.name}: non-finite factors while learning (diverged)")
        if self._n_items > _EXACT_ITEMS:  # else the int8 copy is not scanned: rows stay dirty
            self._q8.refresh(self._Q, self._n_items)

    # -- scoring -----------------------------------------------------------------------------
    def user_vector(self, user: UserView) -> np.ndarray:
        """The user's query vector (memoised per request, see ``_user_vector``)."""
        p = user.memo.get("mf/p")
        if p is None:
            p = user.memo["mf/p"] = self._user_vector(user)
        return p  # type: ignore[return-value]

    def _user_vector(self, user: UserView) -> np.ndarray:
        """The user's query vector (float32): ``p_u`` mixed with the fold-in of recent items.

        ``(1 - recent_mix) p_u + recent_mix fold_in`` for a user with factors (``p_u`` alone if
        they have no recent items), the fold-in alone for a user without, zeros for a user with
        neither.
        """
        u = user.index
        known = 0 <= u < self._n_users and self._user_n[u] > 0
        return self.query_vector(self._P[u] if known else None, user.recent_items)

    def query_vector(self, p_u: np.ndarray | None, recent_items: np.ndarray) -> np.ndarray:
        """The query vector of a user with factors ``p_u`` (None: none learned yet) and these
        recent items (scale-out replicas pass the factors read from the user's record)."""
        if p_u is not None and self.recent_mix == 0.0:
            return p_u
        return _query(
            self._Q,
            self._n_items,
            recent_items,
            np.zeros(self.factors, dtype=np.float32) if p_u is None else p_u,
            p_u is not None,
            np.float32(self.recent_mix),
        )

    def score(self, user: UserView, candidates: np.ndarray) -> np.ndarray:
        candidates = np.asarray(candidates)
        if self._n_items <= _EXACT_ITEMS and candidates.shape[0] > _GATHER_MAX:
            known = (candidates >= 0) & (candidates < self._n_items)
            out = np.zeros(candidates.shape[0])
            out[known] = self._exact_scores(user, self.user_vector(user))[candidates[known]]
            return out
        return _gathered(self._Q, self._n_items, candidates, self.user_vector(user))

    def top_k(
        self, user: UserView, k: int, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items for ``user`` and their scores, best first, never in ``exclude``.

        Up to ``_EXACT_ITEMS`` items, every item is scored exactly in one float32 matrix-vector
        product (BLAS). A larger catalogue is scanned in its int8 copy (a quarter of the memory
        traffic, laid out so that most scans stop early), keeping the best
        ``m`` approximate scores (``m`` = max(4k, ``_RESCORE``) plus the excluded count); those
        are re-scored exactly in float32. Either pass is shared by every caller within one
        request (``user.memo``): ``candidates`` and ``score`` read it too.
        """
        n = self._n_items
        if n == 0 or k <= 0:
            return np.zeros(0, dtype=np.int32), np.zeros(0)
        p = self.user_vector(user)
        if not np.count_nonzero(p):  # nothing known about the user: no opinion, let others answer
            return np.zeros(0, dtype=np.int32), np.zeros(0)
        excluded = np.zeros(0, dtype=np.int64) if exclude is None else np.asarray(exclude)
        if n <= _EXACT_ITEMS:
            exact = self._exact_scores(user, p)
            if excluded.size:
                exact = exact.copy()  # the memo's scores serve the next caller as they were
                exact[excluded[(excluded >= 0) & (excluded < n)]] = -np.inf
            return _select(exact, k)
        pool = self._scanned(user, p, max(4 * k, _RESCORE) + excluded.shape[0])[0]
        if excluded.size:
            pool = pool[~member_of(pool, excluded)]
        return _select_from(pool, self._Q[pool] @ p, k)

    def candidates(self, user: UserView, n: int) -> np.ndarray:
        """The ``n`` best items, best first (ties: lower index). After an exact pass they are
        ``top_k``'s items; after an int8 scan, the ``n`` best approximate scores of a scan for
        ``n`` (at most an int8 rounding from ``top_k``'s, with no gather of float32 rows: the
        ensemble scores every candidate exactly anyway). ``top_k`` scans for more rows because
        it re-scores them; candidates need not: the best ``n`` approximate scores are the same
        whether the heap holds ``n`` or 512, and a heap of ``n`` lets the scan stop sooner."""
        count = self._n_items
        if count == 0 or n <= 0:
            return np.zeros(0, dtype=np.int32)
        p = self.user_vector(user)
        if not np.count_nonzero(p):  # (a C call: ndarray.any goes through Python wrappers)
            return np.zeros(0, dtype=np.int32)
        if n >= count:
            return self.top_k(user, n)[0]
        if count > _EXACT_ITEMS:  # the scan's rows come best first
            return self._scanned(user, p, n)[0][:n].astype(np.int32)
        return _select(self._exact_scores(user, p), n)[0]

    def _scanned(self, user: UserView, p: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and approximate scores of the int8 scan's ``m`` best, once per request unless
        a caller needs more rows."""
        n = self._n_items
        m = min(n, max(m, _SCAN_LEAST))
        found = user.memo.get(self.name)
        if found is None or (found[0] < m and found[0] < n):  # type: ignore[index]
            found = user.memo[self.name] = (m, *self._q8.best(self._Q, p, n, m))
        return found[1], found[2]  # type: ignore[index,return-value]

    def _exact_scores(self, user: UserView, p: np.ndarray) -> np.ndarray:
        """Every item's exact score for ``user`` (query vector ``p``), once per request."""
        key = self.name + "/exact"
        exact = user.memo.get(key)
        if exact is None or exact.shape[0] != self._n_items:  # type: ignore[union-attr]
            exact = user.memo[key] = self._Q[: self._n_items] @ p
        return exact  # type: ignore[return-value]

    def similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items with the most similar factors (cosine), ``item`` itself excluded."""
        n = self._n_items
        if not 0 <= item < n:
            return np.zeros(0, dtype=np.int32), np.zeros(0)
        if self._norms is None:
            self._norms = np.maximum(np.linalg.norm(self._Q[:n], axis=1), 1e-12)
        scores = (self._Q[:n] @ self._Q[item]) / (self._norms * self._norms[item])
        scores[item] = -np.inf
        return _select(scores, k)

    # -- snapshots ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        filled = int(min(self._meta[1], self.pool_size))
        return {
            "item_factors": self._Q[: self._n_items],
            "user_factors": self._P[: self._n_users],
            "user_events": self._user_n[: self._n_users],
            "pool": self._pool[:filled].copy(),
            "meta": self._meta.copy(),
            "rng": self._rng.copy(),
        }

    def load_state_dict(self, arrays: dict[str, Any]) -> None:
        """The parameters copied in, into the arrays held now when they have room (a version
        put back: never two copies at once), the rows after the version's back to their
        initial values, as rows never used are."""
        self._check(arrays)
        P, Q, user_n = arrays["user_factors"], arrays["item_factors"], arrays["user_events"]
        self._P = rows_into(self._P, P)
        _init_rows(self._P, P.shape[0], self.seed, _USER_SALT, self.init_std)
        self._Q = rows_into(self._Q, Q)
        _init_rows(self._Q, Q.shape[0], self.seed, _ITEM_SALT, self.init_std)
        self._user_n = rows_into(self._user_n, user_n)
        self._user_n[user_n.shape[0] :] = 0
        self._load_rest(arrays)

    def load_frozen(self, arrays: dict[str, Any]) -> None:
        """The factors read where they are (a gate's frozen copy, ``Model.load_frozen``): at a
        million users, its user factors are hundreds of MB of which a gate's tests read a few
        rows."""
        self._check(arrays)
        arrays = {k: dense(v) for k, v in arrays.items()}
        self._P = as_held(arrays["user_factors"], np.float32)
        self._Q = as_held(arrays["item_factors"], np.float32)
        self._user_n = as_held(arrays["user_events"], np.int64)
        self._load_rest(arrays, quantise=False)
        if self._n_items > _EXACT_ITEMS:  # a chunk of rows at a time, their pages released
            step = max(1, (16 << 20) // self._Q[:1].nbytes)
            for end in range(step, self._n_items + step, step):
                self._q8.refresh(self._Q, min(end, self._n_items))
                release_pages(self._Q[end - step : end])

    def _check(self, arrays: dict[str, Any]) -> None:
        P, Q = arrays["user_factors"], arrays["item_factors"]
        if len(P.shape) != 2 or len(Q.shape) != 2:
            raise ModelError(f"{self.name}: factor arrays are not matrices")
        if P.shape[1] != self.factors or Q.shape[1] != self.factors:
            raise ModelError(f"{self.name}: factor arrays do not have {self.factors} columns")
        pool, user_n = arrays["pool"], arrays["user_events"]
        if pool.shape[0] > self.pool_size:
            raise ModelError(f"{self.name}: pool of {pool.shape[0]} > pool_size {self.pool_size}")
        if user_n.shape != P.shape[:1] or arrays["meta"].shape != (2,) or arrays["rng"].size != 1:
            raise ModelError(f"{self.name}: inconsistent state arrays")

    def _load_rest(self, arrays: dict[str, Any], quantise: bool = True) -> None:
        """Everything but the factors and the users' counts (small), and the int8 copy."""
        pool = dense(arrays["pool"])
        self._pool = np.full(self.pool_size, -1, dtype=np.int32)
        self._pool[: pool.shape[0]] = pool
        self._meta = dense(arrays["meta"]).astype(np.int64, copy=True)
        self._rng = dense(arrays["rng"]).astype(np.uint64, copy=True)
        self._n_users = arrays["user_factors"].shape[0]
        self._n_items = arrays["item_factors"].shape[0]
        self._norms = None
        self._q8 = QuantisedRows(self.factors)
        if quantise and self._n_items > _EXACT_ITEMS:  # now, not on the first request
            self._q8.refresh(self._Q, self._n_items)

    # -- drift hooks (freshrec.drift.policy) -------------------------------------------------
    def shrink_users(self, factor: float) -> None:
        """Scale every user's factors by ``factor`` in [0, 1] (0 = reset them): after a change
        of tastes the stale profiles count less and the recent-items fold-in more."""
        if not 0.0 <= factor <= 1.0:
            raise ValueError(f"factor must be in [0, 1], got {factor!r}")
        self._P[: self._n_users] *= np.float32(factor)


def _select_from(pool: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` of ``pool`` with the best exact ``scores``, best first (ties: lower index)."""
    order = best_first(pool, scores, k)
    return pool[order].astype(np.int32), scores[order].astype(np.float64)


def _select(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``k`` largest finite ``scores``, best first (ties: lower index)."""
    top = best_positions(scores, k)
    return top.astype(np.int32), scores[top].astype(np.float64)
