"""The recalibration policy, the drift record, alerts (with a real webhook receiver), the API."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from fastapi.testclient import TestClient

from freshrec import Engine
from freshrec.drift import Alerts, DriftEvent, Recalibration
from freshrec.drift.windows import fast_members
from freshrec.models import CoVisitation, DecayedPopularity, OnlineMF
from freshrec.models.ensemble import Ensemble
from freshrec.serving import create_app
from freshrec.settings import Settings
from freshrec.sim.scenarios import DriftScenario
from freshrec.testing import make_batch


def _learned_members() -> tuple[DecayedPopularity, DecayedPopularity, OnlineMF, Ensemble]:
    """A slow and a fast popularity and an MF that learned three events; the two popularities
    as an ensemble with equal priors."""
    slow = DecayedPopularity(86_400.0)
    (fast,) = fast_members(Settings(ensemble_fast_members={"popularity": 600.0}))
    mf = OnlineMF(factors=4, seed=1)
    batch = make_batch(items=[0, 1, 1], users=[0, 1, 0], ts=[0.0, 1.0, 2.0])
    for m in (slow, fast, mf):
        m.learn(batch)
    return slow, fast, mf, Ensemble([slow, fast], {"popularity": 1.0, "popularity_fast": 1.0})


def test_policy_forgets_shrinks_boosts_then_restores() -> None:
    slow, fast, mf, ens = _learned_members()
    before = slow.raw_scores().copy(), mf.state_dict()["user_factors"].copy()
    policy = Recalibration([slow, fast], mf, ens, ["popularity_fast"], 0.25, 0.5, 4.0, 100, 50)
    action = policy.act(1000)
    assert "forget x0.25" in action and "shrink" in action and "boost popularity_fast" in action
    np.testing.assert_allclose(slow.raw_scores(), 0.25 * before[0])
    np.testing.assert_allclose(mf.state_dict()["user_factors"], 0.5 * before[1])
    assert ens.weights["popularity_fast"] == pytest.approx(0.8)
    assert policy.act(1020) == "none (cooldown)"
    policy.tick(1099)
    assert ens.priors["popularity_fast"] == 4.0
    policy.tick(1100)
    assert ens.priors["popularity_fast"] == 1.0 and ens.weights["popularity_fast"] == 0.5


def test_policy_forgets_a_long_history_down_to_keep_events() -> None:
    """After a long history a quarter is still a lot: the factor shrinks so that what was
    learned before weighs at most ``keep_events`` events; a short history gets ``forget``."""
    slow, fast, mf, ens = _learned_members()
    pop = slow.raw_scores().copy()
    policy = Recalibration([slow, fast], mf, ens, forget=0.25, cooldown_events=50, keep_events=100)
    assert policy.learned(999) == 1000
    assert "forget x0.1 (popularity,popularity_fast)" in policy.act(999)  # 100 of 1,000 events
    np.testing.assert_allclose(slow.raw_scores(), 0.1 * pop)
    assert policy.kept == pytest.approx(100)
    assert policy.act(1020) == "none (cooldown)"
    assert policy.learned(1499) == pytest.approx(600)  # kept 100, then 500 more events
    restarted = Recalibration(
        [slow, fast], mf, ens, forget=0.25, cooldown_events=50, keep_events=100
    )
    restarted.load_state_dict(policy.state_dict())
    assert restarted.learned(1499) == pytest.approx(600)
    assert "forget x0.167 " in restarted.act(1499)
    np.testing.assert_allclose(slow.raw_scores(), 0.1 * pop / 6)
    short = Recalibration([slow], None, ens, forget=0.25, keep_events=100)
    assert "forget x0.25 " in short.act(199)  # 200 events: a quarter keeps 50
    off = Recalibration([slow], None, ens, forget=1.0, keep_events=100)
    assert "forget" not in off.act(10_000)  # drift_forget 1 turns forgetting off, cap or not
    with pytest.raises(ValueError, match="keep_events"):
        Recalibration([slow], None, ens, keep_events=-1)


def test_a_shift_of_the_category_mix_keeps_learned_weights_until_they_go_stale() -> None:
    """category_shift does the other moves but forgets nothing; a stale-knowledge signal
    within its cooldown then forgets (only that), and a second one within the cooldown of
    that forgetting does nothing."""
    slow, fast, mf, ens = _learned_members()
    pop, users = slow.raw_scores().copy(), mf.state_dict()["user_factors"].copy()
    policy = Recalibration([slow, fast], mf, ens, ["popularity_fast"], 0.25, 0.5, 4.0, 100, 50)
    action = policy.act(1000, "category_shift")
    assert action.startswith("learned weights kept (category mix only); shrink user factors")
    np.testing.assert_array_equal(slow.raw_scores(), pop)
    action = policy.act(1010, "popularity_hit")
    assert action == "forget x0.25 (popularity,popularity_fast); the other moves in cooldown"
    np.testing.assert_allclose(slow.raw_scores(), 0.25 * pop)
    np.testing.assert_allclose(mf.state_dict()["user_factors"], 0.5 * users)  # shrunk once
    assert policy.act(1020, "hit_rate:covisitation") == "none (cooldown)"
    assert policy.act(1030, "category_shift") == "none (cooldown)"
    assert "forget x0.25" in policy.act(1060, "hit_rate:ensemble")  # both cooldowns over


def test_policy_keeps_user_factors_when_the_catalogue_changed() -> None:
    """A category's items renamed (new_items:category=...) is a catalogue change: forget and
    boost as usual, but the shoppers' profiles stay; any other signal shrinks them."""
    slow, fast, mf, ens = _learned_members()
    pop, users = slow.raw_scores().copy(), mf.state_dict()["user_factors"].copy()
    policy = Recalibration([slow, fast], mf, ens, ["popularity_fast"], 0.25, 0.5, 4.0, 100, 50)
    action = policy.act(1000, "new_items:category=7")
    assert "forget x0.25" in action and "boost popularity_fast" in action
    assert "user factors kept (catalogue change)" in action and "shrink" not in action
    np.testing.assert_allclose(slow.raw_scores(), 0.25 * pop)
    np.testing.assert_array_equal(mf.state_dict()["user_factors"], users)
    assert "shrink user factors x0.5" in policy.act(2000, "hit_rate:mf")
    np.testing.assert_allclose(mf.state_dict()["user_factors"], 0.5 * users)


