"""Replay a historical data file through the log and the processor, event time preserved.

Rows are read as a stream, turned into events and ingested through ``Engine.ingest`` in chunks
(validation, de-duplication and durability as for live traffic), then processed. Each row gets
the event id ``replay:<file name>:<line>``, so replaying a file again only finds duplicates. A bad
row is counted and reported with its line number; it never stops the replay.

Formats:

- ``ml100k``: MovieLens ``u.data`` -- user, item, rating, unix time, tab-separated, no header.
  Rows become ``rating`` events whose ``value`` is the rating.
- ``csv``: a header naming the columns (``--user-col`` ...), or, when every column given is a
  number, a file without a header whose columns are taken by position (0 = first). Timestamps
  are unix seconds or RFC 3339; types are renamed with ``--type-map``.
- ``auto``: ``ml100k`` when the first line looks like ``u.data``, else ``csv``.

>>> parse_type_map("pv=view, buy=purchase")
{'pv': 'view', 'buy': 'purchase'}
>>> parse_type_map("pv=peek")
Traceback (most recent call last):
...
freshrec.errors.ValidationError: --type-map: unknown event type 'peek' for 'pv' (known: ...)
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freshrec.engine import Engine
from freshrec.errors import ValidationError
from freshrec.events import EVENT_TYPES, Event
from freshrec.settings import Settings

FORMATS = ("auto", "ml100k", "csv")
CHUNK_ROWS = 10_000
MAX_REASONS = 5
_DELIMITERS = ",\t;|"

Progress = Callable[[int, int], None]  # (rows read so far, characters read so far)


@dataclass(slots=True)
class ReadPosition:
    """How far into its file a reader is, in characters."""

    chars: int = 0


def parse_type_map(text: str | None) -> dict[str, str]:
    """``'pv=view,buy=purchase'`` as a dict; every target must be a known event type."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        raw, sep, target = part.partition("=")
        raw, target = raw.strip(), target.strip()
        if not sep or not raw:
            raise ValidationError("--type-map", f"expected 'raw=type' pairs, got {part.strip()!r}")
        if target not in EVENT_TYPES:
            raise ValidationError(
                "--type-map",
                f"unknown event type {target!r} for {raw!r} (known: {', '.join(EVENT_TYPES)})",
            )
        out[raw] = target
    return out


