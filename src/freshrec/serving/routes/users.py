"""User profiles: ``PUT/GET/DELETE /v1/users/{id}`` (optional attributes for cold start)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from freshrec.errors import NotFound, ValidationError
from freshrec.serving.bodies import convert, json_body
from freshrec.serving.deps import EngineDep
from freshrec.serving.responses import MsgspecResponse
from freshrec.serving.routes.events import read_body
from freshrec.state.profiles import Profile

router = APIRouter(tags=["users"])


@router.put("/v1/users/{user_id}", summary="Set a user's attributes (all optional)")
async def put_user(request: Request, user_id: str, engine: EngineDep) -> MsgspecResponse:
    doc = json_body(await read_body(request, 65_536))
    if not isinstance(doc, dict):
        raise ValidationError("body", "must be an object")
    if doc.get("user_id", user_id) != user_id:
        raise ValidationError("user_id", f"differs from the URL's {user_id!r}")
    profile = convert({**doc, "user_id": user_id}, Profile)

    def put() -> None:
        with engine.lock:
            engine.profiles.put(profile)

    await run_in_threadpool(put)
    return MsgspecResponse(profile)


@router.get("/v1/users/{user_id}", summary="A user's attributes")
async def get_user(user_id: str, engine: EngineDep) -> MsgspecResponse:
    profile = engine.profiles.get(user_id)
    if profile is None:
        raise NotFound(f"user_id: no profile for {user_id!r}")
    return MsgspecResponse(profile)


@router.delete("/v1/users/{user_id}", status_code=204, summary="Forget a user's attributes")
async def delete_user(user_id: str, engine: EngineDep) -> Response:
    def delete() -> bool:
        with engine.lock:
            return engine.profiles.delete(user_id)

    if not await run_in_threadpool(delete):
        raise NotFound(f"user_id: no profile for {user_id!r}")
    return Response(status_code=204)
