"""``GET /v1/recommendations`` and ``GET /v1/items/{item_id}/similar``."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from freshrec.serving.deps import EngineDep, MetricsDep
from freshrec.serving.responses import MsgspecResponse

router = APIRouter(tags=["recommendations"])

MAX_K = 1000


@router.get("/v1/recommendations", summary="Top-k items for a user, each with a reason")
async def recommendations(
    request: Request,
    engine: EngineDep,
    metrics: MetricsDep,
    user_id: Annotated[str, Query(min_length=1, max_length=256)],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    exclude: Annotated[
        str | None, Query(description="Comma-separated item ids to leave out")
    ] = None,
    device: Annotated[str | None, Query(description="mobile, tablet, desktop, ...")] = None,
    country: Annotated[str | None, Query(description="ISO 3166 alpha-2 code")] = None,
    tz_offset_minutes: Annotated[
        int | None, Query(ge=-720, le=840, description="Shopper's UTC offset, minutes east")
    ] = None,
) -> MsgspecResponse:
    given = (("device", device), ("country", country), ("tz_offset_minutes", tz_offset_minutes))
    context = {key: v for key, v in given if v is not None}
    header = engine.settings.trusted_country_header
    start = time.perf_counter()
    items = engine.recommend(
        user_id,
        k,
        context=context or None,
        exclude=exclude.split(",") if exclude else None,
        user_agent=request.headers.get("user-agent"),
        trusted_country=request.headers.get(header) if header else None,
    )
    metrics.recommend_latency.observe(time.perf_counter() - start)
    return MsgspecResponse(
        {
            "recommendation_id": uuid.uuid4().hex,
            "model_version": engine.model_version,
            "user_id": user_id,
            "items": items,
        }
    )


@router.get("/v1/items/{item_id}/similar", summary="Items shoppers interact with around this one")
async def similar(
    engine: EngineDep, item_id: str, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10
) -> MsgspecResponse:
    return MsgspecResponse(
        {
            "recommendation_id": uuid.uuid4().hex,
            "model_version": engine.model_version,
            "item_id": item_id,
            "items": engine.similar(item_id, k),
        }
    )