class ReplaySource:
    """A data file and how to read it (the options of ``freshrec replay``)."""

    def __init__(
        self,
        file: str | Path,
        fmt: str = "auto",
        user_col: str = "user_id",
        item_col: str = "item_id",
        time_col: str = "timestamp",
        type_col: str | None = None,
        session_col: str | None = None,
        type_map: str | None = None,
        default_type: str = "view",
    ) -> None:
        if fmt not in FORMATS:
            raise ValidationError(
                "--format", f"unknown format {fmt!r} (known: {', '.join(FORMATS)})"
            )
        if default_type not in EVENT_TYPES:
            raise ValidationError(
                "--default-type",
                f"unknown event type {default_type!r} (known: {', '.join(EVENT_TYPES)})",
            )
        self.file = Path(file)
        self.fmt = fmt
        self.user_col = user_col
        self.item_col = item_col
        self.time_col = time_col
        self.type_col = type_col
        self.session_col = session_col
        self.type_map = parse_type_map(type_map)
        self.default_type = default_type

    def resolved_format(self) -> str:
        """``ml100k`` or ``csv`` (``auto`` looks at the first non-empty line)."""
        if self.fmt != "auto":
            return self.fmt
        with self.file.open(encoding="utf-8", errors="replace") as f:
            first = next((line for line in f if line.strip()), "")
        fields = first.rstrip("\r\n").split("\t")
        return "ml100k" if len(fields) == 4 and all(_is_number(x) for x in fields) else "csv"

    def check(self) -> None:
        """Raise ``ValidationError`` now if a named column is missing from the file's header."""
        if self.resolved_format() == "csv":
            rows = self.rows()
            next(rows, None)
            rows.close()

    def rows(self, position: ReadPosition | None = None) -> Iterator[tuple[int, Event | str]]:
        """``(line, event)`` for each row, or ``(line, reason)`` for a row that is not one."""
        fmt = self.resolved_format()
        with self.file.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            lines = _counting(f, position or ReadPosition())
            if fmt == "ml100k":
                yield from self._ml100k(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
            else:
                yield from self._csv(lines)

    # -- formats -----------------------------------------------------------------------------
    def _event_id(self, line: int) -> str:
        return f"replay:{self.file.name}:{line}"

    def _ml100k(self, reader: Any) -> Iterator[tuple[int, Event | str]]:
        for line, row in _records(reader):
            if isinstance(row, str):
                yield line, row
                continue
            if len(row) != 4:
                yield (
                    line,
                    (f"expected 4 tab-separated fields (user, item, rating, time), got {len(row)}"),
                )
                continue
            user, item, rating, ts = row
            if not _is_number(rating):
                yield line, f"value: rating is not a number: {rating!r}"
                continue
            if not _is_number(ts):
                yield line, f"timestamp: not unix seconds: {ts!r}"
                continue
            bad = _not_utf8(user, item)
            if bad:
                yield line, bad
                continue
            yield (
                line,
                Event(
                    "rating",
                    user,
                    item,
                    event_id=self._event_id(line),
                    timestamp=float(ts),
                    value=float(rating),
                ),
            )

    def _columns(self, header: list[str] | None) -> tuple[list[int | None], int]:
        """Indices of (user, item, time, type, session) and the fields a row needs."""
        specs = [
            ("--user-col", self.user_col),
            ("--item-col", self.item_col),
            ("--time-col", self.time_col),
            ("--type-col", self.type_col),
            ("--session-col", self.session_col),
        ]
        out: list[int | None] = []
        for option, name in specs:
            if name is None:
                out.append(None)
            elif header is None:
                out.append(int(name))
            elif name in header:
                out.append(header.index(name))
            else:
                raise ValidationError(
                    option,
                    (
                        f"column {name!r} is not in the header of {self.file.name} (columns: "
                        f"{', '.join(header)}); for a file without a header, give every column "
                        "by position, e.g. --user-col 0 --item-col 1 --time-col 2"
                    ),
                )
        return out, 1 + max(i for i in out if i is not None)

    def _positional(self) -> bool:
        names = [self.user_col, self.item_col, self.time_col, self.type_col, self.session_col]
        return all(n.isdigit() for n in names if n is not None)

    def _csv(self, lines: Iterator[str]) -> Iterator[tuple[int, Event | str]]:
        first = next(lines, "")
        delimiter = max(_DELIMITERS, key=first.count) if first.strip() else ","

        def restart() -> Iterator[str]:
            yield first
            yield from lines

        reader = csv.reader(restart(), delimiter=delimiter)
        header = None if self._positional() else next(reader, [])
        (user_i, item_i, time_i, type_i, session_i), width = self._columns(header)
        type_map, default_type = self.type_map, self.default_type
        for line, row in _records(reader):
            if isinstance(row, str):
                yield line, row
                continue
            if len(row) < width:
                yield line, f"expected at least {width} fields, got {len(row)}"
                continue
            raw_ts = row[time_i]  # type: ignore[index]
            if not raw_ts:
                yield line, "timestamp: empty"
                continue
            timestamp: str | float = float(raw_ts) if _is_number(raw_ts) else raw_ts
            kind = default_type if type_i is None else type_map.get(row[type_i], row[type_i])
            session = None if session_i is None else (row[session_i] or None)
            user, item = row[user_i], row[item_i]  # type: ignore[index]
            bad = _not_utf8(user, item, session or "", kind)
            if bad:
                yield line, bad
                continue
            yield (
                line,
                Event(
                    kind,
                    user,
                    item,
                    event_id=self._event_id(line),
                    session_id=session,
                    timestamp=timestamp,
                ),
            )


def _records(reader: Any) -> Iterator[tuple[int, list[str] | str]]:
    """``(line, fields)`` of each non-empty record, or ``(line, reason)`` for broken CSV."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, f"not valid CSV: {exc}"
            continue
        if row:
            yield reader.line_num, row


def _counting(lines: Iterable[str], position: ReadPosition) -> Iterator[str]:
    """``lines`` unchanged, counting the characters read in ``position``."""
    for text in lines:
        position.chars += len(text)
        yield text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _not_utf8(*texts: str) -> str | None:
    for text in texts:
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return f"not valid UTF-8 text: {text!r}"
    return None


@dataclass(slots=True)
class ReplayReport:
    """What a replay did; ``reasons`` holds ``(line, reason)`` of the first rejected rows."""

    file: str
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    users: int = 0
    items: int = 0
    seconds: float = 0.0
    reasons: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append((line, reason))

    def summary(self) -> str:
        text = (
            f"replayed {self.file}: {self.rows:,} rows read, {self.accepted:,} accepted, "
            f"{self.duplicates:,} duplicates, {self.rejected:,} rejected; "
            f"{self.users:,} users, {self.items:,} items; {self.seconds:.1f} s"
        )
        for line, reason in self.reasons:
            text += f"\n  line {line}: {reason}"
        if self.rejected > len(self.reasons):
            text += f"\n  ... and {self.rejected - len(self.reasons):,} more rejected rows"
        return text


def replay_into(
    engine: Engine, source: ReplaySource, progress: Progress | None = None
) -> ReplayReport:
    """Ingest every row of ``source`` into ``engine`` in chunks, processing after each chunk."""
    start = time.perf_counter()
    report = ReplayReport(source.file.name)
    position = ReadPosition()
    events: list[Event] = []
    lines: list[int] = []

    def flush() -> None:
        result = engine.ingest(events)
        report.accepted += result.accepted
        report.duplicates += result.duplicates
        for index, reason in result.errors:
            report.reject(lines[index], reason)
        events.clear()
        lines.clear()
        engine.process()
        if progress is not None:
            progress(report.rows, position.chars)

    for line, row in source.rows(position):
        report.rows += 1
        if isinstance(row, str):
            report.reject(line, row)
        else:
            events.append(row)
            lines.append(line)
        if report.rows % CHUNK_ROWS == 0:
            flush()
    flush()
    stats = engine.stats()
    report.users, report.items = stats["users"], stats["items"]
    report.seconds = time.perf_counter() - start
    return report


def replay_file(source: ReplaySource, settings: Settings, show_progress: bool = True) -> str:
    """Replay ``source`` into the engine of ``settings``; returns a one-line summary."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    source.check()
    size = max(source.file.stat().st_size, 1)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not show_progress,
    )
    with bar:
        task = bar.add_task(f"replay {source.file.name}", total=size, rows=0)

        def progress(rows: int, chars: int) -> None:
            bar.update(task, completed=min(chars, size), rows=rows)

        with Engine(settings) as engine:
            report = replay_into(engine, source, progress)
        bar.update(task, completed=size)
    return report.summary()


__all__ = ["ReplayReport", "ReplaySource", "parse_type_map", "replay_file", "replay_into"]
