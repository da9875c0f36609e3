"""One root error for freshrec; each subclass knows the HTTP status it maps to."""

from __future__ import annotations


class FreshrecError(Exception):
    """Base of every error freshrec raises on purpose."""

    status_code = 500


class ValidationError(FreshrecError, ValueError):
    """An input (event, request, setting) is invalid; the message names the field."""

    status_code = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PayloadTooLarge(FreshrecError):
    status_code = 413


class BadRequest(FreshrecError):
    status_code = 400


class NotFound(FreshrecError):
    status_code = 404


class NotReady(FreshrecError):
    status_code = 503


class StorageError(FreshrecError):
    """The durable log or a snapshot could not be read or written."""

    status_code = 503


class Conflict(FreshrecError):
    """The request clashes with the current state (e.g. an experiment is already running, or
    there is nothing to roll back to)."""

    status_code = 409
