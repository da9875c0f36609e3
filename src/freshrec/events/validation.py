"""Validation of incoming events: every rejection names the field.

>>> v = EventValidator(now=lambda: 1_700_000_000.0)
>>> batch = v.validate_many([
...     {"type": "view", "user_id": "u1", "item_id": "i1", "timestamp": 1_699_999_000},
...     {"type": "teleport", "user_id": "u1", "item_id": "i1"},
... ])
>>> [e.item_id for e in batch.events], batch.errors
(['i1'], [(1, "type: unknown event type 'teleport'")])
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from freshrec.errors import BadRequest, PayloadTooLarge, ValidationError
from freshrec.events.schema import (
    EVENT_TYPES,
    MAX_CONTEXT_KEYS,
    MAX_ID_LENGTH,
    Event,
    LoggedEvent,
    type_code,
)

MAX_FUTURE_SECONDS = 86_400.0


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    events: list[Event]


@dataclass(slots=True)
class ValidatedBatch:
    """The valid events of a request (in order) and ``(index, reason)`` for each invalid one."""

    events: list[LoggedEvent] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


_FIELD_IN_MESSAGE = re.compile(r"^Object (missing required|contains unknown) field `([^`]+)`$")


def _field_error(exc: msgspec.ValidationError) -> str:
    """Turn msgspec's ``"Expected `str`, got `int` - at `$.user_id`"`` into ``"user_id: ..."``."""
    text = str(exc)
    message, sep, where = text.rpartition(" - at `")
    if not sep:
        message, where = text, "$`"
    path = where.rstrip("`").removeprefix("$").lstrip(".")
    named = _FIELD_IN_MESSAGE.match(message)
    if named:
        what = "is required" if named.group(1) == "missing required" else "is not a known field"
        return f"{path + '.' if path else ''}{named.group(2)}: {what}"
    return f"{path or 'event'}: {message}"


def _check_id(name: str, value: str | None, required: bool) -> None:
    if value is None:
        if required:
            raise ValidationError(name, "is required")
        return
    if not value:
        raise ValidationError(name, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValidationError(name, f"longer than {MAX_ID_LENGTH} characters ({len(value)})")


def parse_timestamp(value: str | float) -> float:
    """Unix seconds from RFC 3339 text or a number of seconds.

    >>> parse_timestamp("2024-01-01T00:00:00Z"), parse_timestamp(17.5)
    (1704067200.0, 17.5)
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError("timestamp", f"not RFC 3339 or unix seconds: {value!r}") from None
        if parsed.tzinfo is None:
            raise ValidationError("timestamp", "RFC 3339 time needs a UTC offset (e.g. 'Z')")
        return parsed.timestamp()
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValidationError("timestamp", f"must be a finite, non-negative unix time: {value!r}")
    return seconds


class EventValidator:
    """Checks events against the contract of DESIGN §3 and normalises them for the log."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now

    def normalise(self, event: Event, now: float, decoded: bool = False) -> LoggedEvent:
        """A valid ``LoggedEvent`` from ``event``, or ``ValidationError`` naming the field.

        ``decoded`` says msgspec built ``event`` from JSON or a dict, so the declared
        constraints (id lengths, context size) were already checked in C.
        """
        try:
            code = type_code(event.type)
        except KeyError:
            raise ValidationError("type", f"unknown event type {event.type!r}") from None
        if not decoded:
            self._check_constraints(event)
        if event.timestamp is None:
            ts = now
        else:
            ts = parse_timestamp(event.timestamp)
            if ts > now + MAX_FUTURE_SECONDS:
                raise ValidationError("timestamp", "more than 1 day in the future")
        if event.value is not None and not math.isfinite(event.value):
            raise ValidationError("value", "must be a finite number")
        return LoggedEvent(
            code,
            event.user_id,
            event.item_id,
            ts,
            event.event_id,
            event.session_id,
            event.context,
            event.recommendation_id,
            event.value,
        )

    @staticmethod
    def _check_constraints(event: Event) -> None:
        _check_id("user_id", event.user_id, required=True)
        _check_id("item_id", event.item_id, required=True)
        _check_id("event_id", event.event_id, required=False)
        _check_id("session_id", event.session_id, required=False)
        _check_id("recommendation_id", event.recommendation_id, required=False)
        if event.context is not None and len(event.context) > MAX_CONTEXT_KEYS:
            raise ValidationError(
                "context", f"at most {MAX_CONTEXT_KEYS} keys allowed ({len(event.context)})"
            )

    def _collect(self, items: Iterable[Any], decoded: bool) -> ValidatedBatch:
        """Normalise each item; ``decoded`` = they are Events msgspec built from JSON."""
        out = ValidatedBatch()
        now = self._now()
        for index, item in enumerate(items):
            try:
                checked = decoded
                if not decoded and not isinstance(item, Event):
                    if not isinstance(item, dict):
                        raise ValidationError(
                            "event", f"expected an object, got {type(item).__name__}"
                        )
                    item = msgspec.convert(item, Event)
                    checked = True
                out.events.append(self.normalise(item, now, decoded=checked))
            except msgspec.ValidationError as exc:
                out.errors.append((index, _field_error(exc)))
            except ValidationError as exc:
                out.errors.append((index, str(exc)))
        return out

    def validate_many(self, items: Iterable[Event | dict[str, Any]]) -> ValidatedBatch:
        """Validate Python objects (``Event`` or plain dicts)."""
        return self._collect(items, decoded=False)

    def validate_json(self, body: bytes, max_batch: int) -> ValidatedBatch:
        """Validate an HTTP body: one event object or ``{"events": [...]}``."""
        try:
            batch = msgspec.json.decode(body, type=_Batch)
        except msgspec.ValidationError:
            pass  # some event is invalid or this is a single event: take the slow, per-item path
        except msgspec.DecodeError as exc:
            raise BadRequest(f"body: not valid JSON ({exc})") from None
        else:
            self._check_size(len(batch.events), max_batch)
            return self._collect(batch.events, decoded=True)
        try:  # the typed pass may stop at a field before reaching a syntax error further on
            raw = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise BadRequest(f"body: not valid JSON ({exc})") from None
        if isinstance(raw, dict) and "events" in raw:
            if not isinstance(raw["events"], list):
                raise BadRequest("events: expected an array of events")
            unknown = sorted(set(raw) - {"events"})
            if unknown:
                raise BadRequest(f"{unknown[0]}: unknown field next to 'events'")
            self._check_size(len(raw["events"]), max_batch)
            return self._collect(raw["events"], decoded=False)
        if isinstance(raw, dict):
            return self._collect([raw], decoded=False)
        raise BadRequest('body: expected an event object or {"events": [...]}')

    @staticmethod
    def _check_size(n: int, max_batch: int) -> None:
        if n > max_batch:
            raise PayloadTooLarge(f"events: batch of {n} events is over the limit of {max_batch}")
        if n == 0:
            raise BadRequest("events: the batch is empty")


__all__ = ["EVENT_TYPES", "EventValidator", "ValidatedBatch", "parse_timestamp"]
