"""``best_first``: the top-k every model's candidates go through, exact at the cut."""

from __future__ import annotations

import numpy as np

from freshrec.models.base import best_first


def test_best_first_matches_a_full_sort_with_ties_at_the_cut() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(0, 60))
        keys = rng.permutation(1000)[:n]
        scores = rng.integers(0, 4, n).astype(np.float64)  # many ties
        for k in (0, 1, 5, n, n + 3):
            expected = np.lexsort((keys, -scores))[:k]
            assert best_first(keys, scores, k).tolist() == expected.tolist()
