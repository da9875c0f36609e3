"""Model lifecycle through a real engine on disk: versions, gate, promote, rollback exactness,
automatic rollback, damaged snapshots, retention, HTTP and CLI."""

from __future__ import annotations

import logging
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from freshrec import Engine
from freshrec.cli import app as cli_app
from freshrec.engine.lifecycle import fall_bound, paired_bound
from freshrec.errors import Conflict, NotFound, StorageError
from freshrec.registry import store as store_module
from freshrec.serving import create_app
from freshrec.sim import ShopSimulator

SMALL = {
    "snapshot_every_events": 10**9,
    "snapshot_every_seconds": 10**9,
    "mf_factors": 8,
    "ranker_hash_bits": 12,
    "drift_detection": False,
}
CONTEXT = {"timestamp": 1_700_100_000}
WATCHED = [f"shopper-{i:04d}" for i in range(1, 9)]  # the regulars


def shop(seed: int = 5) -> ShopSimulator:
    return ShopSimulator(n_items=300, n_shoppers=120, seed=seed, mean_gap_seconds=1.0)


def feed(engine: Engine, events: list[dict[str, Any]]) -> None:
    """Ingest and process; gates and watches decide at the start of a micro-batch, so the last
    event goes through alone (a server's processor meets the next batch soon enough)."""
    engine.ingest(events[:-1])
    engine.process()
    engine.ingest(events[-1:])
    engine.process()


def versions(engine: Engine, sim: ShopSimulator, events: int, count: int = 2) -> list[str]:
    """``count`` times: ``events`` more events, then a snapshot; the version serving after
    each."""
    out = []
    for _ in range(count):
        feed(engine, sim.take(events))
        engine.processor.snapshot()
        out.append(engine.model_version)
    return out


def timed_snapshot(engine: Engine) -> None:
    """What ``snapshot_every_seconds`` does in a server: a snapshot written by a forked child
    (``snapshot_in_background``), registered once it is reaped."""
    engine.processor.maybe_snapshot(force=True)
    engine.processor.poll_snapshot(block=True)


def recs(engine: Engine) -> list[list[tuple[str, float]]]:
    return [
        [(r.item_id, r.score) for r in engine.recommend(u, k=10, context=CONTEXT)] for u in WATCHED
    ]


