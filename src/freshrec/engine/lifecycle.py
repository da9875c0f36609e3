"""Model lifecycle: versions, the validation gate, promotion, rollback (manual and automatic).

Every snapshot the processor writes is a *version* (``v<offset>``) with metadata: when it was
written, events seen (its log offset), the live metrics at that moment (each model's prequential
hit rate over the live-quality window) and the ensemble weights. The models keep learning online
and serve as they learn; the lifecycle decides which versions are trusted restore points and puts
the models back on one when an update goes bad:

- **gate**: a new snapshot is a *candidate*. For the next ``gate_events`` events -- held back from
  both, as neither has learned them -- every ``gate_every``-th event is tested against a frozen copy
  of the candidate and a frozen copy of the current version (same online state, same exclusions,
  top-``k``). The candidate is promoted if its hit rate is not below the current one's by more
  than ``tolerance``; otherwise it is rejected and the models are put back on the current
  version's exact parameters.
- **watch**: after a promotion, the live ensemble is tested the same way for ``watch_events``
  events; if its hit rate falls more than ``rollback_drop`` below the rate that got the version
  promoted, the models roll back to the version before -- unless a drift detector fired
  meanwhile (then the world changed, not the model, and rolling back would not help).
- **promote / rollback** by hand: load that version's parameters (checksums verified; a damaged
  version is skipped with a log line), from a registry book (``registry.json``) that remembers
  the promotion history.

Putting a version back loads its arrays into the live models (exactly: recommendations are those
it served, for the same online state) and writes a snapshot at once (status ``restored``), so a
restart resumes from the restored parameters. The frozen copies exist only while a gate runs;
they read their versions' snapshots in place (memory-mapped, ``freshrec.registry.mapped``):
the rows a test reads, released after it, not a copy of every model. A version put back is
copied a chunk at a time into the arrays the models hold. ``gate_events = 0`` promotes every
snapshot unchecked.
No gate starts for a snapshot of the log replayed after a start (up to ``replay_end``, the
log's end when the engine opened: it re-creates what was served before) nor for the final one
of a close: those stay candidates. A snapshot written while a gate runs does not cut the gate
short -- snapshots come every minute, a gate may need more events than a quiet shop sees in one
-- it stays a candidate (a restore point), superseded if the gate rejects the version it
followed; the next snapshot after the decision starts the next gate. A gate whose events are
all in decides before the snapshot that follows them (``settle``), not only at the next
micro-batch.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from freshrec.engine.quality import LiveQuality, TopK
from freshrec.engine.recommender import Recommender
from freshrec.errors import Conflict, NotFound, StorageError
from freshrec.events import LoggedEvent
from freshrec.models import CoVisitation, Model, ModelError
from freshrec.models.ensemble import Ensemble
from freshrec.registry.mapped import loadable
from freshrec.registry.store import Snapshot
from freshrec.registry.versions import VersionBook, version_folder, version_name
from freshrec.state import OnlineState, UserView

if TYPE_CHECKING:
    from freshrec.engine.processor import Processor

log = logging.getLogger(__name__)

_NOTHING = np.zeros(0, dtype=np.int64)


@dataclass
class _Trial:
    """A running gate (``version`` against the current) or post-promotion watch."""

    version: str
    start: int
    tester: LiveQuality | None  # None while a gate's frozen copies load (``_Loading``)
    baseline: float = 0.0
    baseline_tests: int = 0  # the tests behind the baseline (a watch's)
    drifts: int = 0
    followers: list[str] = field(default_factory=list)  # versions written while it ran
    loading: _Loading | None = None


class _Loading(threading.Thread):
    """Loads a gate's two frozen versions off the processor thread: at a million shoppers
    each is a snapshot of hundreds of MB to read and unpack, seconds during which events
    would wait. The gate starts testing at the first micro-batch after it is done."""

    def __init__(self, lifecycle: Lifecycle, candidate: str, current: str) -> None:
        super().__init__(name="freshrec-gate", daemon=True)
        self.lifecycle = lifecycle
        self.versions = (candidate, current)
        self.rankers: dict[str, TopK] | None = None
        self.failed: tuple[str, Exception] | None = None  # the version that would not load

    def run(self) -> None:
        rankers = {}
        for role, version in zip(("candidate", "current"), self.versions, strict=True):
            try:  # the book is the processor's: a damaged version is marked when it takes this
                rankers[role] = self.lifecycle._frozen(self.lifecycle._load(version, mark=False))
            except Exception as exc:  # a thread that died would leave the gate waiting forever
                self.failed = (version, exc)
                return
        self.rankers = rankers


def _section(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    start = prefix + "/"
    return {k[len(start) :]: v for k, v in arrays.items() if k.startswith(start)}


def paired_bound(n: int, better: int, worse: int, z: float) -> float:
    """Upper confidence bound of a candidate's hit rate minus the current version's, from
    ``n`` tests of both on the same events, ``better`` of them hit by the candidate alone and
    ``worse`` by the current alone: the mean difference plus ``z`` standard errors (paired: the
    tests both hit or both miss say nothing about the difference)."""
    if n == 0:
        return 0.0
    mean = (better - worse) / n
    spread = max(0.0, (better + worse) / n - mean * mean)
    return mean + z * math.sqrt(spread / n)


def fall_bound(baseline: float, baseline_tests: int, rate: float, tests: int, z: float) -> float:
    """Lower confidence bound of how far a hit rate ``rate`` (over ``tests`` tests) fell below
    ``baseline`` (over ``baseline_tests``; 0: taken as exact): the fall minus ``z`` standard
    errors of the difference of two independent rates."""
    var = rate * (1 - rate) / max(tests, 1)
    if baseline_tests > 0:
        var += baseline * (1 - baseline) / baseline_tests
    return (baseline - rate) - z * math.sqrt(var)


def _check_finite(name: str, arrays: dict[str, Any], snap: Snapshot) -> None:
    """Raise ``ModelError`` if a float array of model ``name`` holds NaN or infinity (what
    ``Model.check_finite`` checks, read here from the snapshot: a chunk at a time, released
    after each, when it is mapped)."""
    for key, value in arrays.items():
        if snap.mapping is not None:
            finite = snap.mapping.all_finite(value)
        else:
            values = value if isinstance(value, np.ndarray) else value.values
            finite = values.dtype.kind != "f" or bool(np.isfinite(values).all())
        if not finite:
            raise ModelError(f"{name}: non-finite values in {key!r}")


class VersionStore(Protocol):
    """Where versions are kept: ``freshrec.registry.SnapshotStore`` (files) or the scale-out
    partition's ``freshrec.scaleout.snapshots.RedisSnapshotStore``."""

    pinned: set[str]  # snapshot folder names never pruned
    unwanted: Callable[[str], str | None]
    taken: Callable[[str], bool]

    def has(self, version: str) -> bool: ...
    def load_version(self, version: str, mapped: bool = False) -> Snapshot: ...
    def listing(self) -> list[tuple[str, dict[str, Any] | None]]: ...
    def names(self) -> list[str]: ...
    def prune(self) -> None: ...


