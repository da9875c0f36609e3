"""The session protocol on tiny streams."""

from __future__ import annotations

from freshrec.eval.adapters import create
from freshrec.eval.datasets import sessions_of
from freshrec.eval.metrics import recall_at_k
from freshrec.eval.protocol import run_model
from freshrec.eval.session import session_plan
from freshrec.events import LoggedEvent

from .conftest import stream


def test_sessions_split_on_inactivity_or_follow_session_ids() -> None:
    events = stream([("u", "a"), ("u", "b")], step=60) + stream([("u", "c")], start=10_000)
    events.append(LoggedEvent(0, "v", "d", 20_000.0, session_id="s9"))
    keys = [e.user_id for e in sessions_of(events, gap_seconds=1800)]
    assert keys == ["u#1", "u#1", "u#2", "v/s9"]
    assert all(e.session_id == e.user_id for e in sessions_of(events))


def test_sessions_are_grouped_and_all_but_the_first_event_tested() -> None:
    events = stream([("s1", "a"), ("s2", "b"), ("s1", "c"), ("s3", "a"), ("s2", "d")])
    plan = session_plan(events)
    assert [e.user_id for e in plan.events] == ["s1", "s1", "s2", "s2", "s3"]
    assert plan.tested.tolist() == [False, True, False, True, False]
    assert not plan.exclude_seen


def test_next_item_is_predicted_and_repeats_are_not_excluded() -> None:
    # every session goes a -> b -> a: successor learns both steps, nothing is excluded
    pairs = [(f"s{n}", item) for n in range(6) for item in ("a", "b", "a")]
    plan = session_plan(stream(pairs))
    run = run_model(plan, create("successor"), 20)
    assert run.ranks[:2].tolist() == [-1, -1]  # the first session has nothing to learn from
    assert run.ranks[2:].tolist() == [0] * 10
    assert recall_at_k(run.ranks, 20) == 10 / 12


def test_session_knn_finds_the_sessions_like_this_one() -> None:
    pairs = [("p1", "a"), ("p1", "b"), ("p2", "a"), ("p2", "b"), ("p3", "c"), ("p3", "d")]
    pairs += [("q", "a"), ("q", "b")]
    for name in ("sknn", "vsknn"):
        run = run_model(session_plan(stream(pairs)), create(name), 10)
        # p2 and q after a: the earlier sessions holding a also hold b (tied with a, which
        # comes first by index); p3 shares nothing, so its first step has no neighbour
        assert run.ranks.tolist() == [-1, 1, -1, 1], name
