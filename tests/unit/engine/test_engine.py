from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from freshrec import Engine, Event
from freshrec.errors import NotFound, StorageError
from tests.conftest import make_checkerboard


def view(user: str, item: str, ts: float, kind: str = "view", **extra: object) -> dict:
    return {"type": kind, "user_id": user, "item_id": item, "timestamp": ts, **extra}


def same(a: list, b: list) -> bool:
    """Same items and reasons, scores equal up to float rounding (batching sums differently)."""
    return [(r.item_id, r.reason) for r in a] == [(r.item_id, r.reason) for r in b] and all(
        x.score == pytest.approx(y.score, rel=1e-9) for x, y in zip(a, b, strict=True)
    )


def test_recommendations_follow_the_taste_of_the_session() -> None:
    with Engine.open() as engine:  # enough shoppers for every model (MF too) to learn the tastes
        engine.ingest(make_checkerboard(40))
        engine.process()
        engine.ingest([view("new", "a0", 1_750_000_000)])
        engine.process()
        recs = engine.recommend("new", k=2)
        assert isinstance(recs, list)  # the Python API's contract (DESIGN)
        assert [r.item_id for r in recs] == ["a1", "a2"]
        assert recs[0].reason == {"type": "because_you_viewed", "item_id": "a0"}
        assert recs[0].score >= recs[1].score


def test_exclude_recent_leaves_out_what_the_shopper_just_saw(checkerboard: list[dict]) -> None:
    for n, expected in ((0, True), (1, False)):
        with Engine.open(exclude_recent=n) as engine:
            engine.ingest([*checkerboard, view("v0", "a0", 1_700_001_000)])
            engine.process()
            got = {r.item_id for r in engine.recommend("v0", k=6)}
            assert ("a0" in got) is expected


def test_unknown_user_gets_popular_items(checkerboard: list[dict]) -> None:
    with Engine.open() as engine:
        engine.ingest([*checkerboard, view("x", "b2", 1_700_001_000, "purchase")])
        engine.process()
        recs = engine.recommend("someone-new", k=3)
        assert recs[0].item_id == "b2"
        # nothing personal to say about a stranger: popular, or popular in this context
        assert all(r.reason == {"type": "popular"} for r in recs)


def test_purchased_and_excluded_items_are_left_out(checkerboard: list[dict]) -> None:
    with Engine.open() as engine:
        engine.ingest([*checkerboard, view("u0", "a1", 1_700_001_000, "purchase")])
        engine.process()
        assert "a1" not in {r.item_id for r in engine.recommend("u0", k=10)}
        got = {r.item_id for r in engine.recommend("v0", k=10, exclude=["b1", "not-an-item"])}
        assert "b1" not in got and got


def test_event_objects_and_single_events_are_accepted() -> None:
    with Engine.open() as engine:
        assert engine.ingest(Event(type="view", user_id="u", item_id="i")).accepted == 1
        result = engine.ingest([{"type": "view", "user_id": "u"}, view("u", "j", 1e9)])
        assert result.accepted == 1 and result.errors[0][0] == 0
        assert engine.stats()["events_rejected"] == 1


def test_similar_items_and_unknown_item(checkerboard: list[dict]) -> None:
    with Engine.open() as engine:
        engine.ingest(checkerboard)
        engine.process()
        assert [r.item_id for r in engine.similar("a0", k=2)] == ["a1", "a2"]
        with pytest.raises(NotFound, match="item_id"):
            engine.similar("zzz")


