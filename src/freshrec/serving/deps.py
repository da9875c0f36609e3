"""Dependencies shared by the routers: the engine, settings and metrics of this app.

They are ``async`` so FastAPI calls them inline: a plain ``def`` dependency is run in a worker
thread, one thread hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from freshrec.engine import Engine
from freshrec.serving.metrics import Metrics
from freshrec.serving.service import RecommendService
from freshrec.settings import Settings


async def _engine(request: Request) -> Engine:
    return request.app.state.engine


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def _settings(request: Request) -> Settings:
    return request.app.state.engine.settings


async def _service(request: Request) -> RecommendService:
    return request.app.state.service


EngineDep = Annotated[Engine, Depends(_engine)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
SettingsDep = Annotated[Settings, Depends(_settings)]
ServiceDep = Annotated[RecommendService, Depends(_service)]