def test_policy_discounts_old_history_on_a_change_of_tastes_only() -> None:
    cv = CoVisitation(neighbours=8)
    cv.learn(make_batch(items=[1, 2], prev_items=[[0], [1]], ts=[0.0, 1.0]))
    ens = Ensemble([cv], {"covisitation": 1.0})
    policy = Recalibration([cv], None, ens, forget=1.0, cooldown_events=10, history=0.0)
    action = policy.act(100, "new_items:category=3", at_time=5.0)
    assert "history" not in action and "stale" not in cv.state_dict()  # catalogue: kept
    action = policy.act(200, "popularity_hit", at_time=9.0)
    assert "history before the detection x0 (covisitation)" in action
    np.testing.assert_array_equal(cv.state_dict()["stale"], [9.0, 0.0])
    assert "history" not in Recalibration([cv], None, ens, history=1.0).act(1, "x", 1.0)


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.bodies.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Receiver.bodies = []
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_alerts_post_to_the_webhook_on_the_edge(receiver: str) -> None:
    alerts = Alerts({"ctr": 0.05}, webhook_url=receiver)
    assert alerts.check("ctr", 0.2, 1, 1e9) is False
    assert alerts.check("ctr", 0.01, 2, 1e9) is True
    assert alerts.check("ctr", 0.02, 3, 1e9) is False  # still firing: no second alert
    alerts.drift(DriftEvent("adwin", "hit_rate:mf", 4, 1e9, "none"))
    alerts.flush()
    alerts.close()
    assert [b["kind"] for b in _Receiver.bodies] == ["below_threshold", "drift"]
    assert _Receiver.bodies[0]["metric"] == "ctr" and alerts.sent == 2


