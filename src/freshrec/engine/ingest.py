"""The ingest path shared by the embedded engine and a scale-out replica: validate, durably
append to the log (which de-duplicates), then tell the listeners (e.g. click attribution)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from freshrec.events import Event, EventValidator, LoggedEvent, ValidatedBatch
from freshrec.log import EventLog
from freshrec.settings import Settings

log = logging.getLogger("freshrec.engine")


class IngestResult(msgspec.Struct):
    """What an ingest call did: events accepted, duplicates dropped, ``(index, reason)`` errors."""

    accepted: int
    duplicates: int
    errors: list[tuple[int, str]]


class LogIngest:
    """``ingest`` / ``ingest_json`` over ``self.log``; the class using it sets the attributes
    below in its ``__init__`` and may override ``_appended``."""

    settings: Settings
    log: EventLog
    validator: EventValidator
    rejected: int
    _ingest_lock: threading.Lock
    ingest_listeners: list[Callable[[list[LoggedEvent]], object]]

    def ingest(
        self, events: Event | Mapping[str, Any] | Iterable[Event | Mapping[str, Any]]
    ) -> IngestResult:
        """Validate, de-duplicate and durably append events; returns what was accepted."""
        if isinstance(events, Event | Mapping):
            events = [events]  # type: ignore[list-item]
        return self._append(self.validator.validate_many(events))  # type: ignore[arg-type]

    def ingest_json(self, body: bytes) -> IngestResult:
        """Ingest an HTTP body: one event object or ``{"events": [...]}``."""
        return self._append(self.validator.validate_json(body, self.settings.max_batch_events))

    def _appended(self) -> None:
        """Called after each durable append (the embedded engine wakes its processor)."""

    def _append(self, batch: ValidatedBatch) -> IngestResult:
        with self._ingest_lock:
            self.rejected += len(batch.errors)
        if not batch.events:
            return IngestResult(0, 0, batch.errors)
        result = self.log.append(batch.events)
        self._appended()
        accepted = batch.events
        if result.duplicates and len(result.accepted_mask) == len(accepted):
            # what the log dropped as resent (by any replica) is not attributed again
            accepted = [e for e, kept in zip(accepted, result.accepted_mask, strict=True) if kept]
        for listener in self.ingest_listeners:  # e.g. feedback attribution (serving)
            try:
                listener(accepted)
            except Exception:  # the events are durable: never fail the ingest for a listener
                log.exception("ingest listener failed")
        return IngestResult(result.accepted, result.duplicates, batch.errors)
