"""Metrics on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from freshrec.eval import metrics as m

RANKS = np.array([0, 1, 4, -1, 12, 19, 25])  # 7 tests: ranks are 0-based, -1 = not in the list


def test_recall_precision_are_hit_rates() -> None:
    assert m.recall_at_k(RANKS, 5) == pytest.approx(3 / 7)
    assert m.recall_at_k(RANKS, 20) == pytest.approx(5 / 7)
    assert m.precision_at_k(RANKS, 5) == pytest.approx(3 / 7 / 5)
    assert m.recall_at_k(np.array([], dtype=int), 10) == 0.0


def test_ndcg_with_one_relevant_item() -> None:
    expected = (1 + 1 / math.log2(3) + 1 / math.log2(6)) / 7
    assert m.ndcg_at_k(RANKS, 5) == pytest.approx(expected)
    assert m.ndcg_at_k(np.array([0, 0]), 1) == 1.0


def test_mrr_counts_hits_within_k_only() -> None:
    assert m.mrr_at_k(RANKS, 5) == pytest.approx((1 + 1 / 2 + 1 / 5) / 7)
    assert m.mrr_at_k(RANKS, 20) == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 13 + 1 / 20) / 7)


def test_sampled_auc_counts_ties_half_and_ignores_unused_slots() -> None:
    true = np.array([5.0, 0.0, -np.inf, 1.0])
    neg = np.array(
        [
            [1.0, 2.0, 9.0, np.nan],  # 2 of 3 below
            [0.0, 0.0, 0.0, 0.0],  # all ties
            [-np.inf, 3.0, np.nan, np.nan],  # tie + above: 0.25
            [np.nan] * 4,  # no negatives
        ]
    )
    auc = m.sampled_auc(true, neg)
    assert auc[:3].tolist() == pytest.approx([2 / 3, 0.5, 0.25])
    assert math.isnan(auc[3])
    summary = m.summarise(np.array([0, -1, -1, -1]), [10], ["recall"], auc)
    assert summary["auc"] == pytest.approx((2 / 3 + 0.5 + 0.25) / 3)


def test_windowed_curve_is_a_sliding_mean() -> None:
    x, y = m.windowed(np.array([1, 1, 0, 0, 1, 0, 1, 1], dtype=float), window=4, points=100)
    assert x.tolist() == [4, 5, 6, 7, 8]
    assert y.tolist() == [0.5, 0.5, 0.25, 0.5, 0.75]
    x, y = m.windowed(np.ones(3), window=10)
    assert x.tolist() == [3] and y.tolist() == [1.0]
    x, _ = m.windowed(np.zeros(10_000), window=100, points=50)
    assert len(x) <= 52 and x[-1] == 10_000


def test_summarise_names_every_metric_at_every_k() -> None:
    out = m.summarise(RANKS, [5, 20], ["recall", "ndcg", "precision", "mrr"])
    assert list(out) == [
        f"{n}@{k}" for n in ("recall", "ndcg", "precision", "mrr") for k in (5, 20)
    ]
    assert "auc" not in out