def others(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events of shoppers not watched: the watched users' own state stays as it was."""
    return [e for e in events if e["user_id"] not in WATCHED]


def sabotage(engine: Engine, seed: int = 0) -> None:
    """A bad update: the learned parameters replaced by noise of the same shapes."""
    rng = np.random.default_rng(seed)
    for model in engine.models:
        arrays = {k: v.copy() for k, v in model.state_dict().items()}
        for key, value in arrays.items():
            if key in ("nbr",):
                value[:] = np.where(value >= 0, rng.integers(0, value.max() + 1, value.shape), -1)
            elif value.dtype.kind == "f" and key not in ("t_ref",) and value.ndim >= 1:
                value[:] = rng.standard_normal(value.shape).astype(value.dtype) * value.std()
        model.load_state_dict(arrays)


@pytest.fixture(params=["dense", "sparse"])
def storage(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Versions with co-visitation's tables stored whole, or as their set entries (as at a
    large catalogue): frozen copies then make rows dense as they read them, and a put-back
    copies them in a chunk at a time."""
    if request.param == "sparse":
        monkeypatch.setattr(store_module, "SPARSE_MIN_BYTES", 0)
    return request.param


def test_rollback_restores_exactly_what_a_version_served(tmp_path: Path, storage: str) -> None:
    sim = shop()
    with Engine.open(tmp_path, registry_gate_events=0, **SMALL) as engine:
        feed(engine, sim.take(4000))
        engine.processor.snapshot()
        first = engine.model_version
        served = recs(engine)
        feed(engine, others(sim.take(4000)))
        engine.processor.snapshot()
        second = engine.model_version
        assert second != first and recs(engine) != served  # the models moved on
        served_second = recs(engine)

        result = engine.rollback()
        assert result["restored"] == first and result["rolled_back"] == second
        assert recs(engine) == served  # identical items and scores
        statuses = {v["version"]: v["status"] for v in engine.versions()}
        assert statuses[second] == "rolled_back"
        assert statuses[engine.model_version] == "restored"

        engine.promote(second)
        assert recs(engine) == served_second
    with Engine.open(tmp_path, registry_gate_events=0, **SMALL) as restarted:
        assert recs(restarted) == served_second  # the restored parameters survive a restart


def test_gate_rejects_a_bad_update_and_promotes_a_good_one(tmp_path: Path, storage: str) -> None:
    sim = shop(6)
    settings = {**SMALL, "registry_gate_events": 1500, "registry_gate_every": 3}
    with Engine.open(tmp_path, registry_watch_events=0, **settings) as engine:
        feed(engine, sim.take(5000))
        engine.processor.snapshot()
        good = engine.model_version
        served = recs(engine)

        sabotage(engine)
        engine.processor.snapshot()  # the bad candidate
        bad = engine.versions()[0]["version"]  # the newest
        assert engine.model_version == good and engine.lifecycle.gate is not None
        feed(engine, others(sim.take(2000)))  # held-back events: the gate decides
        entry = next(v for v in engine.versions() if v["version"] == bad)
        assert entry["status"] == "rejected", entry["gate"]
        assert entry["gate"]["candidate"] < entry["gate"]["current"] - 0.02
        assert entry["gate"]["bound"] < -0.02  # worse beyond the tolerance, with confidence
        restored = next(v for v in engine.versions() if v["current"])
        assert restored["restored_from"] == good and restored["status"] == "restored"

        feed(engine, sim.take(3000))
        engine.processor.snapshot()  # an honest update
        candidate = engine.versions()[0]["version"]
        feed(engine, sim.take(2000))
        entry = next(v for v in engine.versions() if v["version"] == candidate)
        assert entry["status"] == "promoted", entry
        assert entry["gate"]["candidate"] >= entry["gate"]["current"] - 0.02
        assert engine.model_version == candidate
    assert served  # (the watched users had recommendations at the good version)


@pytest.mark.parametrize("drifts_before", [0, 3])
def test_live_hit_rate_falling_after_a_promotion_rolls_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, drifts_before: int
) -> None:
    """Drifts detected before the watch began do not explain its fall: only new ones do."""
    sim = shop(7)
    # the baseline (the live hit rate) measured on about as many tests as the watch
    settings = {**SMALL, "registry_gate_events": 0, "registry_gate_every": 3, "live_eval_every": 3}
    with Engine.open(
        tmp_path, registry_watch_events=1500, registry_rollback_drop=0.05, **settings
    ) as engine:
        engine.lifecycle.drift_count = lambda: drifts_before
        feed(engine, sim.take(5000))
        engine.processor.snapshot()
        before = engine.model_version
        feed(engine, sim.take(2000))  # the first version's watch ends quietly
        engine.processor.snapshot()
        promoted = engine.model_version
        assert promoted != before
        sabotage(engine, seed=1)  # goes bad after its promotion, while watched
        with caplog.at_level(logging.WARNING):
            feed(engine, others(sim.take(2000)))
        assert "rolling back" in caplog.text
        current = next(v for v in engine.versions() if v["current"])
        assert current["restored_from"] == before
        statuses = {v["version"]: v["status"] for v in engine.versions()}
        assert statuses[promoted] == "rolled_back"


def test_the_gate_and_the_watch_act_on_evidence_not_on_noise() -> None:
    z = NormalDist().inv_cdf(0.95)
    # 90 tests, the candidate 2 hits behind (5 hits alone, the current 7): the measured
    # difference (-0.022) is past a tolerance of 0.02, but well within the noise of 90 tests
    assert paired_bound(90, 5, 7, z) > -0.02
    assert paired_bound(90, 5, 7, 0.0) == pytest.approx(-2 / 90)  # the plain rule rejects it
    assert paired_bound(500, 10, 80, z) < -0.1  # a clearly worse candidate
    assert paired_bound(500, 0, 0, z) == 0.0  # both always agree: no difference at all
    # a watch: 0.30 over 200 tests, then 0.22 over 100 is a fall of 0.08, not surely past 0.05
    assert fall_bound(0.30, 200, 0.22, 100, z) < 0.05 < fall_bound(0.30, 200, 0.22, 100, 0.0)
    assert fall_bound(0.30, 2000, 0.10, 1000, z) > 0.15


def test_damaged_snapshots_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sim = shop(8)
    with Engine.open(tmp_path, registry_gate_events=0, snapshots_kept=3, **SMALL) as engine:
        made = versions(engine, sim, 1500, 3)
        assert engine.lifecycle.book.history == made
    # damage the middle version: a rollback skips it, with a log line, to the one before
    folder = tmp_path / "snapshots" / f"{int(made[1][1:]):015d}"
    data = (folder / "arrays.npz").read_bytes()
    (folder / "arrays.npz").write_bytes(data[: len(data) // 2])
    with Engine.open(tmp_path, registry_gate_events=0, **SMALL) as engine:
        with caplog.at_level(logging.WARNING):
            result = engine.rollback()
        assert result == {
            "model_version": engine.model_version,
            "restored": made[0],
            "rolled_back": made[2],
        }
        assert "skipping damaged version" in caplog.text
        # marked damaged (the scale-out test lists it so), then pruned with the rollback's
        # snapshot, and the book forgets what is no longer stored
        assert made[1] not in {v["version"] for v in engine.versions()}
        assert made[1] not in engine.lifecycle.book.status
        with pytest.raises(NotFound):
            engine.promote("v999999")
    # damage the newest snapshot (the restored one): a restart skips it with a log line, and
    # the rolled-back version too, and builds the state from an intact snapshot or the log
    newest = sorted((tmp_path / "snapshots").iterdir())[-1]
    (newest / "arrays.npz").write_bytes(b"garbage")
    caplog.clear()
    with caplog.at_level(logging.WARNING), Engine.open(tmp_path, **SMALL) as engine:
        assert f"skipping damaged snapshot {newest}" in caplog.text
        assert f"version {made[2]} was rolled_back" in caplog.text
        engine.process()
        assert engine.processor.offset == 4500


def test_retention_prunes_old_versions_but_keeps_rollback_targets(tmp_path: Path) -> None:
    sim = shop(9)
    with Engine.open(
        tmp_path, registry_gate_events=0, snapshots_kept=1, registry_keep_promoted=2, **SMALL
    ) as engine:
        for _ in range(5):
            feed(engine, sim.take(800))
            engine.processor.snapshot()
        names = [v["version"] for v in engine.versions()]
        assert names == engine.lifecycle.book.history[::-1]  # the two promoted, newest first
        assert len(names) == 2
        assert set(engine.lifecycle.book.status) == set(names)  # the book forgets the pruned
        assert engine.lifecycle.store.names() == names  # what the book is trimmed by
        engine.rollback()


def test_put_backs_at_one_offset_never_reuse_a_pruned_versions_name(tmp_path: Path) -> None:
    """Promote and roll back with no event in between: every restored snapshot is written at
    the same offset, the older ones pruned. Each gets a new name, newer than the last, so the
    one just written is kept and is what serves."""
    sim = shop(12)
    with Engine.open(tmp_path, registry_gate_events=0, snapshots_kept=2, **SMALL) as engine:
        first, second = served = versions(engine, sim, 800)
        for target in (first, second):
            engine.promote(target)
            served.append(engine.model_version)
        engine.rollback()
        served.append(engine.model_version)
        assert len(set(served)) == len(served)  # no name given twice
        current = engine.model_version
        assert current in engine.lifecycle.store.names()  # written and kept
        assert [v["version"] for v in engine.versions() if v["current"]] == [current]


def test_http_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = shop(10)
    engine = Engine.open(tmp_path, registry_gate_events=0, **SMALL)
    with TestClient(create_app(engine, run_processor=False)) as client:
        assert client.post("/v1/models/rollback").status_code == 409
        first, second = versions(engine, sim, 1500)
        body = client.get("/v1/models").json()
        assert [v["version"] for v in body["versions"]] == [second, first]
        assert set(body["versions"][0]) >= {"version", "created_at", "events_seen", "metrics"}
        assert body["versions"][0]["current"] and body["model_version"] != first
        r = client.post("/v1/models/rollback")
        assert r.status_code == 200 and r.json()["restored"] == first
        r = client.post("/v1/models/v12/promote")
        assert r.status_code == 404 and "version" in r.json()["error"]
        r = client.post(f"/v1/models/{second}/promote")
        assert r.status_code == 200 and r.json()["restored"] == second
    engine.close()
    for key, value in {**SMALL, "registry_gate_events": 0}.items():  # how the CLI gets them
        monkeypatch.setenv(f"FRESHREC_{key.upper()}", str(value).lower())
    runner = CliRunner()
    out = runner.invoke(cli_app, ["models", "list", "--data-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert f"restored (from {second})" in out.output and "*" in out.output
    out = runner.invoke(cli_app, ["models", "rollback", "--data-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    out = runner.invoke(cli_app, ["models", "promote", "v1", "--data-dir", str(tmp_path)])
    assert out.exit_code == 1 and "404" in out.output
    for folder in (tmp_path / "snapshots").iterdir():
        (folder / "meta.json").write_text("{")  # unreadable metadata: still listed
    out = runner.invoke(cli_app, ["models", "list", "--data-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    rows = [line.lstrip("* ").split() for line in out.output.splitlines()[1:]]
    assert rows and all(row[1:3] == ["-", "-"] for row in rows), out.output


def test_in_memory_engine_has_no_versions() -> None:
    with Engine.open() as engine:
        assert engine.versions() == [] and engine.model_version == "live"
        with pytest.raises(Conflict):
            engine.rollback()


def test_the_first_processing_of_new_events_after_open_is_not_a_replay(tmp_path: Path) -> None:
    """Events ingested after the engine opened are new: their first snapshot is promoted (no
    version serves yet) -- the open's replay covers only what the log held before."""
    with Engine.open(tmp_path, snapshot_every_events=1000, registry_gate_events=0) as engine:
        engine.ingest(shop(13).take(3000))
        engine.process()
        assert engine.model_version == "v3000"
        assert [(v["version"], v["status"]) for v in engine.versions()] == [("v3000", "promoted")]
    # reopened with nothing new in the log: the replay writes no new version
    with Engine.open(tmp_path, snapshot_every_events=1000, registry_gate_events=0) as engine:
        engine.process()
        assert engine.model_version == "v3000"


GATED = {
    **SMALL,
    "registry_gate_every": 10,
    "registry_gate_min_tests": 5,
    "registry_watch_events": 0,
    "registry_gate_tolerance": 1.0,  # every gate that ends promotes: these tests are about when
}


def test_a_gate_that_ended_decides_before_the_next_snapshot(tmp_path: Path) -> None:
    """A gate whose events are all in when a snapshot falls due (here within the same
    micro-batch) is decided first, so the new snapshot starts the next gate."""
    settings = {**GATED, "snapshot_every_events": 1000, "registry_gate_events": 600}
    with Engine.open(tmp_path, processor_batch_events=500, **settings) as engine:
        engine.ingest(shop(14).take(5000))
        engine.process()
        status = {v["version"]: v["status"] for v in engine.versions()}
        book = engine.lifecycle.book.status
    assert "superseded" not in status.values()
    assert all(book[v]["status"] == "promoted" for v in ("v2000", "v3000", "v4000"))
    assert all(book[v]["gate"]["events"] >= 600 for v in ("v2000", "v3000", "v4000"))


def test_snapshots_more_often_than_a_gate_ends_do_not_cut_it_short(tmp_path: Path) -> None:
    """A quiet shop: a timed snapshot every 300 events, gates of 1,000. The gate runs to its
    end; the snapshots meanwhile are restore points; the next one after it is gated."""
    sim = shop(15)
    with Engine.open(tmp_path, registry_gate_events=1000, **GATED) as engine:
        for _ in range(12):
            feed(engine, sim.take(300))
            timed_snapshot(engine)
        book = engine.lifecycle.book.status
        statuses = [book[v]["status"] for v in engine.lifecycle.book.history]
        waited = [v for v, e in book.items() if "during_gate_of" in e]
    assert len(engine.lifecycle.book.history) >= 3  # the first, then gated ones promoted
    assert set(statuses) == {"promoted"}
    assert "superseded" not in {e["status"] for e in book.values()}
    assert waited and all(book[v]["status"] == "candidate" for v in waited)
    gated = engine.lifecycle.book.history[1:]
    assert all(book[v]["gate"]["events"] >= 1000 for v in gated)


def test_a_rejected_gate_supersedes_the_versions_written_while_it_ran(tmp_path: Path) -> None:
    sim = shop(16)
    settings = {**GATED, "registry_gate_tolerance": 0.0, "snapshots_kept": 10}  # none pruned
    with Engine.open(tmp_path, registry_gate_events=1000, **settings) as engine:
        feed(engine, sim.take(1500))
        engine.processor.snapshot()  # the first version: promoted
        sabotage(engine)
        engine.processor.snapshot()  # the bad candidate: its gate starts
        bad = engine.lifecycle.gate.version  # type: ignore[union-attr]
        feed(engine, others(sim.take(400)))
        timed_snapshot(engine)  # written while the gate runs
        during = engine.lifecycle.gate.followers[-1]  # type: ignore[union-attr]
        feed(engine, others(sim.take(1000)))
        timed_snapshot(engine)
        book = engine.lifecycle.book.status
    assert book[bad]["status"] == "rejected"
    assert book[during]["status"] == "superseded"


@pytest.mark.parametrize("meta", ['{"offset": 999999, "sha256": {}}', "[1, 2]", "{"])
def test_a_damaged_meta_json_is_caught_and_listed_damaged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, meta: str
) -> None:
    """meta.json carries the checksums of the others but none of its own: an offset that is
    not its folder's, or metadata that is not an object, makes the snapshot damaged -- the
    engine starts from the one before (and replays the log after it), never from a wrong
    offset -- and the listing says so."""
    sim = shop(17)
    with Engine.open(tmp_path, registry_gate_events=0, snapshots_kept=3, **SMALL) as engine:
        for _ in range(2):
            feed(engine, sim.take(1000))
            engine.processor.snapshot()
        expected = recs(engine)
        newest = engine.model_version
    folder = tmp_path / "snapshots" / f"{int(newest[1:]):015d}"
    (folder / "meta.json").write_text(meta)
    with caplog.at_level(logging.WARNING), Engine.open(tmp_path, **SMALL) as engine:
        assert f"skipping damaged snapshot {folder}" in caplog.text
        engine.process()
        assert engine.processor.offset == 2000
        assert recs(engine) == expected  # rebuilt from the older snapshot and the log
        status = {v["version"]: v["status"] for v in engine.versions()}
        assert status[newest] == "damaged"


