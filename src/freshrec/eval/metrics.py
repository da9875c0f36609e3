"""Ranking metrics of a prequential run, computed from the rank of the one relevant item.

Each tested event has exactly one relevant item (the item the user or session went to next). A
model's answer is summarised by ``rank``: the 0-based position of that item in the recommended
list, or ``-1`` when it is not in the list. With one relevant item:

- Recall@K = HitRate@K = the share of tests with ``0 <= rank < K``;
- Precision@K = Recall@K / K (one relevant item among K shown);
- NDCG@K = mean of ``1 / log2(rank + 2)`` over hits (0 for misses; the ideal DCG is 1);
- MRR@K = mean of ``1 / (rank + 1)`` over hits (0 for misses);
- sampled AUC: per test, the share of sampled negative items scored below the true item (ties
  count one half), averaged over tests.

>>> ranks = np.array([0, 2, -1, 9, 10])
>>> recall_at_k(ranks, 10), precision_at_k(ranks, 10)
(0.6, 0.06)
>>> round(ndcg_at_k(ranks, 3), 4)  # (1 + 1/log2(4)) / 5
0.3
>>> round(mrr_at_k(ranks, 20), 4)  # (1 + 1/3 + 1/10 + 1/11) / 5
0.3048
>>> sampled_auc(np.array([2.0]), np.array([[1.0, 2.0, 3.0, np.nan]])).tolist()
[0.5]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def hits(ranks: np.ndarray, k: int) -> np.ndarray:
    """Whether the relevant item is in the top ``k`` of each test (bool array)."""
    ranks = np.asarray(ranks)
    return (ranks >= 0) & (ranks < k)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else 0.0


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Recall@K (= HitRate@K with one relevant item per test)."""
    return _mean(hits(ranks, k).astype(np.float64))


def precision_at_k(ranks: np.ndarray, k: int) -> float:
    """Precision@K: hits over K recommended items."""
    return recall_at_k(ranks, k) / k


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """NDCG@K with one relevant item: ``1 / log2(rank + 2)`` for a hit, else 0."""
    ranks = np.asarray(ranks)
    hit = hits(ranks, k)
    gain = np.zeros(ranks.shape[0])
    gain[hit] = 1.0 / np.log2(ranks[hit] + 2.0)
    return _mean(gain)


def mrr_at_k(ranks: np.ndarray, k: int) -> float:
    """MRR@K: ``1 / (rank + 1)`` for a hit, else 0."""
    ranks = np.asarray(ranks)
    hit = hits(ranks, k)
    gain = np.zeros(ranks.shape[0])
    gain[hit] = 1.0 / (ranks[hit] + 1.0)
    return _mean(gain)


def sampled_auc(true_scores: np.ndarray, negative_scores: np.ndarray) -> np.ndarray:
    """Per-test AUC of the true item against sampled negatives.

    ``negative_scores`` is ``(tests, m)``; NaN marks an unused slot (fewer negatives available).
    A negative scored below the true item counts 1, a tie (including both ``-inf``: neither
    recommendable) counts 1/2. A test without any negative gets NaN.
    """
    true_scores = np.asarray(true_scores, dtype=np.float64)[:, None]
    neg = np.asarray(negative_scores, dtype=np.float64)
    valid = ~np.isnan(neg)
    with np.errstate(invalid="ignore"):
        below = (neg < true_scores) & valid
        tie = (neg == true_scores) & valid
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (below.sum(axis=1) + 0.5 * tie.sum(axis=1)) / n, np.nan)


def windowed(values: np.ndarray, window: int, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Sliding mean of ``values`` over the last ``window`` tests, sampled at about ``points``.

    Returns ``(x, y)``: ``x`` is the number of tests seen at the end of each window, ``y`` the
    mean over that window. With fewer tests than ``window``, one point: the mean of them all.

    >>> windowed(np.array([1, 0, 1, 1, 0, 0], dtype=float), window=2, points=10)[1].tolist()
    [0.5, 0.5, 1.0, 0.5, 0.0]
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if n <= window:
        return np.asarray([n]), np.asarray([values.mean()])
    csum = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(window, n + 1)
    step = max(1, ends.shape[0] // points)
    ends = ends[::step]
    if ends[-1] != n:
        ends = np.append(ends, n)
    return ends, (csum[ends] - csum[ends - window]) / window


def summarise(
    ranks: np.ndarray,
    ks: Sequence[int],
    names: Sequence[str] = ("recall", "ndcg", "precision", "mrr"),
    auc: np.ndarray | None = None,
) -> dict[str, float | None]:
    """Every metric in ``names`` at every K, e.g. ``{"recall@10": ..., "auc": ...}``."""
    fns = {
        "recall": recall_at_k,
        "hr": recall_at_k,
        "ndcg": ndcg_at_k,
        "precision": precision_at_k,
        "mrr": mrr_at_k,
    }
    out: dict[str, float | None] = {}
    for name in names:
        for k in ks:
            out[f"{name}@{k}"] = fns[name](ranks, k)
    if auc is not None:
        finite = auc[~np.isnan(auc)]
        out["auc"] = float(finite.mean()) if finite.size else None
    return out


__all__ = [
    "hits",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "sampled_auc",
    "summarise",
    "windowed",
]
