"""``/v1/models``: the serving models, live hit rates, ensemble weights and model versions;
promote a version, roll back to the one before."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from freshrec.serving.deps import EngineDep
from freshrec.serving.responses import MsgspecResponse

router = APIRouter(tags=["models"])


@router.get("/v1/models", summary="Models, live hit rates, ensemble weights and versions")
async def models(engine: EngineDep) -> MsgspecResponse:
    info = engine.models_info()
    info["versions"] = await run_in_threadpool(engine.versions)
    return MsgspecResponse(info)


@router.post("/v1/models/rollback", summary="Back to the version promoted before the current one")
async def rollback(engine: EngineDep) -> MsgspecResponse:
    return MsgspecResponse(await run_in_threadpool(engine.rollback))


@router.post("/v1/models/{version}/promote", summary="Serve a version's exact parameters")
async def promote(version: str, engine: EngineDep) -> MsgspecResponse:
    return MsgspecResponse(await run_in_threadpool(engine.promote, version))
