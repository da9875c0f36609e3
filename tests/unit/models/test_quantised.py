from __future__ import annotations

import numpy as np
import pytest

import freshrec.models.mf as mf_module
from freshrec.models import OnlineMF
from freshrec.models.quantised import RESORT_CHANGES, QuantisedRows
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
    at = rows.pos[:300]  # the copy is laid out by decreasing norm
    np.testing.assert_allclose(rows.scale[at], scale, rtol=1e-6)
    q8 = np.rint(Q / scale[:, None]).astype(np.int8)
    assert np.abs(rows.q8[at].astype(int) - q8).max() <= 1
    assert (rows.q8[at] == q8).mean() > 0.999
    assert (rows.row_at[at] == np.arange(300)).all()
    norms = rows.scale[at] * np.linalg.norm(rows.q8[at].astype(np.float64), axis=1)
    np.testing.assert_allclose(rows.norm[at], norms, rtol=1e-5)


def learned_mf(data_seed: int, model_seed: int) -> OnlineMF:
    """MF with 16 factors after 20,000 random events over 3,000 items and 500 users."""
    rng = np.random.default_rng(data_seed)
    mf = OnlineMF(factors=16, seed=model_seed)
    items = rng.integers(0, 3000, size=20_000)
    users = rng.integers(0, 500, size=20_000)
    mf.learn(make_batch(items=items.tolist(), users=users.tolist()))
    return mf


def no_history(user: int) -> UserView:
    """A request's view of ``user`` with no recent items (MF answers from its factors)."""
    empty = np.zeros(0, dtype=np.int32)
    return UserView(user, empty, np.zeros(0, dtype=np.int8), np.zeros(0, dtype=bool))


@pytest.mark.parametrize("exact_items", [0, 50_000], ids=["int8-scan", "exact-pass"])
def test_mf_top_k_equals_brute_force_after_learning(
    exact_items: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways of finding MF's top-k (the int8 scan of a large catalogue, the exact pass of
    a small one) give the brute-force answer, scores included."""
    monkeypatch.setattr(mf_module, "_EXACT_ITEMS", exact_items)
    mf = learned_mf(data_seed=1, model_seed=2)
    for u in range(0, 500, 50):
        user = no_history(u)
        exclude = np.array([1, 2, 3], dtype=np.int32)
        got, scores = mf.top_k(user, 10, exclude)
        brute = mf._Q[: mf._n_items] @ mf.user_vector(user)
        brute[exclude] = -np.inf
        expected = np.lexsort((np.arange(brute.shape[0]), -brute))[:10]
        assert got.tolist() == expected.tolist()
        np.testing.assert_allclose(scores, brute[expected], rtol=1e-5)
        mf.learn(make_batch(items=[int(got[0])], users=[u]))  # rows change between requests


@pytest.mark.parametrize("exact_items", [0, 50_000], ids=["int8-scan", "exact-pass"])
def test_mf_candidates_are_best_first(exact_items: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """MF's candidates come best first (live quality takes a model's first k candidates as its
    top-k), whichever size of scan asked first in the request, and the best n of a scan for
    more are the same n (ties aside) as a scan for n."""
    monkeypatch.setattr(mf_module, "_EXACT_ITEMS", exact_items)
    mf = learned_mf(data_seed=3, model_seed=4)
    for u in range(0, 500, 50):
        user = no_history(u)
        few = mf.candidates(user, 12)
        many = mf.candidates(user, 300)  # a larger ask in the same request: a second scan
        brute = mf._Q[: mf._n_items] @ mf.user_vector(user)
        for found in (few, many):
            assert np.unique(found).shape[0] == found.shape[0]
            assert (np.diff(brute[found]) <= 1e-2).all()  # best first, up to int8 rounding
        assert len(set(few.tolist()) & set(many[:12].tolist())) >= 11
        user = no_history(u)
        assert mf.candidates(user, 300)[:12].tolist() == mf.candidates(user, 12).tolist()


def test_learning_requantises_the_rows_it_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The learner refreshes the int8 copy while the rows are warm: a scan finds none dirty
    (a catalogue small enough for the exact pass leaves its rows dirty: no scan reads them)."""
    small = OnlineMF(factors=16, seed=2)
    small.learn(make_batch(items=list(range(50)), users=[1] * 50))
    assert small._q8.dirty[:50].all()
    monkeypatch.setattr(mf_module, "_EXACT_ITEMS", 0)
    rng = np.random.default_rng(4)
    mf = OnlineMF(factors=16, seed=2)
    for _ in range(3):
        mf.learn(make_batch(items=rng.integers(0, 400, 500).tolist(), users=[1] * 500))
        n = mf._n_items
        assert not mf._q8.dirty[:n].any()
        Q = mf._Q[:n]
        scale = np.maximum(np.abs(Q).max(axis=1) / np.float32(127.0), 0)
        scale[scale == 0] = 1.0
        q8 = mf._q8.q8[mf._q8.pos[:n]]
        assert np.abs(q8.astype(int) - np.rint(Q / scale[:, None])).max() <= 1


