"""The catalogue: ``POST /v1/items`` (bulk upsert), ``PUT/PATCH/GET/DELETE /v1/items/{id}``."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from freshrec.errors import BadRequest, NotFound, PayloadTooLarge, ValidationError
from freshrec.serving.bodies import convert, json_body
from freshrec.serving.deps import EngineDep, SettingsDep
from freshrec.serving.responses import MsgspecResponse
from freshrec.serving.routes.events import read_body
from freshrec.state.catalogue import Item

router = APIRouter(tags=["catalogue"])

_ITEM_SCHEMA = msgspec.json.schema_components([Item])[1]["Item"]


def _item(doc: Any, item_id: str | None = None) -> Item:
    """An ``Item`` from a JSON object, the error naming the field."""
    if not isinstance(doc, dict):
        raise ValidationError("body", "must be an item object")
    if item_id is not None:
        given = doc.get("item_id", item_id)
        if given != item_id:
            raise ValidationError("item_id", f"{given!r} differs from the URL's {item_id!r}")
        doc = {**doc, "item_id": item_id}
    doc.pop("updated_at", None)
    return convert(doc, Item)


@router.post(
    "/v1/items",
    summary="Insert or replace up to 10,000 catalogue items",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["items"],
                        "properties": {"items": {"type": "array", "items": _ITEM_SCHEMA}},
                    }
                }
            },
        }
    },
)
async def post_items(request: Request, engine: EngineDep, settings: SettingsDep) -> MsgspecResponse:
    limit = max(settings.max_body_bytes, 16 * 1_048_576)
    body = json_body(await read_body(request, limit, '{"items": [...]}'))
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise BadRequest('items: send {"items": [...]}')
    docs = body["items"]
    if not docs:
        raise BadRequest("items: the batch is empty")
    limit = settings.max_catalogue_batch
    if len(docs) > limit:
        raise PayloadTooLarge(f"items: {len(docs)} items is over the limit of {limit} per call")
    valid: list[Item] = []
    errors = []
    for index, doc in enumerate(docs):
        try:
            valid.append(_item(doc))
        except ValidationError as exc:
            item_id = doc.get("item_id") if isinstance(doc, dict) else None
            errors.append({"index": index, "item_id": item_id, "error": str(exc)})
    if valid:
        await run_in_threadpool(_upsert, engine, valid)
    content = {"upserted": len(valid), "errors": errors}
    if errors and not valid:
        content["error"] = f"no valid item: {errors[0]['error']}"
        return MsgspecResponse(content, status_code=422)
    return MsgspecResponse(content, status_code=200)


def _upsert(engine: Any, items: list[Item]) -> None:
    with engine.lock:
        engine.catalogue.upsert(items)


@router.put("/v1/items/{item_id}", summary="Insert or replace one catalogue item")
async def put_item(request: Request, item_id: str, engine: EngineDep) -> MsgspecResponse:
    item = _item(json_body(await read_body(request, 1_048_576)), item_id)
    await run_in_threadpool(_upsert, engine, [item])
    return MsgspecResponse(item)


@router.patch("/v1/items/{item_id}", summary="Change some fields of a catalogue item")
async def patch_item(request: Request, item_id: str, engine: EngineDep) -> MsgspecResponse:
    changes = json_body(await read_body(request, 1_048_576))
    if not isinstance(changes, dict):
        raise ValidationError("body", "must be an object of fields to change")
    current = engine.catalogue.get(item_id)
    if current is None:
        raise NotFound(f"item_id: {item_id!r} is not in the catalogue")
    item = _item({**msgspec.to_builtins(current), **changes}, item_id)
    await run_in_threadpool(_upsert, engine, [item])
    return MsgspecResponse(item)


@router.get("/v1/items/{item_id}", summary="One catalogue item")
async def get_item(item_id: str, engine: EngineDep) -> MsgspecResponse:
    item = engine.catalogue.get(item_id)
    if item is None:
        raise NotFound(f"item_id: {item_id!r} is not in the catalogue")
    return MsgspecResponse(item)


@router.delete("/v1/items/{item_id}", status_code=204, summary="Remove an item")
async def delete_item(item_id: str, engine: EngineDep) -> Response:
    def delete() -> bool:
        with engine.lock:
            return engine.catalogue.delete(item_id)

    if not await run_in_threadpool(delete):
        raise NotFound(f"item_id: unknown item {item_id!r}")
    return Response(status_code=204)