def test_a_servers_gate_loads_its_versions_off_the_processor_thread(tmp_path: Path) -> None:
    """In a server (``Engine.start``) the two frozen versions load in a thread; the gate
    tests from the first micro-batch after they are in, and decides as ever."""
    sim = shop(18)
    with Engine.open(tmp_path, registry_gate_events=600, **GATED) as engine:
        versions(engine, sim, 800, 1)  # the first: promoted
        engine.lifecycle.background_gates = True  # what Engine.start sets
        engine.processor.snapshot()
        gate = engine.lifecycle.gate
        assert gate is not None and gate.tester is None and gate.loading is not None
        gate.loading.join(30)
        feed(engine, sim.take(300))  # its first micro-batch takes the loaded versions in
        assert gate.tester is not None and gate.start == 800
        feed(engine, sim.take(700))
        assert engine.lifecycle.book.status[gate.version]["status"] == "promoted"
        assert engine.lifecycle.book.status[gate.version]["gate"]["events"] >= 600


def test_a_gate_whose_versions_cannot_load_in_the_background_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim = shop(19)
    with Engine.open(tmp_path, registry_gate_events=600, **GATED) as engine:
        versions(engine, sim, 800, 1)
        engine.lifecycle.background_gates = True
        engine.processor.snapshot()
        gate = engine.lifecycle.gate
        assert gate is not None and gate.loading is not None
        gate.loading.join(30)
        gate.loading.rankers = None
        gate.loading.failed = ("v800", StorageError("version v800 is damaged"))
        with caplog.at_level(logging.WARNING):
            feed(engine, sim.take(100))
        assert engine.lifecycle.gate is None and "gate skipped" in caplog.text
        assert engine.lifecycle.book.status[gate.version]["status"] == "promoted"
        assert engine.lifecycle.book.status["v800"]["status"] == "damaged"