def test_mf_scores_from_the_exact_pass_equal_the_gathered_ones() -> None:
    """``score`` reuses the request's exact pass for many candidates: the same scores as
    the factors' dot products, excluded items out of ``top_k`` but still scored."""
    rng = np.random.default_rng(5)
    mf = OnlineMF(factors=16, seed=3)
    mf.learn(make_batch(items=rng.integers(0, 2000, 8000).tolist(), users=[1, 2] * 4000))
    user = no_history(1)
    top, _ = mf.top_k(user, 20, np.array([5, 6], dtype=np.int32))
    assert not {5, 6} & set(top.tolist())
    # the ensemble's candidates: the same items as the top-k (no ties here)
    assert sorted(mf.candidates(user, 30).tolist()) == sorted(mf.top_k(user, 30)[0].tolist())
    candidates = np.arange(0, 2000, 7)
    expected = mf._Q[candidates] @ mf.user_vector(user)
    np.testing.assert_allclose(mf.score(user, candidates), expected, rtol=1e-5, atol=1e-6)
    assert mf.score(user, np.array([5]))[0] == pytest.approx(
        float(mf._Q[5] @ mf.user_vector(user)), rel=1e-5
    )


def _full_scan(rows: QuantisedRows, p: np.ndarray, n: int, m: int) -> set[int]:
    """The m best approximate scores by brute force over the whole copy (no ties here)."""
    at = rows.pos[:n]
    approx = rows.scale[at] * (rows.q8[at].astype(np.float32) @ p)
    return set(np.argsort(-approx, kind="stable")[:m].tolist())


def _bounds_hold(rows: QuantisedRows, n: int) -> bool:
    suffix_max = np.maximum.accumulate(rows.norm[:n][::-1])[::-1]
    return bool((rows.bound[:n] >= suffix_max).all())


def test_a_scan_that_stops_early_finds_what_a_full_scan_finds() -> None:
    """Rows of very different norms (most scans stop early), then rows changed without a
    re-sort (some grow past the bounds before them): always the full scan's answer."""
    rng = np.random.default_rng(11)
    n = 20_000
    Q = (rng.normal(size=(n, 32)) * rng.lognormal(0, 0.6, size=(n, 1))).astype(np.float32)
    rows = QuantisedRows(32)
    rows.refresh(Q, n)
    assert (np.diff(rows.norm[:n]) <= 0).all()  # sorted: the bounds are the norms
    for step in range(6):
        changed = rng.choice(n, 300, replace=False)  # 1,800 changes < RESORT_CHANGES * n
        Q[changed] *= np.float32(1.0 + step)  # norms grow: bounds must be raised
        rows.dirty[changed] = True
        rows.refresh(Q, n)
        assert _bounds_hold(rows, n)
        for _ in range(5):
            p = rng.normal(size=32).astype(np.float32)
            assert set(rows.top(Q, p, n, 64).tolist()) == _full_scan(rows, p, n, 64)


