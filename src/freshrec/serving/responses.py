"""Fast JSON responses encoded with msgspec."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi.responses import Response

_encoder = msgspec.json.Encoder()


class MsgspecResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def error_body(message: str, status: int) -> MsgspecResponse:
    return MsgspecResponse({"error": message}, status_code=status)
