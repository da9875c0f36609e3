"""The drift benchmark's Recall@10 probe tests every event without changing what the engine does."""

from __future__ import annotations

import numpy as np
import pytest

from bench.drift import BATCH, DATA, Probe, reset, run, shift_end, taobao_with_shift
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


def test_the_bounds_reset_leaves_every_model_as_a_new_engines() -> None:
    events = DriftScenario("abrupt", seed=3, shift_at=3000, n_shoppers=300).take(4000)
    engine, _ = _run(events, probe=False)
    learned = {m.name: m.state_dict() for m in engine.processor.models}
    reset(engine, float(events[3000]["timestamp"]))
    for model in engine.processor.models:
        state, new = model.state_dict(), type(model)(**model.params()).state_dict()
        assert set(state) - set(new) <= {"stale"}  # co-visitation's history discount
        for key in new:
            np.testing.assert_array_equal(state[key], new[key], err_msg=f"{model.name}.{key}")
        assert any(  # it had learned something that is gone now
            learned[model.name][k].shape != new[k].shape
            or not np.array_equal(learned[model.name][k], new[k])
            for k in new
        ), model.name
    covis = next(m for m in engine.processor.models if m.name == "covisitation")
    assert covis._stale_weight == 0.0 and covis._stale_before == events[3000]["timestamp"]
    engine.close()


def test_the_bound_run_resets_at_a_batch_boundary_where_the_shift_is_complete() -> None:
    assert shift_end("abrupt", 50_000, 100_000) == 50_000
    assert shift_end("gradual", 50_000, 100_000) == 60_000  # after the 10,000-event ramp
    assert shift_end("gradual", 20_000, 40_000) == 25_000 == 5 * BATCH  # 24,000, rounded up
    with pytest.raises(ValueError, match="multiple"):
        run([], False, reset_at=BATCH + 1)


@pytest.mark.skipif(not (DATA / "userbehavior_user_sample.csv").exists(), reason="no Taobao data")
def test_the_permuted_taobao_stream_swaps_known_items_inside_their_categories() -> None:
    plain, mid = taobao_with_shift(None, "none")
    permuted, at = taobao_with_shift(None, "permute")
    assert at == mid and len(permuted) == len(plain)
    assert permuted[:mid] == plain[:mid]  # nothing changes before the shift
    item_category = {e["item_id"]: e["context"]["category"] for e in plain[:mid]}
    swapped = 0
    for new, old in zip(permuted[mid:], plain[mid:], strict=True):
        assert new["context"] == old["context"] and new["user_id"] == old["user_id"]
        if new["item_id"] != old["item_id"]:
            swapped += 1
            # both ids known before the shift, in the same category: still tested after it
            assert item_category[new["item_id"]] == item_category[old["item_id"]]
            assert item_category[old["item_id"]] == old["context"]["category"]
    assert swapped > 0.1 * (len(plain) - mid)
    # the same ids are used, only their meaning changes
    assert {e["item_id"] for e in permuted} <= {e["item_id"] for e in plain}
