"""Snapshots written by a forked child, so the processor goes on at once.

At a million shoppers and 100k items, writing a snapshot takes a couple of seconds: packing,
about 300 MB, fsync, checksums. The processor thread used to write it itself, every minute,
and every event that arrived meanwhile waited. Under 2,000 events/s that alone put the p99
freshness (acknowledged -> in that shopper's recommendations) at 1.7 s against a budget of
50 ms. Copying the arrays first would double the engine's memory for that time.

Instead, as Redis does for ``BGSAVE``, the processor forks:

- the child has the engine's memory exactly as it was at the fork (copy-on-write: a page is
  duplicated only when the parent changes it), writes the snapshot into a temporary folder
  with the store's ``write``, and leaves with ``os._exit``;
- the parent goes on processing, and reaps the child at its next micro-batch
  (``Processor.poll_snapshot``);
- the parent then renames the folder into place and registers the version, one snapshot at a
  time and in order.

The child runs nothing but that ``write``: numpy, zipfile, msgpack, json, hashlib and file I/O.
It never takes a lock another thread may have held at the fork, and it does not collect
garbage: a collection would touch every object and copy the pages they live on.

If the child fails, or is killed, the temporary folder is removed and the next snapshot is
taken as usual. A crash of the whole process leaves at most a stale temporary folder, which
the next start prunes; snapshots are restore points, and the durable log has every event.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from freshrec.registry.store import SnapshotStore

log = logging.getLogger(__name__)

WAIT_SECONDS = 600.0  # longest a caller that needs the snapshot in place waits for the child


def can_fork(store: object) -> bool:
    """Whether snapshots to ``store`` can be written by a forked child here (files, Linux:
    ``fork`` of a threaded process is safe there for a child that only writes files)."""
    return isinstance(store, SnapshotStore) and sys.platform.startswith("linux")


class ForkedSnapshot:
    """A snapshot a child process is writing into ``tmp``."""

    def __init__(self, store: SnapshotStore, offset: int, tmp: Path, pid: int) -> None:
        self.store = store
        self.offset = offset
        self.tmp = tmp
        self.pid = pid
        self.status: int | None = None  # the child's exit status once reaped

    def done(self, block: bool = False, timeout: float = WAIT_SECONDS) -> bool:
        """Whether the child has finished (reaped here). With ``block``, wait for it -- at
        most ``timeout`` seconds: a child that is stuck is killed then (a close must not hang
        on a snapshot; the log has every event)."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid != 0:
                self.status = status
                break
            if not block:
                return False
            if time.monotonic() >= deadline:
                log.error("snapshot writer %d still busy after %.0f s: killed", self.pid, timeout)
                os.kill(self.pid, signal.SIGKILL)
                self.status = os.waitpid(self.pid, 0)[1]
                break
            time.sleep(0.01)
        return True

    def finish(self) -> Path | None:
        """After ``done``: the snapshot put in place (its folder), or None if the child failed
        (logged, its temporary folder removed)."""
        if self.status is not None and os.waitstatus_to_exitcode(self.status) == 0:
            return self.store.finish(self.tmp, self.offset)
        code = None if self.status is None else os.waitstatus_to_exitcode(self.status)
        log.error("snapshot at offset %d not written: its writer exited with %s", self.offset, code)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return None


def fork_write(
    store: SnapshotStore,
    offset: int,
    arrays: dict[str, np.ndarray],
    documents: dict[str, Any],
    meta: dict[str, Any],
) -> ForkedSnapshot:
    """Fork a child that writes the snapshot of the memory as it is now; returns at once."""
    tmp = store.temporary(offset)
    pid = os.fork()
    if pid == 0:  # the child: write, and leave without running anything of the parent's
        code = 1
        try:
            gc.disable()
            store.write(tmp, offset, arrays, documents, meta)
            code = 0
        except BaseException:
            os.write(2, traceback.format_exc().encode(errors="replace"))
        finally:
            os._exit(code)
    return ForkedSnapshot(store, offset, tmp, pid)
