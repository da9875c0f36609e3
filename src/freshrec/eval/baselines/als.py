"""What shops do today: ``implicit``'s ALS retrained from scratch every ``every`` events.

After every ``every``-th learned event a new ``AlternatingLeastSquares`` is fitted on all events
so far (confidence = number of events of the pair). Between retrains the model is frozen:

- ``als-R``: a user is scored with the factors of the last fit; a user unseen at that fit gets
  no recommendation (a miss);
- ``als-R-recalc``: the user's vector is recomputed at query time from their *current* history
  (``recommend(..., recalculate_user=True)``), so new events of known items count at once and a
  new user with at least one known item is served.

Either way, items unseen at the last fit cannot be recommended, and nothing is recommended
before the first fit. Needs the ``eval`` extra (``pip install 'freshrec[eval]'``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from freshrec.eval.adapters import register, register_missing
from freshrec.eval.baselines.base import Baseline
from freshrec.events import LoggedEvent

try:
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - depends on the environment
    AlternatingLeastSquares = None

EVERY = (1_000, 10_000)
_EMPTY = np.zeros(0, dtype=np.int32)


class RetrainedALS(Baseline):
    """ALS refitted from scratch every ``every`` events; see the module docstring."""

    name = "als"

    def __init__(
        self,
        every: int = 1_000,
        recalculate_user: bool = False,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        seed: int = 0,
    ) -> None:
        if AlternatingLeastSquares is None:
            raise ImportError(
                "the ALS baselines need the 'eval' extra: pip install 'freshrec[eval]'"
            )
        super().__init__()
        self.every = every
        self.recalculate_user = recalculate_user
        self.params = {
            "factors": factors,
            "regularization": regularization,
            "alpha": alpha,
            "iterations": iterations,
        }
        self.seed = seed
        self.counts: list[dict[int, float]] = []
        self._pairs_u: list[int] = []
        self._pairs_i: list[int] = []
        self.model: Any = None
        self.fit_users = 0
        self.fit_items = 0
        self.fits = 0

    def _learn(self, u: int, i: int, event: LoggedEvent) -> None:
        while len(self.counts) <= u:
            self.counts.append({})
        self.counts[u][i] = self.counts[u].get(i, 0.0) + 1.0
        self._pairs_u.append(u)
        self._pairs_i.append(i)
        if len(self._pairs_u) % self.every == 0:
            self.fit()

    def fit(self) -> None:
        """Fit a fresh model on every event so far."""
        shape = (len(self.users), self.n_items)
        ones = np.ones(len(self._pairs_u), dtype=np.float32)
        matrix = sp.csr_matrix((ones, (self._pairs_u, self._pairs_i)), shape=shape)
        matrix.sum_duplicates()
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(**self.params, random_state=self.seed, num_threads=1)
            model.fit(matrix, show_progress=False)
        self.model, self.fit_users, self.fit_items = model, shape[0], shape[1]
        self.fits += 1

    def _row(self, u: int) -> Any:
        counts = self.counts[u]
        cols = np.fromiter((i for i in counts if i < self.fit_items), dtype=np.int32)
        cols.sort()
        data = np.asarray([counts[i] for i in cols.tolist()], dtype=np.float32)
        return sp.csr_matrix((data, cols, [0, cols.shape[0]]), shape=(1, self.fit_items))

    def _user(self, u: int | None) -> tuple[int, Any] | None:
        """``(userid, user_items)`` to give ``implicit``, or None when the user is not served."""
        if self.model is None or u is None:
            return None
        if self.recalculate_user:
            row = self._row(u)
            return (0, row) if row.nnz else None
        return (u, None) if u < self.fit_users else None

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        user = self._user(self.users.get(user_id))
        if user is None:
            return []
        excluded = self.items.lookup(list(exclude)) if exclude else _EMPTY
        excluded = excluded[excluded < self.fit_items]
        ids, scores = self.model.recommend(
            user[0],
            user[1],
            N=min(k, self.fit_items),
            filter_already_liked_items=False,
            filter_items=excluded if excluded.size else None,
            recalculate_user=self.recalculate_user,
        )
        keys = self.items.keys()
        return [keys[i] for i in ids[np.isfinite(scores)].tolist()]

    def _scores(self, u: int | None) -> tuple[np.ndarray | None, np.ndarray]:
        user = self._user(u)
        out = np.full(self.n_items, -np.inf)
        if user is not None:
            if self.recalculate_user:
                vector = self.model.recalculate_user(0, user[1])
            else:
                vector = self.model.user_factors[user[0]]
            out[: self.fit_items] = self.model.item_factors @ vector
        return None, out


def _factory(every: int, recalc: bool) -> Any:
    def make(seed: int = 0, settings: Any = None) -> RetrainedALS:
        return RetrainedALS(every, recalc, seed=seed)

    return make


for _every in EVERY:
    for _recalc in (False, True):
        _name = f"als-{_every}{'-recalc' if _recalc else ''}"
        if AlternatingLeastSquares is None:
            register_missing(_name, "needs the 'eval' extra: pip install 'freshrec[eval]'")
        else:
            register(_name)(_factory(_every, _recalc))

__all__ = ["RetrainedALS"]
