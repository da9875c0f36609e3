"""The log a partition's ``Processor`` reads in scale-out mode: the chunks a worker was handed.

A worker runs the same ``Processor`` as embedded mode on each partition it owns. The processor
reads a dense sequence of offsets; here that sequence is the partition's own (a chunk's ``l``,
see ``freshrec.log.redis``), and the events are the chunks the worker pushed -- delivered by the
consumer group or replayed from the stream. Offsets are committed with the effects in Redis
(``freshrec.scaleout.partition``), not here.
"""

from __future__ import annotations

from collections import deque

from freshrec.errors import StorageError
from freshrec.events import LoggedEvent
from freshrec.log import AppendResult, EventLog
from freshrec.log.redis import Chunk


class ChunkFeed(EventLog):
    """An ``EventLog`` over the chunks pushed into it, in partition-offset order."""

    def __init__(self, end: int = 0) -> None:
        self._chunks: deque[Chunk] = deque()
        self._end = end  # the partition's next offset, as far as this feed knows

    def push(self, chunk: Chunk) -> None:
        """Queue ``chunk``; it must start where the previous one ended (no gap, no overlap)."""
        expected = (
            self._chunks[-1].local_first + len(self._chunks[-1].events) if self._chunks else None
        )
        if expected is not None and chunk.local_first != expected:
            raise StorageError(
                f"partition chunks out of order: expected offset {expected}, "
                f"got {chunk.local_first}"
            )
        self._chunks.append(chunk)
        self._end = max(self._end, chunk.local_first + len(chunk.events))

    def append(self, events: list[LoggedEvent]) -> AppendResult:
        raise StorageError("a partition feed is read-only: append through the Redis log")

    def read(self, offset: int, max_events: int) -> list[LoggedEvent]:
        while self._chunks and self._chunks[0].local_first + len(self._chunks[0].events) <= offset:
            self._chunks.popleft()  # fully read
        out: list[LoggedEvent] = []
        for chunk in self._chunks:
            start = offset + len(out)
            if chunk.local_first > start:
                break
            out.extend(chunk.events[start - chunk.local_first :])
            if len(out) >= max_events:
                break
        return out[:max_events]

    def end_offset(self) -> int:
        return self._end

    def committed(self, consumer: str) -> int:
        return 0

    def commit(self, consumer: str, offset: int) -> None:
        """Nothing to do: the worker records the offset atomically with the effects."""
