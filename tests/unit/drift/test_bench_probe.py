"""The drift benchmark's Recall@10 probe tests every event without changing what the engine does."""

from __future__ import annotations

import numpy as np

from bench.drift import Probe
from freshrec import Engine
from freshrec.sim.scenarios import DriftScenario


def _run(events: list[dict], probe: bool) -> tuple[Engine, Probe | None]:
    engine = Engine.open(None, live_eval_every=20)
    p = None
    if probe:
        p = Probe(engine)
        engine.processor.monitors.insert(0, p)
    for i in range(0, len(events), 2500):
        engine.ingest(events[i : i + 2500])
        engine.process()
    return engine, p


def test_the_probe_is_read_only_and_dense() -> None:
    events = DriftScenario("abrupt", seed=3, shift_at=4000, n_shoppers=300).take(8000)
    plain, _ = _run(events, probe=False)
    probed, probe = _run(events, probe=True)
    assert probe is not None
    assert probed.quality.tests == plain.quality.tests > 0
    np.testing.assert_array_equal(
        probed.quality.state_dict()["hits"], plain.quality.state_dict()["hits"]
    )
    assert probed.drift_events() == plain.drift_events()
    assert probed.ensemble.weights == plain.ensemble.weights
    # every testable event, not one in 20: many more tests than live quality ran
    assert len(probe.tested) > 10 * plain.quality.tests
    offsets = [o for o, _ in probe.tested]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    plain.close()
    probed.close()
