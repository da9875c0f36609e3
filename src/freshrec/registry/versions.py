"""The version book: which model version serves, the promotion history, each version's fate.

Kept in ``registry.json`` in the data directory, rewritten atomically (temporary file, fsync,
rename, fsync of the folder), so a crash leaves the old book or the new one, never a mix. A
version is named after its snapshot's log offset (``v120000``). Statuses: ``candidate`` (written,
not yet through the gate), ``promoted``, ``rejected`` (failed the gate), ``rolled_back`` (was
promoted, then rolled back), ``restored`` (a snapshot holding the exact parameters of an earlier
version, written when that version was put back).

>>> book = VersionBook(None)
>>> book.promote("v10", gate={"candidate": 0.4})
>>> book.promote("v20")
>>> book.current, book.previous(), book.rollback(), book.current
('v20', 'v10', 'v10', 'v10')
>>> book.status["v20"]["status"]
'rolled_back'
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def version_name(folder: str) -> str:
    """The version stored in snapshot folder ``folder`` (``000000000001200-1`` -> ``v1200-1``)."""
    offset, _, n = folder.partition("-")
    return f"v{int(offset)}" + (f"-{n}" if n else "")


def version_folder(version: str) -> str | None:
    """The snapshot folder of ``version``, or None if it is not a version name."""
    offset, _, n = version[1:].partition("-")
    if version[:1] != "v" or not offset.isdigit() or not (n.isdigit() or not n):
        return None
    return f"{int(offset):015d}" + (f"-{n}" if n else "")


def next_folder(offset: int, existing: Iterable[str], taken: Callable[[str], bool]) -> str:
    """The folder of a new snapshot at ``offset``: ``<offset>``, else ``<offset>-<n>`` with
    ``n`` above every ``n`` at that offset in ``existing`` (the newest by name is then the
    newest written, so pruning keeps it) and never a name ``taken`` (one the book still knows,
    its folder pruned since: a name is never reused for other parameters).

    >>> next_folder(9, ["000000000000009-1", "000000000000009-2", "000000000000008"],
    ...             lambda f: False)
    '000000000000009-3'
    >>> next_folder(9, [], lambda f: f == "000000000000009")
    '000000000000009-1'
    """
    base = f"{offset:015d}"
    used = [n for o, n in (_split(f) for f in existing) if o == offset]
    n = max(used) + 1 if used else 0
    while taken(folder := base + (f"-{n}" if n else "")):
        n += 1
    return folder


def _split(folder: str) -> tuple[int, int]:
    offset, _, n = folder.partition("-")
    if not offset.isdigit() or not (n.isdigit() or not n):
        return -1, -1
    return int(offset), int(n or 0)


class VersionBook:
    """Current version, promotion history (oldest first) and per-version status."""

    def __init__(self, path: Path | None, keep_promoted: int = 3) -> None:
        self.path = path
        self.keep_promoted = keep_promoted
        self.history: list[str] = []
        self.status: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            try:
                doc = json.loads(path.read_text())
                self.history = list(doc["history"])
                self.status = dict(doc["status"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable version book %s: %s", path, exc)

    @property
    def current(self) -> str | None:
        return self.history[-1] if self.history else None

    def previous(self) -> str | None:
        """The version a rollback goes back to."""
        return self.history[-2] if len(self.history) > 1 else None

    def mark(self, version: str, status: str, **details: Any) -> None:
        entry = self.status.setdefault(version, {})
        entry.update(details, status=status, at=time.time())
        self._save()

    def promote(self, version: str, **details: Any) -> None:
        """``version`` serves from now on; the one before stays the rollback target."""
        if self.current == version:
            return
        self.history.append(version)
        del self.history[: -self.keep_promoted]
        self.mark(version, "promoted", **details)

    def replace_current(self, version: str, **details: Any) -> None:
        """The current version is now held by snapshot ``version`` (same parameters)."""
        if self.history:
            self.history[-1] = version
        else:
            self.history.append(version)
        self.mark(version, "restored", **details)

    def rollback(self) -> str | None:
        """Drop the current version; returns the one that serves instead (None if none)."""
        if len(self.history) < 2:
            return None
        dropped = self.history.pop()
        self.mark(dropped, "rolled_back")
        return self.history[-1]

    def entry(self, version: str, meta: dict[str, Any] | None) -> dict[str, Any]:
        """How a stored ``version`` is listed (``GET /v1/models``): its snapshot's metadata
        (None: unreadable, so ``damaged`` unless the book knows better) and its fate here."""
        found = meta or {}
        fate = self.status.get(version, {})
        return {
            "version": version,
            "created_at": found.get("created_at"),
            "events_seen": found.get("offset"),
            "metrics": found.get("metrics"),
            "status": fate.get("status", "candidate" if meta else "damaged"),
            "current": version == self.current,
            **{k: v for k, v in fate.items() if k not in ("status", "at")},
        }

    def forget_all_but(self, stored: set[str]) -> None:
        """Drop the status of every version neither in ``stored`` nor in the history (pruned
        versions: nothing can be served, restored or listed from them any more)."""
        keep = stored | set(self.history)
        gone = [v for v in self.status if v not in keep]
        if gone:
            for version in gone:
                del self.status[version]
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with tmp.open("w") as f:
            json.dump({"history": self.history, "status": self.status}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
