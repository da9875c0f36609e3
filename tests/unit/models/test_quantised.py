from __future__ import annotations

import numpy as np

from freshrec.models import OnlineMF
from freshrec.models.quantised import QuantisedRows
from freshrec.state import UserView
from freshrec.testing import make_batch


def test_scan_finds_the_exact_top_rows_among_its_candidates() -> None:
    rng = np.random.default_rng(0)
    Q = rng.normal(size=(5000, 64)).astype(np.float32)
    rows = QuantisedRows(64)
    rows.refresh(Q, 5000)
    for _ in range(20):
        p = rng.normal(size=64).astype(np.float32)
        exact = np.argsort(-(Q @ p))[:10]
        assert set(exact.tolist()) <= set(rows.top(p, 5000, 256).tolist())


def test_dirty_rows_are_requantised_before_the_next_scan() -> None:
    Q = np.eye(4, dtype=np.float32)
    rows = QuantisedRows(4)
    rows.refresh(Q, 4)
    p = np.array([0, 0, 0, 1], dtype=np.float32)
    assert rows.top(p, 4, 1).tolist() == [3]
    Q[1] = [0, 0, 0, 5]
    rows.dirty[1] = True
    rows.refresh(Q, 4)
    assert rows.top(p, 4, 1).tolist() == [1]


def test_mf_top_k_equals_brute_force_after_learning() -> None:
    rng = np.random.default_rng(1)
    mf = OnlineMF(factors=16, seed=2)
    items = rng.integers(0, 3000, size=20_000)
    users = rng.integers(0, 500, size=20_000)
    mf.learn(make_batch(items=items.tolist(), users=users.tolist()))
    for u in range(0, 500, 50):
        user = UserView(
            u, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int8), np.zeros(0, dtype=bool)
        )
        exclude = np.array([1, 2, 3], dtype=np.int32)
        got, scores = mf.top_k(user, 10, exclude)
        brute = mf._Q[: mf._n_items] @ mf.user_vector(user)
        brute[exclude] = -np.inf
        expected = np.lexsort((np.arange(brute.shape[0]), -brute))[:10]
        assert got.tolist() == expected.tolist()
        np.testing.assert_allclose(scores, brute[expected], rtol=1e-5)
        mf.learn(make_batch(items=[int(got[0])], users=[u]))  # rows change between requests
