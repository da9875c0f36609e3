"""JSON request bodies of the shop routes: decoding, and msgspec errors named by field."""

from __future__ import annotations

from typing import Any

import msgspec

from freshrec.errors import BadRequest, ValidationError

_decode_any = msgspec.json.Decoder().decode


def json_body(body: bytes) -> Any:
    """The decoded body; ``BadRequest`` if it is not JSON."""
    try:
        return _decode_any(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body: not valid JSON ({exc})") from exc


def convert(doc: Any, type_: type) -> Any:
    """``doc`` as ``type_`` (a msgspec struct); ``ValidationError`` naming the field."""
    try:
        return msgspec.convert(doc, type_)
    except msgspec.ValidationError as exc:
        raise ValidationError(*field_message(str(exc))) from exc


def field_message(text: str) -> tuple[str, str]:
    """msgspec's "Expected `float`, got `str` - at `$.price`" as ("price", "Expected ...").

    >>> field_message("Expected `float`, got `str` - at `$.arms[1].percent`")
    ('arms[1].percent', 'Expected `float`, got `str`')
    >>> field_message("Object missing required field `id`")
    ('id', 'Object missing required field `id`')
    """
    message, _, where = text.partition(" - at `$")
    field = where.rstrip("`").lstrip(".") or "body"
    if message.startswith(("Object missing required field", "Object contains unknown field")):
        field = message.split("`")[1] if field == "body" else f"{field}.{message.split('`')[1]}"
    return field, message
