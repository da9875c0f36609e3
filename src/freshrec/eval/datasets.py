"""Reading data files into validated events for the evaluator.

``ml100k`` and ``csv`` files are read by ``freshrec.replay.ReplaySource`` (the reader of
``freshrec replay``), so the evaluator sees exactly the events a replay would ingest; they are
normalised by the same ``EventValidator``. ``diginetica`` (the CIKM Cup 2016 item views,
``session_id;user_id;item_id;timeframe;eventdate``) needs a time built from two columns --
``eventdate`` (UTC midnight) + ``timeframe`` / 1000 s, as session-rec does -- which
``ReplaySource`` cannot express, so it has its own small reader here.

MovieLens ratings become ``rating`` events; only those ``>= min_rating`` (4) are kept, the rest
are dropped before the protocol sees them.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from freshrec.errors import ValidationError
from freshrec.events import EventValidator, LoggedEvent
from freshrec.replay import ReplaySource

FORMATS = ("auto", "ml100k", "csv", "diginetica")
TAOBAO_TYPES = "pv=view,fav=favorite,cart=add_to_cart,buy=purchase"


@dataclass(slots=True)
class DataSpec:
    """A data file and how to read it (the options of ``freshrec evaluate``)."""

    path: Path
    fmt: str = "auto"
    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str = "timestamp"
    type_col: str | None = None
    session_col: str | None = None
    type_map: str | None = None
    min_rating: float = 4.0
    name: str = ""

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.fmt not in FORMATS:
            raise ValidationError(
                "--format", f"unknown format {self.fmt!r} (known: {', '.join(FORMATS)})"
            )
        self.name = self.name or self.path.name


@dataclass(slots=True)
class Loaded:
    """The valid events of a file in time order (stable), and what was left out."""

    events: list[LoggedEvent]
    rows: int = 0
    rejected: int = 0
    dropped: int = 0  # valid rows the protocol does not use (MovieLens ratings below min_rating)
    reasons: list[tuple[int, str]] = field(default_factory=list)

    @property
    def users(self) -> int:
        return len({e.user_id for e in self.events})

    @property
    def items(self) -> int:
        return len({e.item_id for e in self.events})


def resolved_format(spec: DataSpec) -> str:
    """``spec.fmt``, or for ``auto`` what the file's first line says: a DIGINETICA header
    (``session_id;…``), a MovieLens ``u.data`` row (four tab-separated numbers), else CSV."""
    if spec.fmt != "auto":
        return spec.fmt
    with spec.path.open(encoding="utf-8-sig", errors="replace") as f:
        first = next((line for line in f if line.strip()), "")
    if first.startswith("session_id;"):
        return "diginetica"
    return ReplaySource(spec.path, "auto").resolved_format()


def load(spec: DataSpec) -> Loaded:
    """Read, validate and sort ``spec``'s events by timestamp (ties keep file order)."""
    out = Loaded([])
    fmt = resolved_format(spec)
    if fmt == "diginetica":
        rows = _diginetica(spec.path)
    else:
        source = ReplaySource(
            spec.path,
            fmt,
            spec.user_col,
            spec.item_col,
            spec.time_col,
            spec.type_col,
            spec.session_col,
            spec.type_map,
        )
        source.check()
        rows = source.rows()
    validator = EventValidator()
    for line, row in rows:
        out.rows += 1
        if isinstance(row, str):
            reason = row
        else:
            try:
                event = validator.normalise(row, math.inf)
            except ValidationError as exc:
                reason = str(exc)
            else:
                if fmt == "ml100k" and not (event.value or 0.0) >= spec.min_rating:
                    out.dropped += 1
                else:
                    out.events.append(event)
                continue
        out.rejected += 1
        if len(out.reasons) < 5:
            out.reasons.append((line, reason))
    out.events.sort(key=lambda e: e.ts)
    return out


def _diginetica(path: Path):  # type: ignore[no-untyped-def]
    """``(line, Event | reason)`` per row; the session is the user, the time date + timeframe."""
    from freshrec.events import Event

    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=";")
        header = next(reader, [])
        try:
            s, i, tf, d = (
                header.index(c) for c in ("session_id", "item_id", "timeframe", "eventdate")
            )
        except ValueError:
            raise ValidationError(
                "--format",
                f"{path.name} has no diginetica header "
                "(session_id;user_id;item_id;timeframe;eventdate)",
            ) from None
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            try:
                day = datetime.strptime(row[d], "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
                ts = day + float(row[tf]) / 1000.0
            except (ValueError, IndexError):
                yield line, "eventdate/timeframe: not a date and a number of milliseconds"
                continue
            yield line, Event("view", row[s], row[i], session_id=row[s], timestamp=ts)


def sessions_of(events: list[LoggedEvent], gap_seconds: float = 1800.0) -> list[LoggedEvent]:
    """The events re-keyed by session: ``user_id`` = ``session_id`` = the session's id.

    An event's own ``session_id`` is used when it has one (as ``<user>/<session_id>``, unless the
    session id is the user id); otherwise a user's events are split after ``gap_seconds`` of
    inactivity into ``<user>#<n>``. Events must be in time order.
    """
    last: dict[str, tuple[float, int]] = {}
    out = []
    for e in events:
        if e.session_id is not None:
            key = e.session_id if e.session_id == e.user_id else f"{e.user_id}/{e.session_id}"
        else:
            t, n = last.get(e.user_id, (-math.inf, 0))
            if e.ts - t > gap_seconds:
                n += 1
            last[e.user_id] = (e.ts, n)
            key = f"{e.user_id}#{n}"
        out.append(msgspec.structs.replace(e, user_id=key, session_id=key))
    return out


__all__ = ["FORMATS", "TAOBAO_TYPES", "DataSpec", "Loaded", "load", "sessions_of"]