def test_restart_restores_snapshot_then_replays_the_rest(
    tmp_path: Path, checkerboard: list[dict]
) -> None:
    with Engine.open(tmp_path) as engine:
        engine.ingest(checkerboard[:30])
        engine.process()
    # events appended after the last snapshot, never processed ("crash" before processing)
    engine = Engine.open(tmp_path)
    engine.ingest(checkerboard[30:])
    engine.log.close()  # what a crash leaves: the log, no final snapshot, the lock released
    engine._dir_lock.release()  # type: ignore[union-attr]
    assert len(list((tmp_path / "snapshots").iterdir())) == 1

    with Engine.open(tmp_path) as restarted, Engine.open() as reference:
        assert restarted.processor.offset == 30  # from the snapshot
        restarted.process()
        reference.ingest(checkerboard)
        reference.process()
        for user in ("u0", "v3", "nobody"):
            assert same(restarted.recommend(user), reference.recommend(user))
        assert restarted.stats()["events_accepted"] == len(checkerboard)


def test_damaged_snapshot_falls_back_to_full_replay(
    tmp_path: Path, checkerboard: list[dict]
) -> None:
    with Engine.open(tmp_path) as engine:
        engine.ingest(checkerboard)
        engine.process()
        before = engine.recommend("u1")
    (snapshot,) = (tmp_path / "snapshots").iterdir()
    data = snapshot / "arrays.npz"
    data.write_bytes(data.read_bytes()[:-20])  # truncated
    with Engine.open(tmp_path) as engine:
        assert engine.processor.offset == 0
        engine.process()
        assert engine.recommend("u1") == before


def test_background_processor_makes_events_visible_quickly(checkerboard: list[dict]) -> None:
    with Engine.open() as engine:
        engine.start()
        engine.ingest(checkerboard)
        assert engine.wait_processed(timeout=10)
        engine.ingest([view("fresh", "b0", 1_750_000_000)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            recs = engine.recommend("fresh", k=1)
            if recs and recs[0].reason.get("item_id") == "b0":
                break
            time.sleep(0.005)
        assert recs[0].item_id == "b1"
        assert engine.stats()["ready"] is True


def test_replayed_history_equals_live_state(checkerboard: list[dict]) -> None:
    with Engine.open() as live, Engine.open() as replayed:
        for event in checkerboard:  # one event at a time, as live traffic
            live.ingest(event)
            live.process()
        replayed.ingest(checkerboard)  # the same log in one go
        replayed.process()
        for user in ("u2", "v2", "x"):
            assert same(live.recommend(user), replayed.recommend(user))


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="type_weights"):
        Engine.open(type_weights={"teleport": 1.0})
    with pytest.raises(ValueError, match="popularity_half_life_seconds"):
        Engine.open(popularity_half_life_seconds=0)


def test_a_lost_log_is_refused_not_silently_restarted(tmp_path: Path, checkerboard: list) -> None:
    with Engine.open(tmp_path) as engine:
        engine.ingest(checkerboard)
        engine.process()
    for name in ("log.db", "log.db-wal", "log.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with pytest.raises(StorageError, match="ahead of the event log"):
        Engine.open(tmp_path)


def test_one_engine_per_data_directory(tmp_path: Path) -> None:
    with (
        Engine.open(tmp_path),
        pytest.raises(StorageError, match="in use by another freshrec process"),
    ):
        Engine.open(tmp_path)
    with Engine.open(tmp_path) as engine:  # released on close
        assert engine.stats()["events_accepted"] == 0


def test_a_diverging_model_is_never_served_and_is_counted(checkerboard: list[dict]) -> None:
    with Engine.open() as engine:
        engine.ingest(checkerboard)
        engine.process()
        before = [r.item_id for r in engine.recommend("u0", k=3)]
        engine.mf._Q[:] = np.nan  # what an exploding SGD step leaves behind
        recs = engine.recommend("u0", k=3)
        assert recs and all(np.isfinite(r.score) for r in recs)
        engine.ingest([view("u1", "a2", 1_700_002_000)])
        engine.process()  # the learner notices, the processor goes on without it
        info = {m["name"]: m for m in engine.models_info()["models"]}
        assert "non-finite" in info["mf"]["disabled"] and info["mf"]["errors"] >= 1
        assert info["covisitation"]["disabled"] is None
        assert [r.item_id for r in engine.recommend("u0", k=3)][:1] == before[:1]
        assert engine.stats()["events_processed"] == len(checkerboard) + 1
