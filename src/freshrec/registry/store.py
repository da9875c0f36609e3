"""Snapshots on disk: arrays in ``.npz`` (no pickles), ids in msgpack, metadata in JSON.

A snapshot is written into a temporary folder, every file fsync'd, its checksums recorded in
``meta.json`` (written last), and only then renamed into place, so a crash mid-write never leaves a
half-written snapshot that looks complete. On load, a snapshot whose files do not match their
checksums is skipped with a log line and the next older one is tried.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

log = logging.getLogger(__name__)

_ARRAYS, _DOCS, _META = "arrays.npz", "documents.msgpack", "meta.json"


@dataclass(slots=True)
class Snapshot:
    """State as of log offset ``offset`` (every event before it is reflected)."""

    offset: int
    arrays: dict[str, np.ndarray]
    documents: dict[str, Any]
    meta: dict[str, Any]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _key(name: str) -> tuple[int, int] | None:
    """``(offset, n)`` of a snapshot folder named ``<offset>`` or ``<offset>-<n>``, else None."""
    offset, _, n = name.partition("-")
    if offset.isdigit() and (n.isdigit() or not n):
        return int(offset), int(n or 0)
    return None


class SnapshotStore:
    """Snapshots under ``root``, one folder per version named by its log offset.

    A folder is never overwritten: a second snapshot at the same offset (parameters put back
    without new events, see ``freshrec.engine.lifecycle``) goes to ``<offset>-1``, ``-2``...;
    the newest is the one with the highest ``(offset, n)``.
    """

    def __init__(self, root: Path, keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = keep
        self.pinned: set[str] = set()  # folders never pruned (versions a rollback may need)
        # why a folder must not be restored from (e.g. its version was rolled back), or None
        self.unwanted: Callable[[str], str | None] = lambda name: None
        self.root.mkdir(parents=True, exist_ok=True)

    def versions(self) -> list[Path]:
        """Snapshot folders, newest first."""
        return sorted(
            (p for p in self.root.iterdir() if p.is_dir() and _key(p.name) is not None),
            key=lambda p: _key(p.name),  # type: ignore[arg-type, return-value]
            reverse=True,
        )

    def save(
        self,
        offset: int,
        arrays: dict[str, np.ndarray],
        documents: dict[str, Any],
        meta: dict[str, Any],
    ) -> Path:
        final = self.root / f"{offset:015d}"
        n = 0
        while final.exists():
            n += 1
            final = self.root / f"{offset:015d}-{n}"
        tmp = self.root / f".tmp-{offset}-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir()
        try:
            with (tmp / _ARRAYS).open("wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            with (tmp / _DOCS).open("wb") as f:
                f.write(msgspec.msgpack.encode(documents))
                f.flush()
                os.fsync(f.fileno())
            full_meta = {
                **meta,
                "offset": offset,
                "created_at": time.time(),
                "sha256": {name: _digest(tmp / name) for name in (_ARRAYS, _DOCS)},
            }
            with (tmp / _META).open("w") as f:
                json.dump(full_meta, f)
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(tmp)
            tmp.rename(final)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.prune()
        return final

    def prune(self) -> None:
        """Remove old snapshots beyond ``keep`` (never a pinned one) and stale temporaries."""
        for old in self.versions()[self.keep :]:
            if old.name not in self.pinned:
                shutil.rmtree(old, ignore_errors=True)
        for tmp in self.root.glob(".tmp-*"):
            if f"-{os.getpid()}-" not in tmp.name:
                shutil.rmtree(tmp, ignore_errors=True)

    def _read(self, folder: Path) -> Snapshot:
        meta = json.loads((folder / _META).read_text())
        for name, expected in meta["sha256"].items():
            if _digest(folder / name) != expected:
                raise ValueError(f"checksum mismatch in {name}")
        with np.load(folder / _ARRAYS, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        documents = msgspec.msgpack.decode((folder / _DOCS).read_bytes())
        return Snapshot(int(meta["offset"]), arrays, documents, meta)

    def load(self, folder: Path) -> Snapshot:
        """The snapshot in ``folder``, checksums verified (``OSError``/``ValueError`` if damaged
        or missing)."""
        try:
            return self._read(folder)
        except (KeyError, msgspec.DecodeError) as exc:
            raise ValueError(f"damaged snapshot {folder}: {exc}") from exc

    def read_meta(self, folder: Path) -> dict[str, Any] | None:
        """A snapshot's metadata without reading its arrays; None if unreadable."""
        try:
            return json.loads((folder / _META).read_text())
        except (OSError, ValueError):
            return None

    def load_latest(self) -> Snapshot | None:
        """The newest intact snapshot, or None when there is none."""
        for folder in self.versions():
            why = self.unwanted(folder.name)
            if why is not None:
                log.warning("not restoring from snapshot %s: %s", folder, why)
                continue
            try:
                return self._read(folder)
            except (OSError, ValueError, KeyError, msgspec.DecodeError) as exc:
                log.warning("skipping damaged snapshot %s: %s", folder, exc)
        return None
