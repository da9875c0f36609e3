"""``GET /v1/models``: the serving models, their live hit rates and ensemble weights."""

from __future__ import annotations

from fastapi import APIRouter

from freshrec.serving.deps import EngineDep
from freshrec.serving.responses import MsgspecResponse

router = APIRouter(tags=["models"])


@router.get("/v1/models", summary="Models, live hit rates and ensemble weights")
async def models(engine: EngineDep) -> MsgspecResponse:
    return MsgspecResponse(engine.models_info())
