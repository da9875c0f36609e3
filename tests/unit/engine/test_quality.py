from __future__ import annotations

import numpy as np

from freshrec import Engine


def stream(n_users: int = 40, steps: int = 30, hot: int = 15) -> list[dict]:
    """Every user walks the same chain i0 -> i1 -> ... (co-visitation predicts the next item),
    after 30 other shoppers made ``hot`` items more popular than any step of the chain."""
    t = 1_700_000_000.0
    events = []
    for n in range(30):
        for h in range(hot):
            events.append({"type": "view", "user_id": f"n{n}", "item_id": f"h{h}", "timestamp": t})
            t += 1
    for step in range(steps):
        for u in range(n_users):
            events.append(
                {"type": "view", "user_id": f"u{u}", "item_id": f"i{step}", "timestamp": t}
            )
            t += 1
    return events


def test_live_quality_tests_sampled_events_before_learning_them() -> None:
    # in a chain the next item is always one not viewed yet: leave the viewed ones out, or
    # (exclude_recent=0, flatter co-visitation weights since c34eb14) the backward partners
    # of the last ten items fill the top ten and co-visitation's hit rate drops to ~0.4
    with Engine.open(live_eval_every=7, live_eval_window=50, exclude_recent=10) as engine:
        events = stream()
        engine.ingest(events)
        engine.process()
        info = engine.models_info()
        rates = {m["name"]: m["hit_rate"] for m in info["models"]}
        # the learning models predict the chain; popularity lags one step behind it
        best = max(rates, key=rates.__getitem__)
        assert rates[best] > 0.6 and rates["popularity"] < 0.5
        assert rates["covisitation"] > rates["popularity"]
        assert info["ensemble"]["hit_rate"] > 0.6
        weights = {m["name"]: m["weight"] for m in info["models"]}
        assert weights[best] > weights["popularity"]
        assert 0 < info["live_eval"]["tests"] <= len(events) // 7 + 1


def test_sampling_is_by_offset_so_batching_does_not_matter() -> None:
    events = stream(n_users=10, steps=12)
    with Engine.open(live_eval_every=3) as one, Engine.open(live_eval_every=3) as many:
        one.ingest(events)
        one.process()
        for k in range(0, len(events), 17):
            many.ingest(events[k : k + 17])
            many.process()
        assert one.models_info() == many.models_info()
        a, b = one.quality.state_dict(), many.quality.state_dict()
        assert all(np.array_equal(a[key], b[key]) for key in a)


def test_quality_and_weights_survive_a_restart(tmp_path) -> None:
    with Engine.open(tmp_path, live_eval_every=5) as engine:
        engine.ingest(stream())
        engine.process()
        before = engine.models_info()
        recs = engine.recommend("u1")
    with Engine.open(tmp_path, live_eval_every=5) as engine:
        assert engine.models_info() == before
        assert engine.recommend("u1") == recs
