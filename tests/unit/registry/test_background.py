"""Snapshots written by a forked child: exactly the state at the fork, whatever the processor
did meanwhile; a failed child loses nothing but that snapshot; close waits for it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from freshrec import Engine
from freshrec.registry import SnapshotStore
from freshrec.sim import ShopSimulator

SMALL = {
    "snapshot_every_events": 10**9,
    "snapshot_every_seconds": 10**9,
    "mf_factors": 8,
    "ranker_hash_bits": 12,
    "registry_gate_events": 0,
}


def engine_with(tmp_path: Path, events: int = 1500) -> tuple[Engine, ShopSimulator]:
    sim = ShopSimulator(n_items=300, n_shoppers=120, seed=3)
    engine = Engine.open(tmp_path, **SMALL)
    engine.ingest(sim.take(events))
    engine.process()
    return engine, sim


def test_the_child_writes_the_state_at_the_fork_while_the_parent_goes_on(
    tmp_path: Path,
) -> None:
    engine, sim = engine_with(tmp_path)
    p = engine.processor
    assert p.background_snapshots
    at_fork = {m.name: {k: v.copy() for k, v in m.state_dict().items()} for m in p.models}
    p.snapshot(background=True)
    assert p._forked is not None  # being written by the child
    engine.ingest(sim.take(1000))
    p.step()  # the parent learns more while the child writes (and reaps it if done)
    p.poll_snapshot(block=True)
    assert p.offset == 2500 and engine.model_version == "v1500"
    snap = p.snapshots.load_version("v1500")  # checksums verified
    for name, arrays in at_fork.items():
        for key, value in arrays.items():
            np.testing.assert_array_equal(snap.arrays[f"{name}/{key}"], value)
    assert any(
        not np.array_equal(m.state_dict()[k], at_fork[m.name][k])
        for m in p.models
        for k in at_fork[m.name]
    )  # the live models did move on
    engine.close()


def test_a_failed_child_loses_that_snapshot_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, sim = engine_with(tmp_path)
    p = engine.processor

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(SnapshotStore, "write", broken)
    with caplog.at_level(logging.ERROR):
        p.snapshot(background=True)
        p.poll_snapshot(block=True)
    assert "snapshot at offset 1500 not written" in caplog.text
    assert engine.versions() == []
    assert not list((tmp_path / "snapshots").glob(".tmp-*"))  # its folder removed
    monkeypatch.undo()
    engine.ingest(sim.take(500))
    engine.process()
    p.snapshot(background=True)
    engine.close()  # waits for the child, then its own final snapshot (nothing new: none)
    names = [v["version"] for v in Engine.open(tmp_path, **SMALL).versions()]
    assert names == ["v2000"]


def test_drain_writes_its_snapshots_in_place(tmp_path: Path) -> None:
    settings = {**SMALL, "snapshot_every_events": 500, "processor_batch_events": 500}
    with Engine.open(tmp_path, **settings) as engine:
        engine.ingest(ShopSimulator(n_items=300, n_shoppers=120, seed=4).take(1500))
        engine.process()
        assert [v["version"] for v in engine.versions()] == ["v1500", "v1000", "v500"]
        assert engine.processor._forked is None  # nothing left to register


def test_a_stuck_writer_is_killed_when_a_caller_must_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    engine, _ = engine_with(tmp_path)

    def stuck(*args: object) -> None:
        time.sleep(60)

    monkeypatch.setattr(SnapshotStore, "write", stuck)
    engine.processor.snapshot(background=True)
    forked = engine.processor._forked
    assert forked is not None and not forked.done()
    with caplog.at_level(logging.ERROR):
        assert forked.done(block=True, timeout=0.5)
        assert forked.finish() is None
    assert "still busy" in caplog.text and "not written" in caplog.text
    assert not list((tmp_path / "snapshots").glob(".tmp-*"))
    engine.processor._forked = None
    monkeypatch.undo()
    engine.close()