def test_drift_events_api_and_metrics() -> None:
    engine = Engine.open(None)
    engine.drift.record.add(DriftEvent("page_hinkley", "category_shift", 7, 1.7e9, "none"))
    with TestClient(create_app(engine, run_processor=False)) as client:
        body = client.get("/v1/drift/events").json()
        assert body == [
            {
                "detector": "page_hinkley",
                "signal": "category_shift",
                "at_event": 7,
                "at_time": 1.7e9,
                "action": "none",
            }
        ]
        metrics = client.get("/metrics").text
    assert (
        'freshrec_drift_detections_total{detector="page_hinkley",signal="category_shift"} 1.0'
        in metrics
    )
    engine.close()


@pytest.mark.parametrize("detection", [True, False])
def test_ctr_of_served_lists_feeds_its_signal_and_its_alert(
    caplog: pytest.LogCaptureFixture, detection: bool
) -> None:
    """Alerts watch live metrics whether or not drift detection runs."""
    engine = Engine.open(None, drift_ctr_block=4, alert_ctr_min=0.3, drift_detection=detection)
    events = [
        {"type": "view", "user_id": f"u{n % 5}", "item_id": f"i{n % 7}", "timestamp": 1e9 + n}
        for n in range(40)
    ]
    engine.ingest(events)
    engine.process()
    for n in range(4):
        engine.recommend(f"u{n}")
    engine.ingest(
        {"type": "click", "user_id": "u1", "item_id": "i2", "timestamp": 1e9 + 50,
         "recommendation_id": "r1"}
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        engine.process()
    assert engine.drift.last_values["ctr"] == 0.25  # 1 click on 4 lists served
    assert engine.alerts.firing["ctr"] and "ALERT below_threshold: ctr = 0.2500" in caplog.text
    engine.close()


def test_a_hit_rate_alert_fires_with_drift_detection_off() -> None:
    engine = Engine.open(
        None,
        drift_detection=False,
        alert_hit_rate_min=0.99,
        live_eval_every=10,
        live_eval_window=20,
    )
    engine.ingest(DriftScenario("stationary", seed=4, n_items=300, n_shoppers=100).take(3000))
    engine.process()
    assert engine.quality.tests >= 20 and engine.quality.hit_rates()["ensemble"] < 0.99
    assert engine.alerts.firing["hit_rate:ensemble"]
    assert engine.drift_events() == []  # no detector ran
    engine.close()


def test_event_window_members_start_low_and_are_boosted_after_a_change() -> None:
    engine = Engine.open(
        None,
        live_eval_every=20,
        ensemble_fast_members={},
        ensemble_recent_members={"covisitation": 2000, "popularity": 2000},
    )
    names = [m.name for m in engine.ensemble.members]
    assert names[-2:] == ["popularity_recent", "covisitation_recent"]
    priors = dict(engine.ensemble.priors)
    assert priors["covisitation_recent"] == pytest.approx(0.25 * priors["covisitation"])
    assert priors["popularity_recent"] == pytest.approx(0.25 * priors["popularity"])
    events = DriftScenario("stationary", seed=3, n_shoppers=300).take(4000)
    engine.ingest(events)
    engine.process()
    # the engine's policy acts on the event-window members as on the other short-window ones
    action = engine.drift.policy.act(4000, "popularity_hit", events[-1]["timestamp"])
    assert "boost popularity_recent,covisitation_recent x4" in action
    assert engine.ensemble.priors["covisitation_recent"] == pytest.approx(
        4 * priors["covisitation_recent"]
    )
    engine.close()
