"""``GET /v1/drift/events``: every drift detection kept, with the action taken."""

from __future__ import annotations

from fastapi import APIRouter

from freshrec.serving.deps import EngineDep
from freshrec.serving.responses import MsgspecResponse

router = APIRouter(tags=["drift"])


@router.get("/v1/drift/events", summary="Drift detections and the actions taken")
async def drift_events(engine: EngineDep) -> MsgspecResponse:
    return MsgspecResponse(engine.drift_events())
