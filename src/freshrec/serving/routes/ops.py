"""Operations: ``/v1/stats``, ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from freshrec.serving.deps import EngineDep, MetricsDep, ServiceDep
from freshrec.serving.responses import MsgspecResponse

router = APIRouter(tags=["operations"])


@router.get("/v1/stats", summary="Event counts, catalogue size, CTR and conversion")
async def stats(engine: EngineDep, service: ServiceDep) -> MsgspecResponse:
    return MsgspecResponse({**engine.stats(), **service.stats()})


@router.get("/healthz", summary="The process is alive")
async def healthz() -> MsgspecResponse:
    return MsgspecResponse({"status": "ok"})


@router.get("/readyz", summary="The log is replayed and the processor is running")
async def readyz(engine: EngineDep) -> MsgspecResponse:
    s = engine.stats()
    if not s["ready"]:
        reason = s.get("reason") or (
            f"replaying the event log: {s['events_processed']} of "
            f"{s['events_accepted']} events processed"
        )
        return MsgspecResponse({"status": "not ready", "reason": reason}, status_code=503)
    return MsgspecResponse({"status": "ready"})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
