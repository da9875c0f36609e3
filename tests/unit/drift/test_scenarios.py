"""Detection on the simulator's drift scenarios, through a real engine (in memory)."""

from __future__ import annotations

import pytest

from freshrec import Engine
from freshrec.sim.scenarios import DriftScenario

N, SHIFT = 60_000, 30_000


def run(kind: str, n: int = N, **settings: object) -> Engine:
    scenario = DriftScenario(kind, seed=4, shift_at=SHIFT, span=10_000, n_shoppers=1000)
    engine = Engine.open(None, live_eval_every=100, **settings)
    for _ in range(0, n, 5000):
        engine.ingest(scenario.take(5000))
        engine.process()
    return engine


@pytest.mark.parametrize("kind", ["abrupt", "new_category"])
def test_an_abrupt_shift_is_detected_within_2000_events(kind: str) -> None:
    engine = run(kind)
    events = engine.drift_events()
    assert events, "no drift detected"
    first = events[0]
    assert SHIFT <= first.at_event <= SHIFT + 2000, events
    assert "boost popularity_fast" in first.action
    soon = [e for e in events if e.at_event <= SHIFT + 2000]
    if kind == "abrupt":  # the popular items stopped drawing the events: what was learned goes
        assert any("forget" in e.action for e in soon), soon
    else:  # a new category drew half of the traffic: the rest of what was learned holds
        assert not any("forget" in e.action for e in events), events
        assert "learned weights kept (category mix only)" in first.action
    engine.close()


def test_a_gradual_shift_is_detected_while_it_happens() -> None:
    engine = run("gradual")
    events = engine.drift_events()
    assert events and SHIFT <= events[0].at_event <= SHIFT + 10_000, events
    engine.close()


def test_no_alarm_on_a_stationary_stream() -> None:
    engine = run("stationary")
    assert engine.drift_events() == []
    engine.close()


def test_recalibration_off_records_without_acting() -> None:
    engine = run("abrupt", n=35_000, drift_recalibrate=False)
    events = engine.drift_events()
    assert events and {e.action for e in events} == {"none"}
    assert engine.ensemble.priors["popularity_fast"] == engine.ensemble.priors["popularity"]
    engine.close()


def test_renamed_items_of_one_category_are_detected_within_2000_events() -> None:
    # the injected shift of the real-data benchmark: from the midpoint on, the items of the
    # busiest category appear under new ids (a small share of all traffic)
    scenario = DriftScenario("stationary", seed=4, n_shoppers=1000)
    events = scenario.take(N)
    counts: dict[str, int] = {}
    for e in events[:SHIFT]:
        counts[e["context"]["category"]] = counts.get(e["context"]["category"], 0) + 1
    busiest = max(counts, key=counts.__getitem__)
    for e in events[SHIFT:]:
        if e["context"]["category"] == busiest:
            e["item_id"] = "renamed-" + e["item_id"]
    engine = Engine.open(None, live_eval_every=100)
    for i in range(0, N, 5000):
        engine.ingest(events[i : i + 5000])
        engine.process()
    found = [e for e in engine.drift_events() if e.at_event >= SHIFT]
    assert found and found[0].at_event <= SHIFT + 2000, engine.drift_events()
    assert not [e for e in engine.drift_events() if e.at_event < SHIFT]
    # a catalogue change: the policy forgets and boosts but keeps the shoppers' profiles
    assert found[0].signal.startswith("new_items:category="), found[0]
    assert "forget" in found[0].action and "user factors kept" in found[0].action
    engine.close()


def test_a_restart_keeps_a_change_that_is_building_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Detectors are in the snapshot: an engine restarted just after a shift began detects it
    where one that ran through does (a restarted detector that learned its signal afresh would
    still be warming up)."""
    cut, end = SHIFT + 500, SHIFT + 3000

    def feed(engine: Engine, scenario: DriftScenario, upto: int, start: int) -> None:
        for at in range(start, upto, 500):
            engine.ingest(scenario.take(min(500, upto - at)))
            engine.process()

    def scenario() -> DriftScenario:
        return DriftScenario("abrupt", seed=4, shift_at=SHIFT, span=10_000, n_shoppers=1000)

    through = Engine.open(None, live_eval_every=100)
    sim = scenario()
    feed(through, sim, end, 0)
    expected = [(e.at_event, e.signal) for e in through.drift_events()]
    through.close()
    assert expected and expected[0][0] > cut, expected  # the first detection is after the cut

    sim = scenario()
    with Engine.open(tmp_path, live_eval_every=100) as engine:
        feed(engine, sim, cut, 0)
        before = {s: d.inputs().tolist() for s, d in engine.drift.detectors.items()}
    with Engine.open(tmp_path, live_eval_every=100) as engine:
        assert {s: d.inputs().tolist() for s, d in engine.drift.detectors.items()} == before
        feed(engine, sim, end, cut)
        assert [(e.at_event, e.signal) for e in engine.drift_events()] == expected
