from __future__ import annotations

import numpy as np
import pytest

import freshrec.models.mf as mf_module
from freshrec.models import OnlineMF
from freshrec.models.quantised import QuantisedRows
from freshrec.state import UserView
from freshrec.testing import make_batch


def test_scan_finds_the_exact_top_rows_among_its_candidates() -> None:
    rng = np.random.default_rng(0)
    Q = rng.normal(size=(5000, 64)).astype(np.float32)
    rows = QuantisedRows(64)
    for _ in range(20):
        p = rng.normal(size=64).astype(np.float32)
        exact = np.argsort(-(Q @ p))[:10]
        assert set(exact.tolist()) <= set(rows.top(Q, p, 5000, 256).tolist())


def test_dirty_rows_are_requantised_by_the_next_scan() -> None:
    Q = np.eye(4, dtype=np.float32)
    rows = QuantisedRows(4)
    p = np.array([0, 0, 0, 1], dtype=np.float32)
    assert rows.top(Q, p, 4, 1).tolist() == [3]
    assert not rows.dirty[:4].any()
    Q[1] = [0, 0, 0, 5]
    assert rows.top(Q, p, 4, 1).tolist() == [3]  # not marked dirty: the copy is what it was
    rows.dirty[1] = True
    assert rows.top(Q, p, 4, 1).tolist() == [1]
    Q = np.vstack([Q, [[0, 0, 0, 9]]]).astype(np.float32)  # a new row is quantised too
    assert rows.top(Q, p, 5, 1).tolist() == [4]


def test_quantised_rows_match_their_definition() -> None:
    rng = np.random.default_rng(3)
    Q = rng.normal(size=(300, 16)).astype(np.float32)
    Q[7] = 0.0
    rows = QuantisedRows(16)
    rows.top(Q, rng.normal(size=16).astype(np.float32), 300, 5)
    scale = np.abs(Q).max(axis=1) / np.float32(127.0)
    scale[scale == 0] = 1.0
    # compiled with fastmath (the scan's reductions): the same up to float32 rounding
    np.testing.assert_allclose(rows.scale[:300], scale, rtol=1e-6)
    q8 = np.rint(Q / scale[:, None]).astype(np.int8)
    assert np.abs(rows.q8[:300].astype(int) - q8).max() <= 1
    assert (rows.q8[:300] == q8).mean() > 0.999


@pytest.mark.parametrize("exact_items", [0, 50_000], ids=["int8-scan", "exact-pass"])
def test_mf_top_k_equals_brute_force_after_learning(
    exact_items: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways of finding MF's top-k (the int8 scan of a large catalogue, the exact pass of
    a small one) give the brute-force answer, scores included."""
    monkeypatch.setattr(mf_module, "_EXACT_ITEMS", exact_items)
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


def test_learning_requantises_the_rows_it_changed() -> None:
    """The learner refreshes the int8 copy while the rows are warm: a scan finds none dirty."""
    rng = np.random.default_rng(4)
    mf = OnlineMF(factors=16, seed=2)
    for _ in range(3):
        mf.learn(make_batch(items=rng.integers(0, 400, 500).tolist(), users=[1] * 500))
        n = mf._n_items
        assert not mf._q8.dirty[:n].any()
        Q = mf._Q[:n]
        scale = np.maximum(np.abs(Q).max(axis=1) / np.float32(127.0), 0)
        scale[scale == 0] = 1.0
        assert np.abs(mf._q8.q8[:n].astype(int) - np.rint(Q / scale[:, None])).max() <= 1


def test_mf_scores_from_the_exact_pass_equal_the_gathered_ones() -> None:
    """``score`` reuses the request's exact pass for many candidates: the same scores as
    the factors' dot products, excluded items out of ``top_k`` but still scored."""
    rng = np.random.default_rng(5)
    mf = OnlineMF(factors=16, seed=3)
    mf.learn(make_batch(items=rng.integers(0, 2000, 8000).tolist(), users=[1, 2] * 4000))
    user = UserView(
        1, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int8), np.zeros(0, dtype=bool)
    )
    top, _ = mf.top_k(user, 20, np.array([5, 6], dtype=np.int32))
    assert not {5, 6} & set(top.tolist())
    # the ensemble's candidates: the same items as the top-k, unordered (no ties here)
    assert sorted(mf.candidates(user, 30).tolist()) == sorted(mf.top_k(user, 30)[0].tolist())
    candidates = np.arange(0, 2000, 7)
    expected = mf._Q[candidates] @ mf.user_vector(user)
    np.testing.assert_allclose(mf.score(user, candidates), expected, rtol=1e-5, atol=1e-6)
    assert mf.score(user, np.array([5]))[0] == pytest.approx(
        float(mf._Q[5] @ mf.user_vector(user)), rel=1e-5
    )