class Lifecycle:
    """Versions, gate, watch, promote and rollback over one engine's models."""

    name = "lifecycle"

    def __init__(
        self,
        store: VersionStore | None,
        book: VersionBook,
        state: OnlineState,
        models: Sequence[Model],
        ensemble: Ensemble,
        quality: LiveQuality,
        recommender: Recommender,
        covisitation: CoVisitation,
        *,
        k: int = 10,
        gate_events: int = 20_000,
        gate_every: int = 100,
        tolerance: float = 0.02,
        min_tests: int = 30,
        watch_events: int = 20_000,
        rollback_drop: float = 0.1,
        confidence: float = 0.95,
        drift_count: Callable[[], int] = lambda: 0,
    ) -> None:
        self.store = store
        self.book = book
        self.state = state
        self.models = list(models)
        self.ensemble = ensemble
        self.quality = quality
        self.recommender = recommender
        self.covisitation = covisitation
        self.k = k
        self.gate_events = gate_events
        self.gate_every = gate_every
        self.tolerance = tolerance
        self.min_tests = min_tests
        self.watch_events = watch_events
        self.rollback_drop = rollback_drop
        # a one-sided bound: z standard errors (0 below a confidence of one half)
        self.z = NormalDist().inv_cdf(confidence) if confidence > 0.5 else 0.0
        self.drift_count = drift_count
        self.processor: Processor | None = None  # set once the engine has built it
        # set by an owner that must choose when the snapshot of restored parameters is written
        # (a scale-out partition: between chunks, never inside one); else it is written at once
        self.snapshot_soon: Callable[[], None] | None = None
        self.active = True  # False while closing: the final snapshot starts no gate
        # a server's (``Engine.start``): a gate's frozen versions load in a thread (``_Loading``)
        self.background_gates = False
        self.replay_end = 0  # snapshots up to this offset re-create earlier ones: no gate
        self.gate: _Trial | None = None
        self.watch: _Trial | None = None
        self._restoring: str | None = None  # the version a snapshot being written restores
        if store is not None:
            store.pinned = self._pinned()
            store.unwanted = self._unwanted
            store.taken = self._taken
            if hasattr(store, "on_damaged"):  # files can be damaged on disk; Redis entries not
                store.on_damaged = self._damaged

    def _damaged(self, folder: str, error: str) -> None:
        self.book.mark(version_name(folder), "damaged", error=error)

    def _taken(self, folder: str) -> bool:
        """Whether the book still knows the version of ``folder`` (a pruned one's name is not
        given to new parameters: history and statuses would mix the two)."""
        version = version_name(folder)
        return version in self.book.status or version in self.book.history

    def _unwanted(self, folder: str) -> str | None:
        status = self.book.status.get(version_name(folder), {}).get("status")
        if status in ("rejected", "rolled_back", "damaged"):
            return f"version {version_name(folder)} was {status}"
        return None

    @property
    def model_version(self) -> str:
        return self.book.current or "live"

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot_meta(self) -> dict[str, Any]:
        """Metadata every snapshot records (called under the engine lock)."""
        return {
            "metrics": {"hit_rate": self.quality.hit_rates(), "live_tests": self.quality.tests},
            "weights": dict(self.ensemble.weights),
        }

    def on_snapshot(self, saved: Path | str, *, stale: bool = False) -> None:
        """A snapshot is stored (its folder, or the scale-out store's folder name): a new
        version (a candidate). ``stale``: one taken before parameters were put back that
        reached the store only after (scale-out writes in the background): ``superseded``,
        never gated."""
        name = saved.name if isinstance(saved, Path) else saved
        version = version_name(name)
        offset = int(name.partition("-")[0])
        if stale:
            self.book.mark(version, "superseded", by=f"{self._restoring} put back")
        else:
            self._add_version(version, offset)
        if self.store is not None:
            self.store.pinned = self._pinned()
            self.store.prune()
            # the book keeps the fate of stored versions only: a snapshot every few seconds
            # (scale-out) must not grow it, and rewriting it, without end
            self.book.forget_all_but({version, *self.store.names()})

    def _add_version(self, version: str, offset: int) -> None:
        restoring, self._restoring = self._restoring, None
        if restoring is not None:
            self.book.replace_current(version, restored_from=restoring)
        elif not self.active or offset <= self.replay_end:
            # the final snapshot of a close, or one of the log replayed after a start: no gate
            if version not in self.book.status:
                self.book.mark(version, "candidate")
        elif self.gate is not None:
            # the running gate goes on (a snapshot every minute must not cut short a gate of
            # more events than a quiet shop sees in a minute): this one is a restore point
            self.book.mark(version, "candidate", during_gate_of=self.gate.version)
            self.gate.followers.append(version)
        elif self.book.current is None or self.gate_events == 0:
            self.book.promote(version, gate=None)
            tests = min(self.quality.tests, self.quality.window)
            self._start_watch(version, offset, self.quality.hit_rates()["ensemble"], tests)
        else:
            self._start_gate(version, offset)

    def _pinned(self) -> set[str]:
        names = [*self.book.history, *([self.gate.version] if self.gate else [])]
        return {f for f in (version_folder(v) for v in names) if f is not None}

    def settle(self, offset: int) -> None:
        """Before a snapshot at ``offset`` (under the lock): a gate or watch whose events are
        all in decides now, so the snapshot is judged against the outcome, not queued behind
        a gate that has in fact ended."""
        self._decide(offset)

    # -- the processor's monitor protocol: tests on held-back events ---------------------------
    def due(self, first_offset: int, n: int) -> np.ndarray:
        if self.gate is not None and self.gate.tester is None:
            self._gate_loaded(self.gate, first_offset)
        self._decide(first_offset)  # decisions fall between micro-batches, under the lock
        trial = self.gate if self.gate is not None and self.gate.tester else self.watch
        return (
            _NOTHING if trial is None or trial.tester is None else trial.tester.due(first_offset, n)
        )

    def observe(self, event: LoggedEvent, offset: int) -> None:
        for trial in (self.gate, self.watch):
            if trial is not None and trial.tester is not None:
                trial.tester.test(event)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}  # gates and watches do not outlive the process; the book is on disk

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        pass

    # -- gate and watch ----------------------------------------------------------------------
    def _tester(self, rankers: dict[str, TopK], events: int) -> LiveQuality:
        window = max(1, events // self.gate_every + 1) * 4
        return LiveQuality(
            self.state, rankers, self.recommender.excluded, self.k, window, self.gate_every
        )

    def _start_gate(self, version: str, offset: int) -> None:
        current = self.book.current
        self.book.mark(version, "candidate")
        gate = self.gate = _Trial(version, offset, None)
        gate.loading = _Loading(self, version, current)  # type: ignore[arg-type]
        if self.background_gates:
            gate.loading.start()
            return
        gate.loading.run()  # here, in this thread: the gate tests from its own offset
        self._gate_loaded(gate, offset)

    def _gate_loaded(self, gate: _Trial, offset: int) -> None:
        """A gate whose versions are loaded tests from ``offset`` on (its events count from
        there); one whose versions could not be loaded is skipped (promoted unchecked)."""
        loading = gate.loading
        if loading is None or loading.is_alive():
            return
        gate.loading = None
        if loading.failed is not None or loading.rankers is None:
            version, exc = loading.failed or (gate.version, RuntimeError("loader ended early"))
            if isinstance(exc, StorageError):  # damaged (NotFound: pruned meanwhile)
                self.book.mark(version, "damaged", error=str(exc))
            elif not isinstance(exc, NotFound):
                log.error("could not load %s for a gate", version, exc_info=exc)
            self._gate_skipped(gate, exc)
            return
        gate.start = offset
        gate.tester = self._tester(loading.rankers, self.gate_events)

    def _gate_skipped(self, gate: _Trial, exc: Exception) -> None:
        log.warning("gate skipped, promoting %s: %s", gate.version, exc)
        if self.gate is gate:
            self.gate = None
        self.book.promote(gate.version, gate={"skipped": str(exc)})

    def _start_watch(self, version: str, offset: int, baseline: float, tests: int) -> None:
        """Watch the live hit rate after ``version``'s promotion, against ``baseline``
        (measured on ``tests`` tests)."""
        self.watch = None
        if self.watch_events > 0:
            tester = self._tester({"live": self.recommender.top_k}, self.watch_events)
            self.watch = _Trial(
                version, offset, tester, baseline, baseline_tests=tests, drifts=self.drift_count()
            )

    def _decide(self, offset: int) -> None:
        gate = self.gate
        if gate is not None and gate.tester is not None and offset >= gate.start + self.gate_events:
            tests = gate.tester.tests
            if tests < self.min_tests and offset < gate.start + 4 * self.gate_events:
                return  # too few testable events yet: keep testing a while longer
            rates = gate.tester.hit_rates()
            n, better, worse = gate.tester.discordant("candidate", "current")
            bound = paired_bound(n, better, worse, self.z)
            result = {
                "events": offset - gate.start,
                "tests": tests,
                "candidate": rates["candidate"],
                "current": rates["current"],
                "tolerance": self.tolerance,
                "bound": round(bound, 4),
            }
            self.gate = None
            if tests < self.min_tests or bound >= -self.tolerance:
                self.book.promote(gate.version, gate=result)
                log.info("promoted %s: %s", gate.version, result)
                self._start_watch(gate.version, offset, rates["candidate"], n)
            else:
                self._reject(gate.version, result, gate.followers)
        watch = self.watch
        if watch is not None and offset >= watch.start + self.watch_events:
            self.watch = None
            self._judge(watch)

    def _reject(self, version: str, result: dict[str, Any], followers: Sequence[str]) -> None:
        current = self.book.current
        try:
            snap = self._load(current)  # type: ignore[arg-type]
        except (StorageError, NotFound) as exc:  # nothing sound to go back to: keep the new one
            log.warning("%s failed its gate, but %s cannot be restored: %s", version, current, exc)
            self.book.promote(version, gate={**result, "forced": str(exc)})
            return
        self.book.mark(version, "rejected", gate=result)
        log.warning("rejected %s, back to %s: %s", version, current, result)
        for later in followers:  # learned on top of the rejected parameters
            self.book.mark(later, "superseded", by=f"{current} put back")
        self._put_back(current, snap)  # type: ignore[arg-type]

    def _judge(self, watch: _Trial) -> None:
        """End of a post-promotion watch: roll back if the live hit rate fell too far."""
        rate, tests = watch.tester.hit_rates()["live"], watch.tester.tests
        n = min(tests, watch.tester.window)
        fall = fall_bound(watch.baseline, watch.baseline_tests, rate, n, self.z)
        if tests < self.min_tests or fall <= self.rollback_drop:
            return
        details = {"live": rate, "baseline": watch.baseline, "tests": tests, "fall": fall}
        if self.drift_count() > watch.drifts:
            log.warning("hit rate fell after %s, drift explains it: %s", watch.version, details)
        elif self.book.current == watch.version and self.book.previous():
            log.warning("hit rate fell after %s: rolling back %s", watch.version, details)
            try:
                self.rollback()
            except Conflict as exc:  # every earlier version damaged or gone: keep serving
                log.error("automatic rollback impossible: %s", exc)

    # -- promote and rollback ----------------------------------------------------------------
    def _load(self, version: str, mark: bool = True) -> Snapshot:
        """``version``'s parameters, read in place where the store can (``mapped``: a frozen
        copy reads the pages it needs, a put-back copies them a chunk at a time); a damaged
        one is logged, marked in the book (unless ``mark`` is off: a loader thread leaves the
        book to the processor) and raises."""
        if self.store is None or not self.store.has(version):
            raise NotFound(f"version: unknown model version {version!r}")
        try:
            return self.store.load_version(version, mapped=True)
        except (OSError, ValueError) as exc:
            log.warning("skipping damaged version %s: %s", version, exc)
            if mark:
                self.book.mark(version, "damaged", error=str(exc))
            raise StorageError(f"version {version} is damaged: {exc}") from exc

    def _frozen(self, snap: Snapshot) -> TopK:
        """A top-k function over copies of the models holding ``snap``'s parameters, read
        where they are when the snapshot is mapped (``Model.load_frozen``): the pages a test
        reads are released after it, so a gate holds little more than its tests' rows."""
        copies = []
        unusable = {}
        for model in self.models:
            copy = type(model)(**model.params())
            copy.name = model.name
            arrays = _section(snap.arrays, model.name)
            try:
                if arrays:
                    copy.load_frozen(arrays)
                _check_finite(model.name, arrays, snap)
            except ModelError as exc:
                unusable[model.name] = str(exc)
            copies.append(copy)
        snap.release()
        ensemble = Ensemble(
            copies, self.ensemble.priors, self.ensemble.eta, self.ensemble.min_weight
        )
        ensemble.weights = dict(snap.meta.get("weights") or self.ensemble.weights)
        ensemble.disabled = unusable
        covis = copies[self.models.index(self.covisitation)]
        recommender = Recommender(self.state, ensemble, covis, self.recommender.exclude_recent)  # type: ignore[arg-type]

        def top_k(user: UserView, k: int, exclude: np.ndarray) -> np.ndarray:
            # a view of its own: models memoise per-request results in the view by model name,
            # and the copies share their names with the live models and the other version
            try:
                return recommender.top_k(replace(user, memo={}), k, exclude)
            finally:
                snap.release()

        return top_k

    def _apply(self, snap: Snapshot) -> None:
        """Load ``snap``'s exact parameters (models, live-quality window, weights)."""
        for model in self.models:
            arrays = _section(snap.arrays, model.name)
            if arrays:
                model.load_state_dict(loadable(model, arrays))
                snap.release()
            try:
                model.check_finite()
            except ModelError:
                continue
            # a model disabled because it diverged serves and learns again from sound parameters
            self.ensemble.disabled.pop(model.name, None)
            if self.processor is not None:
                self.processor.failed.pop(model.name, None)
        quality = _section(snap.arrays, self.quality.name)
        if quality:
            self.quality.load_state_dict(loadable(self.quality, quality))
        if snap.meta.get("weights"):
            self.ensemble.weights = dict(snap.meta["weights"])

    def _put_back(self, version: str, snap: Snapshot) -> None:
        if self.processor is not None:  # a snapshot being written goes in first, as itself
            self.processor.poll_snapshot(block=True)
        self._apply(snap)
        self.gate = self.watch = None
        if self.snapshot_soon is not None:  # the owner writes it where that is safe
            self._restoring = version
            self.snapshot_soon()
        elif self.processor is not None:
            self._restoring = version
            self.processor.snapshot()  # a restart resumes from the restored parameters

    def promote(self, version: str) -> dict[str, Any]:
        """Serve ``version``'s parameters from now on (call under the engine lock)."""
        snap = self._load(version)
        self.book.promote(version, manual=True)
        self._put_back(version, snap)
        return {"model_version": self.model_version, "restored": version}

    def rollback(self) -> dict[str, Any]:
        """Back to the version promoted before the current one (call under the engine lock)."""
        while True:
            target = self.book.previous()
            if target is None:
                raise Conflict("no earlier promoted version to roll back to")
            try:
                snap = self._load(target)
                break
            except (StorageError, NotFound):
                self.book.history.remove(target)  # damaged or pruned: try the one before
        dropped = self.book.current
        self.book.rollback()
        self._put_back(target, snap)
        return {"model_version": self.model_version, "restored": target, "rolled_back": dropped}

    def versions(self) -> list[dict[str, Any]]:
        """Every version stored, newest first, with its metadata and status."""
        if self.store is None:
            return []
        return [self.book.entry(version, meta) for version, meta in self.store.listing()]
