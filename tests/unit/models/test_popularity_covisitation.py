from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from freshrec.models import CoVisitation, DecayedPopularity, ForwardDecay
from freshrec.models.covisitation import recency_weights
from freshrec.state import UserView
from freshrec.testing import make_batch


def test_recent_events_outweigh_old_ones() -> None:
    pop = DecayedPopularity(half_life_seconds=100.0)
    pop.learn(make_batch(items=[0, 0, 0], ts=[0.0, 1.0, 2.0]))  # three events long ago
    pop.learn(make_batch(items=[1], ts=[1000.0]))  # one event ten half-lives later
    assert pop.top(2).tolist() == [1, 0]
    decayed = pop.decayed(at=1000.0)
    assert decayed[1] == 1.0 and decayed[0] < 3 * 2.0**-9.9


def test_decay_survives_rebasing_over_long_spans() -> None:
    pop = DecayedPopularity(half_life_seconds=1.0)
    for t in range(0, 5000, 100):  # 5000 half-lives: would overflow without rebasing
        pop.learn(make_batch(items=[t % 3], ts=[float(t)]))
    assert np.isfinite(pop.raw_scores()).all()
    assert pop.top(1).tolist() == [4900 // 100 % 3]


def test_forward_decay_matches_plain_decay() -> None:
    clock = ForwardDecay(half_life=50.0)
    ts = np.array([0.0, 30.0, 80.0, 5000.0])
    stored = np.zeros(1)
    for t in ts:
        stored *= clock.rebase(np.array([t]))
        stored += clock.weights(np.array([t]))
    expected = sum(2.0 ** (-(ts[-1] - t) / 50.0) for t in ts)
    np.testing.assert_allclose(clock.decayed(stored, at=ts[-1]), [expected])


def test_event_type_weights_rank_purchases_above_views() -> None:
    pop = DecayedPopularity(half_life_seconds=1e9)
    pop.learn(make_batch(items=[0, 0, 0, 1], weight=[1.0, 1.0, 1.0, 8.0]))
    assert pop.top(2).tolist() == [1, 0]


def test_covisitation_is_directional_and_session_bounded() -> None:
    cv = CoVisitation(neighbours=8, backward_weight=0.25)
    # session a -> b -> c; item d is seen alone in another session (no previous items)
    cv.learn(make_batch(items=[0, 1, 2, 3], prev_items=[[], [0], [1, 0], []]))
    items, scores = cv.similar(0, 5)
    assert items.tolist() == [1, 2]  # forward from a: b (distance 1) before c (distance 2)
    back_items, _ = cv.similar(2, 5)
    assert set(back_items.tolist()) == {0, 1}  # backward links exist, weaker
    assert cv.similar(3, 5)[0].size == 0  # never shared a session with anything
    assert np.isclose(scores.sum(), 1.0)


def test_space_saving_keeps_heavy_partners_in_a_full_row() -> None:
    cv = CoVisitation(neighbours=4, backward_weight=0.0)
    items, prev = [], []
    for step in range(200):  # item 0 is followed by 1 and 2 often, and 100 one-off items
        partner = 1 if step % 4 == 0 else 2 if step % 4 == 1 else 10 + step
        items.append(partner)
        prev.append([0])
    cv.learn(make_batch(items=items, prev_items=prev))
    top, _ = cv.similar(0, 2)
    assert set(top.tolist()) == {1, 2}


def test_aggregate_names_the_strongest_source() -> None:
    cv = CoVisitation(neighbours=8, backward_weight=0.0, row_exponent=1.0)
    cv.learn(make_batch(items=[1, 2, 2, 2], prev_items=[[0], [5], [5], [5]]))
    sources, weights = np.array([0, 5], dtype=np.int32), np.array([1.0, 0.5])
    items, scores = cv.aggregate(sources, weights)
    assert items.tolist() == [1, 2]
    assert scores.tolist() == [1.0, 0.5]
    source = cv.top_sources(sources, weights, np.array([1, 2, 7]))
    assert source.tolist() == [0, 1, -1]  # item 1 from item 0, item 2 from item 5, 7 from none


def test_compiled_aggregation_matches_a_plain_reading_of_the_rows() -> None:
    rng = np.random.default_rng(3)
    cv = CoVisitation(neighbours=16, probes=4)
    n = 60
    items = rng.integers(0, n, 3_000)
    prev = [rng.integers(0, n, int(rng.integers(0, 5))).tolist() for _ in range(3_000)]
    cv.learn(make_batch(items=items.tolist(), prev_items=prev))
    sources = np.array([3, 7, 7, 11, 200, 42], dtype=np.int32)  # a repeat, an unknown item
    weights = np.array([1.0, 0.7, 0.5, 0.4, 0.3, 0.2])
    expected: dict[int, float] = {}
    strongest: dict[int, tuple[float, int]] = {}
    for s, (src, w) in enumerate(zip(sources.tolist(), weights.tolist(), strict=True)):
        if src >= n:
            continue
        partners, shares = cv.neighbours_of(np.array([src]), cv.row_exponent)
        for j, share in zip(partners[0].tolist(), shares[0].tolist(), strict=True):
            if j < 0:
                continue
            expected[j] = expected.get(j, 0.0) + w * share
            if j not in strongest or w * share > strongest[j][0]:
                strongest[j] = (w * share, s)
    got, scores = cv.aggregate(sources, weights)
    assert got.tolist() == sorted(expected)
    np.testing.assert_allclose(scores, [expected[j] for j in sorted(expected)], rtol=1e-5)
    shown = np.array([*sorted(expected)[:5], 999])
    assert cv.top_sources(sources, weights, shown).tolist() == [
        strongest[j][1] if j in strongest else -1 for j in shown.tolist()
    ]
    ranked = got[np.lexsort((got, -scores))]  # best first, ties: lower index
    reached = cv.reach(sources, weights)  # unsorted, scored by lookups in the pass's marks
    user = SimpleNamespace(memo={cv.name: reached})  # the request's memoised aggregation
    assert cv.candidates(user, 7).tolist() == ranked[:7].tolist()  # type: ignore[arg-type]
    asked = np.array([*got[::2].tolist(), 999, -1, 59, *range(n)])  # some reach nothing
    want = np.array([expected.get(j, 0.0) for j in asked.tolist()])
    np.testing.assert_allclose(cv.score(user, asked), want, rtol=1e-5)  # type: ignore[arg-type]
    # the pass kept each partner's strongest source: explanations read it, as top_sources
    strongest_of = [strongest[j][1] if j in strongest else -1 for j in asked.tolist()]
    assert reached.sources_of(asked).tolist() == strongest_of  # type: ignore[union-attr]
    frozen = CoVisitation(neighbours=16, probes=4)
    frozen.load_frozen(cv.state_dict())  # reads the known sources' rows alone: same positions
    assert frozen.reach(sources, weights).sources_of(asked).tolist() == strongest_of  # type: ignore[union-attr]
    cv.reach(np.array([5, 6], dtype=np.int32), np.ones(2))  # this thread's scratch reused
    assert reached.marks.stamp != reached.stamp  # the lookups fall back to a binary search
    np.testing.assert_allclose(cv.score(user, asked), want, rtol=1e-5)  # type: ignore[arg-type]
    assert reached.sources_of(asked) is None  # and explanations to ``top_sources``


@pytest.mark.parametrize("spread", ["zipf", "uniform"])  # uniform: more items than the list
def test_cached_top_list_matches_a_full_sort_as_events_arrive(spread: str) -> None:
    rng = np.random.default_rng(5)
    pop = DecayedPopularity(half_life_seconds=50.0)
    for step in range(60):
        if spread == "zipf":
            items = rng.zipf(1.3, size=40) % 3000
        else:  # integer weights at one time per batch: many ties at the list's end
            items = rng.integers(0, 3000, size=120)
        pop.learn(make_batch(items=items.tolist(), ts=[step * 10.0] * items.shape[0]))
        if step % 3 == 1:
            continue  # several batches between reads: their touched items merge at once
        got = pop.top(1000)
        scores = pop.raw_scores()
        positive = np.flatnonzero(scores > 0)
        expected = positive[np.lexsort((positive, -scores[positive]))][:1000]
        assert got.tolist() == expected.tolist()


def test_discount_history_drops_sources_touched_before_a_drift() -> None:
    # rows summing to 1 and sources 1/sqrt(1 + position): the figures below are that arithmetic
    plain = {"row_exponent": 1.0, "source_exponent": 0.5}
    cv = CoVisitation(neighbours=8, backward_weight=0.0, **plain)
    # old taste: 0 -> 1; new taste: 5 -> 6
    cv.learn(make_batch(items=[1, 1, 6], prev_items=[[0], [0], [5]], ts=[0.0, 1.0, 50.0]))

    def user() -> UserView:  # looked at 5 just now (t=60), at 0 long ago (t=1)
        return UserView(
            0,
            np.array([5, 0], dtype=np.int32),
            np.zeros(2, dtype=np.int8),
            np.zeros(2, dtype=bool),
            recent_ts=np.array([60.0, 1.0]),
        )

    assert cv.candidates(user(), 2).tolist() == [6, 1]  # both sources count
    cv.discount_history(before=40.0, factor=0.0)
    items, scores = cv._for_user(user()).ordered()  # item 0 (t=1 < 40) gives nothing any more
    assert items.tolist() == [1, 6] and scores.tolist() == [0.0, 1.0]
    cv.discount_history(before=40.0, factor=0.5)
    items, scores = cv._for_user(user()).ordered()
    assert items.tolist() == [1, 6]
    np.testing.assert_allclose(scores, [0.5 / np.sqrt(2), 1.0])
    # the discount is part of the model's parameters: snapshots and rollbacks carry it
    restored = CoVisitation(neighbours=8, backward_weight=0.0, **plain)
    restored.load_state_dict(cv.state_dict())
    np.testing.assert_allclose(restored._for_user(user()).ordered()[1], scores)
    restored.check_finite()
    # without a discount nothing is stored (no -inf time among the parameters)
    assert "stale" not in CoVisitation().state_dict()
    CoVisitation().check_finite()
    with pytest.raises(ValueError):
        cv.discount_history(0.0, 1.5)


def test_row_exponent_below_one_lets_a_busy_item_speak_louder() -> None:
    # item 0 was followed once by item 1; item 5 three times by item 2 and once by item 3
    batch = make_batch(items=[1, 2, 2, 2, 3], prev_items=[[0], [5], [5], [5], [5]])
    sources, weights = np.array([0, 5], dtype=np.int32), np.array([1.0, 1.0])
    scores = {}
    for exponent in (1.0, 0.5):
        cv = CoVisitation(neighbours=8, backward_weight=0.0, row_exponent=exponent)
        cv.learn(batch)
        items, found = cv.aggregate(sources, weights)
        scores[exponent] = dict(zip(items.tolist(), found.tolist(), strict=True))
    assert scores[1.0][1] > scores[1.0][2]  # rows sum to 1: the rare item's one partner leads
    np.testing.assert_allclose([scores[0.5][1], scores[0.5][2]], [1.0, 1.5])
    # similar() stays a distribution over the row, whatever the exponent
    assert np.isclose(cv.similar(5, 5)[1].sum(), 1.0)


@pytest.mark.parametrize("exponent", [0.5, 1.0])
def test_recent_items_weigh_less_with_their_position(exponent: float) -> None:
    items = np.array([7, 3, 9], dtype=np.int32)
    user = UserView(0, items, np.zeros(3, np.int8), np.array([True, False, False]))
    expected = (1.0 + np.arange(3)) ** -exponent * np.array([2.0, 1.0, 1.0])
    np.testing.assert_allclose(recency_weights(user, exponent), expected)


@pytest.mark.parametrize(
    ("name", "value"), [("row_exponent", 1.5), ("row_exponent", -0.1), ("source_exponent", -1)]
)
def test_invalid_exponents_are_refused(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        CoVisitation(**{name: value})  # type: ignore[arg-type]


def test_event_count_decay_ignores_event_time_and_batching() -> None:
    # the same events, all at one instant, cut into batches two ways: on an event clock the
    # later events weigh more (half-life 4 events), on the time clock nothing decays
    items = [0] * 8 + [1] * 4
    whole = DecayedPopularity(half_life_events=4.0)
    whole.learn(make_batch(items=items))
    cut = DecayedPopularity(half_life_events=4.0)
    for k in range(0, len(items), 5):
        cut.learn(make_batch(items=items[k : k + 5]))
    seconds = DecayedPopularity(half_life_seconds=4.0)
    seconds.learn(make_batch(items=items))
    np.testing.assert_allclose(whole.raw_scores(), cut.raw_scores())
    assert whole.top(2).tolist() == [1, 0]  # four late events outweigh eight earlier ones
    assert seconds.top(2).tolist() == [0, 1]
    # item 0's events are 4..11 events before the last one, item 1's 0..3
    older = sum(2.0 ** (-d / 4) for d in range(4, 12))
    newer = sum(2.0 ** (-d / 4) for d in range(4))
    ratio = whole.raw_scores()[0] / whole.raw_scores()[1]
    assert ratio == pytest.approx(older / newer)
    assert whole.params() == {"half_life_events": 4.0}


def test_event_count_decay_survives_a_snapshot() -> None:
    first = CoVisitation(neighbours=4, half_life_events=3.0)
    first.learn(make_batch(items=[0, 1, 2], prev_items=[[], [0], [1, 0]]))
    copy = CoVisitation(neighbours=4, half_life_events=3.0)
    copy.load_state_dict(first.state_dict())
    later = make_batch(items=[0, 2], prev_items=[[], [0]])
    first.learn(later)
    copy.learn(later)
    np.testing.assert_array_equal(first.state_dict()["nbw"], copy.state_dict()["nbw"])
    # and the later link 0 -> 2 (events 3 and 4) now outweighs the early 0 -> 1 (event 1)
    items, _ = first.similar(0, 2)
    assert items.tolist()[0] == 2
