"""One process per data directory: an exclusive lock held while an engine has it open.

Two engines appending to the same log would each believe they know its end and overwrite
offsets; the lock turns that into a clear error at start-up instead.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from freshrec.errors import StorageError


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/LOCK`` (released on ``release`` or process exit)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "LOCK"
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            self._fd = None
            raise StorageError(
                f"data directory {data_dir} is in use by another freshrec process (pid {holder})"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
