"""The FastAPI application: wires routers, error handling and metrics around one ``Engine``."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from freshrec.engine import Engine
from freshrec.engine.warmup import compile_kernels
from freshrec.errors import FreshrecError
from freshrec.features.useragent import warm_up
from freshrec.serving.lane import FastLane, LaneApp
from freshrec.serving.metrics import LatencyMiddleware, Metrics
from freshrec.serving.responses import error_body
from freshrec.serving.routes import (
    drift,
    events,
    experiments,
    items,
    models,
    ops,
    recommendations,
    users,
)
from freshrec.serving.service import RecommendService
from freshrec.serving.shop_metrics import ShopCollector

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


def create_app(
    engine: Engine,
    run_processor: bool = True,
    close_engine: bool = False,
    freeze_heap: bool = False,
    fast_lane: bool = True,
) -> LaneApp:
    """An app serving ``engine``; its processor runs in the background while the app is up.

    With ``close_engine`` the engine is closed (final snapshot) when the server shuts down, before
    the server re-raises a SIGTERM that stopped it. With ``freeze_heap`` (the server process),
    everything alive once the engine is loaded and warmed up is moved out of the cyclic garbage
    collector's sight (``gc.freeze``): with a large catalogue its full collections otherwise
    scan millions of long-lived objects, a pause of a few hundred milliseconds that every
    request in flight waits for. ``fast_lane`` serves ``GET /v1/recommendations`` in front of
    FastAPI's layers, routing and dependency machinery (``freshrec.serving.lane``; same
    responses).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warm_up()  # load the User-Agent rules now, not on the first request that needs them
        if run_processor:  # its first micro-batch would compile them while requests wait
            seconds = compile_kernels()
            if seconds:
                log.info("kernels compiled or loaded in %.1f s", seconds)
        app.state.service.warm_up()
        if freeze_heap:
            gc.collect()
            gc.freeze()
        grpc_server = None
        if engine.settings.grpc_port is not None:
            from freshrec.rpc.server import start_grpc

            grpc_server = start_grpc(service, engine.settings.host, engine.settings.grpc_port)
        app.state.grpc_server = grpc_server
        if run_processor:
            engine.start()
        try:
            yield
        finally:
            if grpc_server is not None:
                grpc_server.stop(1.0).wait()
            engine.stop()
            service.close()
            if close_engine:
                engine.close()

    app = LaneApp(
        title="freshrec",
        version="0.1.0",
        lifespan=lifespan,
        description="Real-time recommendations from a live stream of shop events.",
    )
    app.state.engine = engine
    app.state.metrics = metrics = Metrics(engine)
    app.include_router(events.router)
    app.include_router(recommendations.router)
    app.include_router(models.router)
    app.include_router(ops.router)
    app.state.service = service = RecommendService(engine)  # catalogue, users, A/B tests:
    metrics.registry.register(ShopCollector(service))
    for router in (items.router, users.router, experiments.router):
        app.include_router(router)
    app.include_router(drift.router)

    @app.exception_handler(FreshrecError)
    async def _freshrec_error(request: Request, exc: FreshrecError):  # type: ignore[no-untyped-def]
        return error_body(str(exc), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _request_error(request: Request, exc: RequestValidationError):  # type: ignore[no-untyped-def]
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "request"
        return error_body(f"{where}: {first['msg']}", 422)

    if WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    if fast_lane:  # at the door: in front of FastAPI's layers and the middleware below
        app.lane = FastLane(
            app,
            {"/v1/recommendations": recommendations.recommendations},
            metrics,
            cors=bool(engine.settings.cors_origins),
        )
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    if engine.settings.cors_origins:  # outermost: preflights are answered before anything
        app.add_middleware(
            CORSMiddleware,
            allow_origins=engine.settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type"],
            max_age=3600,
        )
    return app
