"""A/B tests: ``POST /v1/experiments``, ``GET /v1/experiments[/{id}]``, ``POST .../stop``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from freshrec.engine.experiments import ExperimentSpec
from freshrec.serving.bodies import convert, json_body
from freshrec.serving.deps import ServiceDep
from freshrec.serving.responses import MsgspecResponse
from freshrec.serving.routes.events import read_body

router = APIRouter(tags=["experiments"])


@router.post("/v1/experiments", status_code=201, summary="Start an A/B test")
async def create(request: Request, service: ServiceDep) -> MsgspecResponse:
    doc = json_body(await read_body(request, 65_536))
    spec = convert(doc, ExperimentSpec)
    exp = service.experiments.create(spec)
    return MsgspecResponse(exp.readout(), status_code=201)


@router.get("/v1/experiments", summary="Every experiment and its readout")
async def list_all(service: ServiceDep) -> MsgspecResponse:
    return MsgspecResponse(
        {"experiments": [e.readout() for e in service.experiments.by_id.values()]}
    )


@router.get("/v1/experiments/{experiment_id}", summary="Per-arm CTR and conversion with CIs")
async def readout(experiment_id: str, service: ServiceDep) -> MsgspecResponse:
    return MsgspecResponse(service.experiments.get(experiment_id).readout())


@router.post("/v1/experiments/{experiment_id}/stop", summary="Stop splitting traffic")
async def stop(experiment_id: str, service: ServiceDep) -> MsgspecResponse:
    return MsgspecResponse(service.experiments.stop(experiment_id).readout())
