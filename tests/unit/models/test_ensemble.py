from __future__ import annotations

import numpy as np
import pytest

from freshrec.models import CoVisitation, DecayedPopularity
from freshrec.models.ensemble import Ensemble, _distribution
from freshrec.state import UserView
from freshrec.testing import make_batch


def user(recent: list[int]) -> UserView:
    n = len(recent)
    return UserView(
        0, np.asarray(recent, dtype=np.int32), np.zeros(n, dtype=np.int8), np.ones(n, dtype=bool)
    )


def trained() -> tuple[DecayedPopularity, CoVisitation]:
    pop, cv = DecayedPopularity(), CoVisitation(neighbours=8)
    # item 9 is very popular; item 0 is followed by item 1 in sessions
    batch = make_batch(items=[9] * 20 + [1, 1], prev_items=[[]] * 20 + [[0], [0]])
    pop.learn(batch)
    cv.learn(batch)
    return pop, cv


def test_weights_follow_hit_rates_and_keep_a_floor() -> None:
    pop, cv = trained()
    ens = Ensemble([pop, cv], eta=10.0, min_weight=0.05)
    assert ens.weights == pytest.approx({"popularity": 0.5, "covisitation": 0.5})
    ens.update_weights({"popularity": 0.05, "covisitation": 0.30})
    assert ens.weights["covisitation"] > 0.9
    ens.update_weights({"popularity": 0.9, "covisitation": 0.0})
    assert ens.weights["covisitation"] == pytest.approx(
        0.05 / 1.05, rel=1e-3
    )  # floor, renormalised


def test_rank_blends_members_and_reports_shares() -> None:
    pop, cv = trained()
    ens = Ensemble([pop, cv], priors={"popularity": 0.1, "covisitation": 1.0}, eta=0.0)
    ranked = ens.rank(user([0]), k=2)
    assert ranked.items.tolist() == [1, 9]  # co-visitation leads, popularity fills
    assert ranked.parts.shape == (2, 2)
    assert np.allclose(ranked.parts.sum(axis=1), ranked.scores)
    assert ranked.parts[0].argmax() == 1 and ranked.parts[1].argmax() == 0
    excluded = ens.rank(user([0]), k=2, exclude=np.array([1], dtype=np.int32))
    assert 1 not in excluded.items.tolist()


def test_priors_shift_the_blend() -> None:
    pop, cv = trained()
    ens = Ensemble([pop, cv], priors={"popularity": 10.0, "covisitation": 1.0}, eta=0.0)
    assert ens.rank(user([0]), k=1).items.tolist() == [9]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="members"):
        Ensemble([])
    with pytest.raises(ValueError, match="eta"):
        Ensemble([DecayedPopularity()], eta=-1)


def test_a_distribution_of_non_finite_scores_is_none() -> None:
    assert _distribution(np.array([1.0, np.nan]), logits=True) is None
    assert _distribution(np.array([np.inf, 0.0]), logits=False) is None
    np.testing.assert_allclose(_distribution(np.array([1.0, 3.0]), logits=False), [0.25, 0.75])
    assert _distribution(np.zeros(0), logits=True).shape == (0,)
