"""The shop side of a scale-out replica: one catalogue over the partitions' engines, and the
thread that takes in the other replicas' catalogue, profile and experiment changes.

Each partition's ``Engine`` has its own item index (its snapshot's), so each has its own
``Catalogue`` linked to it -- a *follower*. The replica's ``ReplicaCatalogue`` (what the items
routes and the service see) is stored in the deployment's ``RedisShopStore`` and repeats
every change to its followers; a partition engine loaded later is seeded from it (``follow``).

``ShopSync`` polls the store every ``shop_poll_seconds`` (one ``GET`` when nothing changed)
and applies what other replicas wrote under the replica's lock, so an item marked unavailable
on one replica disappears from every replica's recommendations within that period (and the
catalogue version the response caches compare moves with it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from freshrec.errors import StorageError
from freshrec.state.catalogue import Catalogue, Item
from freshrec.state.ids import IdMap

log = logging.getLogger(__name__)


class ReplicaCatalogue(Catalogue):
    """The replica's catalogue: persisted in the shared store, repeated to the followers."""

    def __init__(self, store: Any, known: Callable[[str], bool]) -> None:
        self.followers: list[Catalogue] = []
        self._known = known  # whether a partition's snapshot has seen the item in events
        super().__init__(IdMap(), store)

    def follow(self, follower: Catalogue) -> None:
        """Seed ``follower`` with every item and deletion, and repeat changes to it."""
        live = [item for item in self.records if item is not None]
        follower.upsert(live, persist=False)
        for c, item in enumerate(self.records):
            if item is None:
                follower.delete(self.ids.key(c), persist=False)
        self.followers.append(follower)

    def unfollow(self, follower: Catalogue) -> None:
        if follower in self.followers:
            self.followers.remove(follower)

    def upsert(self, items: Sequence[Item], persist: bool = True) -> None:
        super().upsert(items, persist)
        for follower in self.followers:
            follower.upsert(items, persist=False)

    def delete(self, item_id: str, persist: bool = True) -> bool:
        known = super().delete(item_id, persist)
        for follower in self.followers:
            follower.delete(item_id, persist=False)
        return known or self._known(item_id)


WARN_EVERY = 30.0  # seconds between log lines while Redis cannot be reached


class ShopSync:
    """Applies the other replicas' shop changes (``store.poll`` + ``dispatch``) under
    ``lock`` every ``seconds``, in a daemon thread; then runs each of ``also`` (e.g. the
    sharing of click attribution, ``Feedback.sync``)."""

    def __init__(self, store: Any, lock: Any, seconds: float) -> None:
        self.store = store
        self.lock = lock
        self.seconds = seconds
        self.also: list[Callable[[], object]] = []
        self.failures = 0
        self._failures_logged = 0
        self._warned_at: float | None = None  # during an outage: when it was last logged
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync(self) -> int:
        """Apply the changes waiting now, then run ``also``; returns how many changes (0 when
        Redis is unreachable)."""
        failed = []
        try:
            changes = self.store.poll()
        except StorageError as exc:
            failed.append(f"cannot read the shop's changes: {exc}")
            changes = []
        if changes:
            with self.lock:
                self.store.dispatch(changes)
        for hook in list(self.also):
            try:
                hook()
            except StorageError as exc:  # what it had to send waits for the next time
                failed.append(str(exc))
        self._report(failed)
        return len(changes)

    def _report(self, failed: list[str]) -> None:
        """Log an outage when it starts, then every ``WARN_EVERY`` seconds while it lasts (a
        poll every 0.2 s would log five lines a second), and when it ends."""
        self.failures += len(failed)
        now = time.monotonic()
        if failed and (self._warned_at is None or now - self._warned_at >= WARN_EVERY):
            quiet = self.failures - self._failures_logged - len(failed)
            more = f" ({quiet} failed polls not logged since)" if quiet > 0 else ""
            for message in failed:
                log.warning("%s%s", message, more)
            self._warned_at, self._failures_logged = now, self.failures
        elif not failed and self._warned_at is not None:
            log.info("Redis answers again: shop changes and shared counts resume")
            self._warned_at, self._failures_logged = None, self.failures

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="freshrec-shop", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.sync()
            except Exception:
                log.exception("applying the shop's changes failed; retrying")

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
