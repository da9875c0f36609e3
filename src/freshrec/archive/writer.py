"""The background Parquet writer of a worker, with bounded memory.

Chunks wait in a queue of at most ``queue_chunks`` entries (``put`` blocks when it is full, so a
slow disk slows the worker down instead of growing its memory) and are buffered per partition
until ``flush_rows`` rows or ``flush_seconds``. A flush writes, for each partition and event
date, ``archive/date=YYYY-MM-DD/p<partition>-<first offset>.parquet`` (written to a temporary
name, fsync'd, renamed), then records ``archived:<partition>`` in Redis: the first offset of the
last chunk archived. Trimming the stream never goes past it, and a new owner of the partition
deletes files written after it (a worker that died between the two) before archiving again, so
each event is in the archive once.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import redis

from freshrec.events.schema import EVENT_TYPES
from freshrec.log.redis import Chunk
from freshrec.scaleout.keys import Keys

log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        ("offset", pa.int64()),
        ("partition", pa.int32()),
        ("type", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("ts", pa.float64()),
        ("event_id", pa.string()),
        ("session_id", pa.string()),
        ("context", pa.string()),
        ("recommendation_id", pa.string()),
        ("value", pa.float64()),
    ]
)


def archive_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "archive"


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class _Forget:
    partition: int
    done: threading.Event


class ArchiveWriter:
    """Appends processed chunks to date-partitioned Parquet files in a background thread."""

    def __init__(
        self,
        data_dir: str | Path,
        client: redis.Redis,
        keys: Keys,
        flush_rows: int = 50_000,
        flush_seconds: float = 5.0,
        queue_chunks: int = 1024,
    ) -> None:
        self.root = archive_dir(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.redis = client
        self.keys = keys
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue[tuple[int, Chunk] | threading.Event | _Forget | None] = (
            queue.Queue(queue_chunks)
        )
        self._buffer: dict[int, list[Chunk]] = defaultdict(list)
        self._rows = 0
        self._since = time.monotonic()
        self.written_files = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="freshrec-archive", daemon=True)
        self._thread.start()

    def put(self, partition: int, chunk: Chunk) -> None:
        """Queue a processed chunk (blocks while the queue is full)."""
        if self.error is not None:
            raise RuntimeError(f"archive writer failed: {self.error}") from self.error
        self._queue.put((partition, chunk))

    def flush(self) -> None:
        """Write everything queued so far and wait until it is recorded."""
        done = threading.Event()
        self._queue.put(done)
        done.wait()

    def forget(self, partition: int) -> None:
        """Drop what is buffered for ``partition`` (its owner lost it: whoever takes it over
        archives again from the recorded mark); waits until the writer has done so."""
        done = threading.Event()
        self._queue.put(_Forget(partition, done))
        done.wait()

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join()

    def discard_after(self, partition: int, archived: int) -> int:
        """Delete files of ``partition`` that start after ``archived`` (written, never recorded)."""
        removed = 0
        for path in self.root.glob(f"date=*/p{partition}-*.parquet"):
            first = int(path.stem.split("-", 1)[1])
            if first > archived:
                path.unlink()
                removed += 1
        return removed

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            timeout = max(0.05, self.flush_seconds - (time.monotonic() - self._since))
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = "tick"  # type: ignore[assignment]
            try:
                if item is None:
                    self._flush()
                    return
                if isinstance(item, threading.Event):
                    self._flush()
                    item.set()
                    continue
                if isinstance(item, _Forget):
                    chunks = self._buffer.pop(item.partition, [])
                    self._rows -= sum(len(c.events) for c in chunks)
                    item.done.set()
                    continue
                if isinstance(item, tuple):
                    partition, chunk = item
                    self._buffer[partition].append(chunk)
                    self._rows += len(chunk.events)
                due = time.monotonic() - self._since >= self.flush_seconds
                if self._rows >= self.flush_rows or (due and self._rows):
                    self._flush()
                elif due:
                    self._since = time.monotonic()
            except BaseException as exc:  # keep answering flush() so the worker never hangs
                log.exception("archive writer failed")
                self.error = exc
                if isinstance(item, threading.Event):
                    item.set()
                elif isinstance(item, _Forget):
                    item.done.set()

    def _flush(self) -> None:
        for partition, chunks in list(self._buffer.items()):
            if not chunks:
                continue
            try:
                self._write(partition, chunks)
            except redis.RedisError as exc:  # files written, mark not: rewritten next time
                log.warning("archive of partition %d not recorded (%s); retrying", partition, exc)
                continue
            del self._buffer[partition]
            self._rows -= sum(len(c.events) for c in chunks)
        self._since = time.monotonic()

    def _write(self, partition: int, chunks: list[Chunk]) -> None:
        by_date: dict[str, dict[str, list]] = {}
        for chunk in chunks:
            for k, e in enumerate(chunk.events):
                cols = by_date.setdefault(_date(e.ts), {name: [] for name in SCHEMA.names})
                cols["offset"].append(chunk.first + k)
                cols["partition"].append(partition)
                cols["type"].append(EVENT_TYPES[e.type])
                cols["user_id"].append(e.user_id)
                cols["item_id"].append(e.item_id)
                cols["ts"].append(e.ts)
                cols["event_id"].append(e.event_id)
                cols["session_id"].append(e.session_id)
                cols["context"].append(None if e.context is None else json.dumps(e.context))
                cols["recommendation_id"].append(e.recommendation_id)
                cols["value"].append(e.value)
        name = f"p{partition}-{chunks[0].first:015d}.parquet"
        for date, cols in by_date.items():
            folder = self.root / f"date={date}"
            folder.mkdir(exist_ok=True)
            tmp = folder / f".{name}.tmp"
            pq.write_table(pa.Table.from_pydict(cols, schema=SCHEMA), tmp)
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
            tmp.rename(folder / name)
            self.written_files += 1
        self.redis.hset(self.keys.parts, f"archived:{partition}", chunks[-1].first)
