"""The event contract (DESIGN §3) and its compact, logged form.

``Event`` is what a shop sends; ``LoggedEvent`` is the validated, normalised record appended to
the log (timestamp resolved to unix seconds, type as a small integer code), encoded as a msgpack
array so replay decodes a whole chunk in one call.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import msgspec


class EventType(enum.IntEnum):
    """Known event types, in the order of their codes (codes are stored in the log: append only)."""

    view = 0
    click = 1
    favorite = 2
    add_to_cart = 3
    remove_from_cart = 4
    purchase = 5
    impression = 6
    rating = 7


EVENT_TYPES: tuple[str, ...] = tuple(t.name for t in EventType)
_CODES = {t.name: int(t) for t in EventType}


def type_code(name: str) -> int:
    """Code of an event type name; raises ``KeyError`` for an unknown one."""
    return _CODES[name]


MAX_ID_LENGTH = 256
MAX_CONTEXT_KEYS = 64
# checked in C while decoding JSON (or converting dicts); Event objects built in Python are
# checked by the validator instead
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Context = Annotated[dict[str, Any], msgspec.Meta(max_length=MAX_CONTEXT_KEYS)]


class Event(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """An interaction a shop reports. ``timestamp`` is RFC 3339 text or unix seconds."""

    type: str
    user_id: Id
    item_id: Id
    event_id: Id | None = None
    session_id: Id | None = None
    timestamp: str | float | None = None
    context: Context | None = None
    recommendation_id: Id | None = None
    value: float | None = None


class LoggedEvent(msgspec.Struct, array_like=True, omit_defaults=False, gc=False):
    """A validated event as stored in the log; ``ts`` is unix seconds (event time).

    Not tracked by the garbage collector (``gc=False``: millions pass through the processor and
    none can be part of a reference cycle), which saves full collections on replay.
    """

    type: int
    user_id: str
    item_id: str
    ts: float
    event_id: str | None = None
    session_id: str | None = None
    context: dict[str, Any] | None = None
    recommendation_id: str | None = None
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event in its public (``Event``) form."""
        out: dict[str, Any] = {
            "type": EVENT_TYPES[self.type],
            "user_id": self.user_id,
            "item_id": self.item_id,
            "timestamp": self.ts,
        }
        for name in ("event_id", "session_id", "context", "recommendation_id", "value"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out
