"""``best_first``: the top-k every model's candidates go through, exact at the cut."""

from __future__ import annotations

import numpy as np

from freshrec.models.base import best_first, best_positions


def test_best_first_matches_a_full_sort_with_ties_at_the_cut() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(0, 60))
        keys = rng.permutation(1000)[:n]
        scores = rng.integers(0, 4, n).astype(np.float64)  # many ties
        for k in (0, 1, 5, n, n + 3):
            expected = np.lexsort((keys, -scores))[:k]
            assert best_first(keys, scores, k).tolist() == expected.tolist()


def test_best_first_ranks_nan_below_everything_in_any_dtype() -> None:
    rng = np.random.default_rng(2)
    for dtype, key_dtype in ((np.float64, np.int64), (np.float32, np.int32)):
        for _ in range(200):
            n = int(rng.integers(1, 300))
            keys = rng.permutation(5000)[:n].astype(key_dtype)
            scores = rng.integers(-2, 3, n).astype(dtype)
            scores[rng.random(n) < 0.1] = -np.inf
            scores[rng.random(n) < 0.1] = np.nan
            nan = np.isnan(scores)
            expected = np.lexsort((keys, -np.where(nan, 0, scores), nan))
            for k in (1, 7, n // 2, n):
                assert best_first(keys, scores, k).tolist() == expected[:k].tolist()


def test_top_indices_of_models_and_baselines_are_exact_at_the_cut() -> None:
    """The evaluator's top-k (every baseline's) and MF's: positions, ties to the lower one
    also at the cut, non-finite scores never listed."""
    from freshrec.eval.adapters import top_indices

    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(0, 80))
        scores = rng.integers(0, 3, n).astype(np.float64)  # many ties
        scores[rng.random(n) < 0.1] = -np.inf
        scores[rng.random(n) < 0.05] = np.nan
        finite = np.flatnonzero(np.isfinite(scores))
        for k in (0, 1, 4, n, n + 2):
            expected = finite[np.lexsort((finite, -scores[finite]))][:k]
            assert top_indices(scores, k).tolist() == expected.tolist()
            assert best_positions(scores, k).tolist() == expected.tolist()
