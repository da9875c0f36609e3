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
    assert "forget" in first.action and "boost popularity_fast" in first.action
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