def test_the_copy_is_sorted_again_once_enough_rows_changed() -> None:
    rng = np.random.default_rng(12)
    n = 4000
    Q = rng.normal(size=(n, 8)).astype(np.float32)
    rows = QuantisedRows(8)
    rows.refresh(Q, n)
    assert (np.diff(rows.norm[:n]) <= 0).all()  # the first quantisation sorts
    budget = int(RESORT_CHANGES * n)
    first = rng.choice(n, budget // 2, replace=False)
    Q[first] *= np.float32(3.0)
    rows.dirty[first] = True
    rows.refresh(Q, n)
    assert not (np.diff(rows.norm[:n]) <= 0).all()  # changed rows stay where they were
    assert _bounds_hold(rows, n)
    rest = rng.choice(n, budget - budget // 2, replace=False)
    rows.dirty[rest] = True
    rows.refresh(Q, n)  # as many changes as rows since the sort: sorted again
    assert (np.diff(rows.norm[:n]) <= 0).all()
    assert (rows.bound[:n] == rows.norm[:n]).all()
    assert (rows.row_at[rows.pos[:n]] == np.arange(n)).all()
    p = rng.normal(size=8).astype(np.float32)
    assert set(rows.top(Q, p, n, 50).tolist()) == _full_scan(rows, p, n, 50)


def test_new_rows_join_at_the_end_and_are_found() -> None:
    rng = np.random.default_rng(13)
    Q = rng.normal(size=(1000, 8)).astype(np.float32)
    rows = QuantisedRows(8)
    rows.refresh(Q, 1000)
    p = rng.normal(size=8).astype(np.float32)
    big = (p / np.linalg.norm(p) * 50).astype(np.float32)
    Q = np.vstack([Q, big[None, :]]).astype(np.float32)  # the best row, added last
    assert 1000 in rows.top(Q, p, 1001, 5).tolist()
    assert _bounds_hold(rows, 1001)


def test_restored_factors_are_quantised_on_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """A restored MF (a restart, a scale-out replica's new snapshot) quantises and sorts its
    copy while loading, not in the first request's scan."""
    monkeypatch.setattr(mf_module, "_EXACT_ITEMS", 100)
    mf = OnlineMF(factors=8, seed=1)
    rng = np.random.default_rng(6)
    mf.learn(make_batch(items=rng.integers(0, 500, 3000).tolist(), users=[1] * 3000))
    other = OnlineMF(factors=8, seed=1)
    other.load_state_dict(mf.state_dict())
    n = other._n_items
    assert n > 100 and not other._q8.dirty[:n].any()
    assert (np.diff(other._q8.norm[:n]) <= 0).all()


def test_mf_candidates_after_a_scan_are_its_best_approximate_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the exact pass's size, ``candidates`` takes the scan's best approximate scores
    without re-scoring: the top-k's items up to int8 rounding at the edge. A scan keeps what
    its largest caller asked for: ``top_k`` (which re-scores 512) scans again after the
    candidates' scan, and candidates then read the larger one."""
    monkeypatch.setattr(mf_module, "_EXACT_ITEMS", 0)
    rng = np.random.default_rng(8)
    mf = OnlineMF(factors=16, seed=4)
    mf.learn(make_batch(items=rng.integers(0, 3000, 20_000).tolist(), users=[3, 4] * 10_000))
    for u in (3, 4):
        user = no_history(u)
        got = mf.candidates(user, 40)
        assert got.shape == (40,) and np.unique(got).shape == (40,)
        scanned = user.memo[mf.name]
        assert scanned[0] == mf_module._SCAN_LEAST  # the least a scan keeps
        exact = set(mf.top_k(user, 40)[0].tolist())
        larger = user.memo[mf.name]
        assert larger[0] == mf_module._RESCORE
        assert len(exact & set(got.tolist())) >= 38
        assert mf.candidates(user, 40).tolist() == got.tolist()
        assert user.memo[mf.name] is larger  # read, not scanned again


def test_a_scan_covers_every_mirrored_row() -> None:
    Q = np.eye(4, dtype=np.float32)
    rows = QuantisedRows(4)
    rows.top(Q, np.ones(4, dtype=np.float32), 4, 2)
    with pytest.raises(ValueError, match="mirrors 4 rows"):
        rows.top(Q, np.ones(4, dtype=np.float32), 3, 2)
