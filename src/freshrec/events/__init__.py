"""Event schema, validation, event-type weights and the de-duplication key."""

from freshrec.events.schema import EVENT_TYPES, Event, EventType, LoggedEvent, type_code
from freshrec.events.validation import EventValidator, ValidatedBatch

__all__ = [
    "EVENT_TYPES",
    "Event",
    "EventType",
    "EventValidator",
    "LoggedEvent",
    "ValidatedBatch",
    "type_code",
]
