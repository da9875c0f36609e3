"""The log interface every backend implements, and the URL-scheme registry that opens them."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from freshrec.errors import ValidationError
from freshrec.events import LoggedEvent


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one durable append did: ``accepted`` events got offsets from ``first_offset`` on."""

    first_offset: int
    accepted: int
    duplicates: int
    accepted_mask: tuple[bool, ...] = ()


class EventLog(abc.ABC):
    """An append-only sequence of events; offset ``n`` is the n-th accepted event (from 0)."""

    @abc.abstractmethod
    def append(self, events: list[LoggedEvent]) -> AppendResult:
        """Drop events whose ``event_id`` was seen within the dedup window, then append the rest
        durably (fsync'd) before returning. Atomic: all of the batch is stored, or none."""

    @abc.abstractmethod
    def read(self, offset: int, max_events: int) -> list[LoggedEvent]:
        """Up to ``max_events`` events starting at ``offset`` (empty at the end)."""

    @abc.abstractmethod
    def end_offset(self) -> int:
        """Offset the next appended event will get (= events accepted so far)."""

    @abc.abstractmethod
    def committed(self, consumer: str) -> int:
        """The consumer's committed offset: every event before it has been processed."""

    @abc.abstractmethod
    def commit(self, consumer: str, offset: int) -> None:
        """Record durably that ``consumer`` processed every event before ``offset``."""

    def duplicates_total(self) -> int:
        """Events dropped as duplicates since the log was created."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release files and connections."""


_BACKENDS: dict[str, Callable[..., EventLog]] = {}


def register_log(scheme: str, factory: Callable[..., EventLog]) -> None:
    """Make ``open_log`` open URLs of ``scheme`` with ``factory(url, **options)``."""
    _BACKENDS[scheme] = factory


def open_log(url: str, **options: Any) -> EventLog:
    """Open the log backend named by the URL's scheme (``sqlite://``, ``memory://``, ...)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    try:
        factory = _BACKENDS[scheme]
    except KeyError:
        known = ", ".join(sorted(f"{s}://" for s in _BACKENDS))
        raise ValidationError("log_url", f"unknown log backend {url!r} (known: {known})") from None
    return factory(url, **options)
