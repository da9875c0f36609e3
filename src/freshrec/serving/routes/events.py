"""``POST /v1/events``: one event or ``{"events": [...]}``, durable before the 202."""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from freshrec.errors import BadRequest, PayloadTooLarge
from freshrec.events import Event
from freshrec.serving.deps import EngineDep, SettingsDep
from freshrec.serving.responses import MsgspecResponse

router = APIRouter(tags=["events"])


async def read_body(request: Request, limit: int, expected: str = "a JSON object") -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading it all; an empty
    one is a ``BadRequest`` saying what was ``expected``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("content-length: not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"body: {declared} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body: over the limit of {limit} bytes")
        chunks.append(chunk)
    if not size:
        raise BadRequest(f"body: empty; send {expected}")
    return b"".join(chunks)


_EVENT_SCHEMA = msgspec.json.schema_components([Event])[1]["Event"]
_BODY_SCHEMA = {
    "oneOf": [
        _EVENT_SCHEMA,
        {
            "type": "object",
            "required": ["events"],
            "properties": {"events": {"type": "array", "items": _EVENT_SCHEMA, "maxItems": 10_000}},
        },
    ]
}


@router.post(
    "/v1/events",
    status_code=202,
    summary="Ingest one event or a batch",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}
    },
)
async def post_events(
    request: Request, engine: EngineDep, settings: SettingsDep
) -> MsgspecResponse:
    body = await read_body(request, settings.max_body_bytes, 'an event object or {"events": [...]}')
    result = await run_in_threadpool(engine.ingest_json, body)
    errors = [{"index": i, "error": e} for i, e in result.errors]
    content = {"accepted": result.accepted, "duplicates": result.duplicates, "errors": errors}
    if errors and not result.accepted and not result.duplicates:
        content["error"] = f"no valid event: {errors[0]['error']}" + (
            "" if len(errors) == 1 else f" (and {len(errors) - 1} more)"
        )
        return MsgspecResponse(content, status_code=422)
    return MsgspecResponse(content, status_code=202)
