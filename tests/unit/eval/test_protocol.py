"""The user protocol: who is tested, test-then-learn, exclusion, AUC negatives."""

from __future__ import annotations

import numpy as np

from freshrec.eval.adapters import create
from freshrec.eval.metrics import recall_at_k
from freshrec.eval.protocol import run_model, user_plan
from freshrec.events import LoggedEvent

from .conftest import copycat, stream


class Nothing:
    name = "nothing"

    def learn(self, event: LoggedEvent) -> None:
        pass

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        return []


class LastLearned:
    """Recommends the item of the last event it learned: a perfect model if it could peek."""

    name = "last"

    def __init__(self) -> None:
        self.last: str | None = None
        self.excludes: list[set[str]] = []

    def learn(self, event: LoggedEvent) -> None:
        self.last = event.item_id

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        self.excludes.append(set(exclude))
        return [] if self.last is None or self.last in exclude else [self.last]


def test_first_event_of_a_user_and_seen_pairs_are_never_tested() -> None:
    events = stream([("a", "x"), ("b", "x"), ("a", "y"), ("a", "x"), ("b", "x"), ("b", "z")])
    plan = user_plan(events, auc_negatives=0)
    assert plan.tested.tolist() == [False, False, True, False, False, True]
    assert plan.n_tested == 2 and plan.negatives is None


def test_copycat_stream_successor_hits_nothing_scores_zero() -> None:
    plan = user_plan(copycat(), auc_negatives=0)
    successor = run_model(plan, create("successor"), 10)
    nothing = run_model(plan, Nothing(), 10)
    assert recall_at_k(nothing.ranks, 10) == 0.0
    # the followers' tests (one per step after their first item) are hits, leaders' are not
    assert recall_at_k(successor.ranks, 10) > 0.45
    assert (successor.ranks[successor.ranks >= 0] == 0).all()


def test_learning_happens_after_testing() -> None:
    # each user's next item is the very event being tested: only peeking could hit it
    events = stream([("a", "x"), ("a", "y"), ("b", "z"), ("b", "w"), ("a", "v"), ("b", "u")])
    model = LastLearned()
    run = run_model(user_plan(events, auc_negatives=0), model, 10)
    assert run.ranks.tolist() == [-1, -1, -1, -1]


def test_exclude_is_the_users_items_before_the_event() -> None:
    events = stream([("a", "x"), ("a", "y"), ("b", "x"), ("a", "z"), ("b", "y")])
    model = LastLearned()
    run_model(user_plan(events, auc_negatives=0), model, 10)
    assert model.excludes == [{"x"}, {"x", "y"}, {"x"}]


def test_auc_negatives_are_seen_items_the_user_never_had() -> None:
    pairs = [(f"u{n % 5}", f"i{(n * 7) % 23}") for n in range(200)]
    events = stream(pairs)
    plan = user_plan(events, auc_negatives=5, seed=3)
    assert plan.negatives is not None
    assert plan.negatives.shape == (plan.n_tested, 5)
    tests = np.flatnonzero(plan.tested)
    for row, n in zip(plan.negatives, tests, strict=True):
        before = {e.item_id for e in events[:n]}
        had = {e.item_id for e in events[:n] if e.user_id == events[n].user_id}
        names = {plan.items[j] for j in row if j >= 0}
        assert names <= before - had - {events[n].item_id}
        assert len(names) == len(row[row >= 0])
    again = user_plan(events, auc_negatives=5, seed=3)
    assert (again.negatives == plan.negatives).all()


def test_scorers_get_an_auc_and_others_do_not() -> None:
    plan = user_plan(copycat(), auc_negatives=4)
    pop = run_model(plan, create("pop"), 10)
    assert pop.auc is not None and np.nanmax(pop.auc) <= 1.0
    assert run_model(plan, Nothing(), 10).auc is None
