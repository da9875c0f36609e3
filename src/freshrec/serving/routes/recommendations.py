"""``GET /v1/recommendations`` and ``GET /v1/items/{item_id}/similar``."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from freshrec.serving.deps import EngineDep, MetricsDep, ServiceDep
from freshrec.serving.responses import MsgspecResponse

router = APIRouter(tags=["recommendations"])

MAX_K = 1000


@router.get("/v1/recommendations", summary="Top-k items for a user, each with a reason")
async def recommendations(
    request: Request,
    engine: EngineDep,
    service: ServiceDep,
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
    category: Annotated[
        str | None, Query(min_length=1, max_length=256, description="Only this category")
    ] = None,
    min_price: Annotated[float | None, Query(description="Lowest price shown")] = None,
    max_price: Annotated[float | None, Query(description="Highest price shown")] = None,
    exclude_purchased: Annotated[
        bool | None, Query(description="Leave out bought items (default: the setting)")
    ] = None,
    exclude_viewed: Annotated[bool, Query(description="Leave out the user's recent items")] = False,
    max_per_category: Annotated[
        int | None, Query(ge=0, le=MAX_K, description="Diversity: most items per category")
    ] = None,
    strategy: Annotated[
        str | None, Query(description="ensemble, popular or cold_start (default: A/B arm)")
    ] = None,
) -> MsgspecResponse:
    given = (("device", device), ("country", country), ("tz_offset_minutes", tz_offset_minutes))
    context = {key: v for key, v in given if v is not None}
    header = engine.settings.trusted_country_header
    start = time.perf_counter()
    filters = engine.default_filters(
        exclude=tuple(x for x in exclude.split(",") if x) if exclude else None,
        category=category,
        min_price=min_price,
        max_price=max_price,
        exclude_purchased=exclude_purchased,
        exclude_viewed=exclude_viewed,
        max_per_category=max_per_category,
    )
    body = await service.recommend_async(
        user_id,
        k,
        filters,
        context or None,
        strategy=strategy,
        user_agent=request.headers.get("user-agent"),
        trusted_country=request.headers.get(header) if header else None,
    )
    metrics.recommend_latency.observe(time.perf_counter() - start)
    return MsgspecResponse(body)


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
