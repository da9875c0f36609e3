"""The processor: drains the log in micro-batches into the online state and the models.

For each micro-batch, under the engine lock: the monitors look at the events first (live
quality tests them against the models as they stand: test, then learn), the online state
advances, and every model learns. Then the offset is committed and, when due, a snapshot
written. On start it restores the newest intact snapshot and replays the log after it, so the
state after a restart (clean or ``kill -9``) is the state the same events would have built live.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from freshrec.errors import StorageError
from freshrec.events import LoggedEvent
from freshrec.log import EventLog
from freshrec.models import Model, ModelError
from freshrec.registry import SnapshotStore
from freshrec.registry.background import ForkedSnapshot, can_fork, fork_write
from freshrec.registry.mapped import loadable
from freshrec.state import Batch, OnlineState

log = logging.getLogger(__name__)

CONSUMER = "processor"


class Monitor(Protocol):
    """Something that looks at chosen events just before the models learn them."""

    name: str

    def due(self, first_offset: int, n: int) -> np.ndarray:
        """Positions, within a batch starting at ``first_offset``, of the events to observe."""
        ...

    def observe(self, event: LoggedEvent, offset: int) -> None:
        """See ``event`` with every event before it learned and it not yet learned."""
        ...

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None: ...


class Watcher(Protocol):
    """Something that sees each micro-batch after the state took it in, before models learn it."""

    def watch(self, batch: Batch, events: Sequence[LoggedEvent], first_offset: int) -> None: ...


class Processor:
    """Reads the log from its offset, updates state and models, commits, snapshots."""

    def __init__(
        self,
        log_: EventLog,
        state: OnlineState,
        models: Sequence[Model],
        lock: threading.RLock,
        snapshots: SnapshotStore | None = None,
        monitors: Sequence[Monitor] = (),
        batch_events: int = 5_000,
        snapshot_every_events: int = 200_000,
        snapshot_every_seconds: float = 60.0,
        on_model_error: Callable[[str, str], object] | None = None,
        watchers: Sequence[Watcher] = (),
        snapshot_meta: Callable[[], dict] | None = None,
        on_snapshot: Callable[[Path], object] | None = None,
        before_snapshot: Callable[[int], object] | None = None,
        background_snapshots: bool = False,
    ) -> None:
        self.log = log_
        self.state = state
        self.models = list(models)
        self.monitors = list(monitors)
        self.lock = lock
        self.snapshots = snapshots
        self.batch_events = batch_events
        self.snapshot_every_events = snapshot_every_events
        self.snapshot_every_seconds = snapshot_every_seconds
        self.on_model_error = on_model_error
        self.watchers = list(watchers)
        self.snapshot_meta = snapshot_meta
        self.on_snapshot = on_snapshot
        self.before_snapshot = before_snapshot
        # periodic snapshots written by a forked child (``freshrec.registry.background``)
        self.background_snapshots = background_snapshots and can_fork(snapshots)
        self._forked: ForkedSnapshot | None = None
        self._draining = False
        self.failed: dict[str, str] = {}  # models whose learning diverged
        self.offset = 0
        self._snapshot_offset = 0
        self._snapshot_time = time.monotonic()

    @property
    def _parts(self) -> list[Model | Monitor]:
        return [*self.models, *self.monitors]

    def restore(self) -> int:
        """Load the newest intact snapshot; returns the offset replay must start from."""
        snap = self.snapshots.load_latest(mapped=True) if self.snapshots else None
        if snap is not None and snap.offset > self.log.end_offset():
            raise StorageError(
                f"snapshot at offset {snap.offset} is ahead of the event log "
                f"({self.log.end_offset()} events): the log was lost or replaced; restore it "
                "or remove the snapshots to start over"
            )
        if snap is not None:
            with self.lock:
                # read in place and copied a part (a chunk) at a time: never two copies
                self.state.restore(_section(snap.arrays, "state"), snap.documents)
                snap.release()
                for part in self._parts:
                    arrays = _section(snap.arrays, part.name)
                    if arrays:
                        part.load_state_dict(loadable(part, arrays))
                        snap.release()
                for model in self.models:
                    try:
                        model.check_finite()
                    except ModelError as exc:
                        self._fail(model, str(exc))
            self.offset = self._snapshot_offset = snap.offset
            log.info(
                "restored snapshot at offset %d; replaying %d events after it",
                snap.offset,
                self.log.end_offset() - snap.offset,
            )
        elif self.log.end_offset():
            log.info("no snapshot: replaying the whole log (%d events)", self.log.end_offset())
        return self.offset

    def step(self, max_events: int | None = None) -> int:
        """Process one micro-batch; returns how many events it held (0 = caught up)."""
        if self._forked is not None:
            self.poll_snapshot()
        events = self.log.read(self.offset, max_events or self.batch_events)
        if not events:
            return 0
        with self.lock:
            first = self.offset
            due = [set(m.due(first, len(events)).tolist()) for m in self.monitors]
            start = 0
            # learn up to each observed event, let the monitors see it, go on (test-then-learn)
            for cut in sorted(set().union(*due)):
                self._learn(events[start:cut], first + start)
                for monitor, positions in zip(self.monitors, due, strict=True):
                    if cut in positions:
                        monitor.observe(events[cut], first + cut)
                start = cut
            self._learn(events[start:], first + start)
            self.offset += len(events)
        self.log.commit(CONSUMER, self.offset)
        self.maybe_snapshot()
        return len(events)

    def _learn(self, events: list[LoggedEvent], first: int) -> None:
        if events:
            batch = self.state.advance(events)
            for watcher in self.watchers:
                watcher.watch(batch, events, first)
            for model in self.models:
                if model.name in self.failed:
                    continue
                try:
                    model.learn(batch)
                except ModelError as exc:
                    self._fail(model, str(exc))

    def _fail(self, model: Model, reason: str) -> None:
        """A model diverged: stop teaching and serving it; the processor and the rest go on."""
        log.error("model %s disabled: %s", model.name, reason)
        self.failed[model.name] = reason
        if self.on_model_error is not None:
            self.on_model_error(model.name, reason)

    def drain(self) -> int:
        """Process until the end of the log; returns the number of events processed. Its
        snapshots are written here, not forked (catching up is not live serving: the caller
        -- a start's replay, ``Engine.process`` -- gets them in place and registered)."""
        total = 0
        self._draining = True
        try:
            while n := self.step():
                total += n
        finally:
            self._draining = False
        self.poll_snapshot(block=True)
        return total

    def maybe_snapshot(self, force: bool = False, background: bool | None = None) -> None:
        """A snapshot if one is due (``snapshot_every_events`` or ``_seconds``) or ``force``d;
        written in the background when so built, unless ``background`` is False."""
        if self.snapshots is None or self.offset == self._snapshot_offset:
            return
        if background is None:
            background = self.background_snapshots and not self._draining
        if background and not force and self._forked is not None:
            return  # the last one is still being written: this one comes when it is done
        due = (
            self.offset - self._snapshot_offset >= self.snapshot_every_events
            or time.monotonic() - self._snapshot_time >= self.snapshot_every_seconds
        )
        if not (force or due):
            return
        if self.before_snapshot is not None:
            # e.g. a gate whose events are all in decides now, before this snapshot is a new
            # version; if that put earlier parameters back, it wrote their snapshot already
            with self.lock:
                self.before_snapshot(self.offset)
            if self.offset == self._snapshot_offset:
                return
        self.snapshot(background=background)

    def snapshot(self, background: bool = False) -> None:
        """Write the state and every model's parameters as of the current offset: here, or
        with ``background`` by a forked child (registered when ``poll_snapshot`` reaps it)."""
        if self.snapshots is None:
            return
        self.poll_snapshot(block=True)  # one at a time, registered in order
        # only this thread changes the state and the models, so what is read here cannot change
        # while it is written out; the lock keeps readers' view consistent while it is read
        with self.lock:
            offset = self.offset
            arrays = {f"state/{k}": v for k, v in self.state.arrays().items()}
            for part in self._parts:
                arrays.update({f"{part.name}/{k}": v for k, v in part.state_dict().items()})
            documents = {k: list(v) for k, v in self.state.documents().items()}  # type: ignore[call-overload]
            meta = {"models": {m.name: m.params() for m in self.models}}
            if self.snapshot_meta is not None:
                meta.update(self.snapshot_meta())
            forked = None
            if background and self.background_snapshots:  # the child sees the state as now
                forked = fork_write(self.snapshots, offset, arrays, documents, meta)  # type: ignore[arg-type]
        self._snapshot_offset = offset
        self._snapshot_time = time.monotonic()
        if forked is not None:
            self._forked = forked
        else:
            self._registered(self.snapshots.save(offset, arrays, documents, meta))

    def poll_snapshot(self, block: bool = False) -> None:
        """Register the snapshot a forked child was writing, once it is done (with ``block``,
        wait for it): every caller that must see versions in order calls this first."""
        forked = self._forked
        if forked is None or not forked.done(block):
            return
        self._forked = None
        folder = forked.finish()
        if folder is not None:
            self._registered(folder)

    def _registered(self, folder: Path) -> None:
        if self.on_snapshot is not None:
            with self.lock:
                self.on_snapshot(folder)


def _section(arrays: dict, prefix: str) -> dict:
    start = prefix + "/"
    return {k[len(start) :]: v for k, v in arrays.items() if k.startswith(start)}
