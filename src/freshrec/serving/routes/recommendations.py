"""``GET /v1/recommendations`` and ``GET /v1/items/{item_id}/similar``."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from freshrec.serving.deps import EngineDep
from freshrec.serving.query import header, parse_query, query_parameters
from freshrec.serving.responses import MsgspecResponse
from freshrec.serving.service import recommendation_id

router = APIRouter(tags=["recommendations"])

MAX_K = 1000


class RecommendationQuery(BaseModel):
    """The query of ``GET /v1/recommendations`` (one model: validated in one call)."""

    user_id: str = Field(min_length=1, max_length=256)
    k: int = Field(10, ge=1, le=MAX_K)
    exclude: str | None = Field(None, description="Comma-separated item ids to leave out")
    device: str | None = Field(None, description="mobile, tablet, desktop, ...")
    country: str | None = Field(None, description="ISO 3166 alpha-2 code")
    tz_offset_minutes: int | None = Field(
        None, ge=-720, le=840, description="Shopper's UTC offset, minutes east"
    )
    category: str | None = Field(
        None, min_length=1, max_length=256, description="Only this category"
    )
    min_price: float | None = Field(None, description="Lowest price shown")
    max_price: float | None = Field(None, description="Highest price shown")
    exclude_purchased: bool | None = Field(
        None, description="Leave out bought items (default: the setting)"
    )
    exclude_viewed: bool = Field(False, description="Leave out the user's recent items")
    max_per_category: int | None = Field(
        None, ge=0, le=MAX_K, description="Diversity: most items per category"
    )
    strategy: str | None = Field(
        None, description="ensemble, popular or cold_start (default: A/B arm)"
    )


@router.get(
    "/v1/recommendations",
    summary="Top-k items for a user, each with a reason",
    openapi_extra={"parameters": query_parameters(RecommendationQuery)},
)
async def recommendations(request: Request) -> MsgspecResponse:
    """The hot path: the query is validated in one call (``freshrec.serving.query``) and the
    engine read from the app's state, not through dependencies FastAPI resolves per request."""
    q = parse_query(RecommendationQuery, request)
    state = request.app.state
    engine, service = state.engine, state.service
    given = (
        ("device", q.device),
        ("country", q.country),
        ("tz_offset_minutes", q.tz_offset_minutes),
    )
    context = {key: v for key, v in given if v is not None}
    trusted = engine.settings.trusted_country_header
    start = time.perf_counter()
    filters = engine.default_filters(
        exclude=tuple(x for x in q.exclude.split(",") if x) if q.exclude else None,
        category=q.category,
        min_price=q.min_price,
        max_price=q.max_price,
        exclude_purchased=q.exclude_purchased,
        exclude_viewed=q.exclude_viewed,
        max_per_category=q.max_per_category,
    )
    body = await service.recommend_async(
        q.user_id,
        q.k,
        filters,
        context or None,
        strategy=q.strategy,
        user_agent=header(request.scope, b"user-agent"),
        trusted_country=header(request.scope, trusted.lower().encode("latin-1"))
        if trusted
        else None,
    )
    state.metrics.recommend_latency.observe(time.perf_counter() - start)
    return MsgspecResponse(body)


@router.get("/v1/items/{item_id}/similar", summary="Items shoppers interact with around this one")
async def similar(
    engine: EngineDep, item_id: str, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10
) -> MsgspecResponse:
    return MsgspecResponse(
        {
            "recommendation_id": recommendation_id(),
            "model_version": engine.model_version,
            "item_id": item_id,
            "items": engine.similar(item_id, k),
        }
    )
