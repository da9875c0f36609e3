"""The FastAPI application: wires routers, error handling and metrics around one ``Engine``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from freshrec.engine import Engine
from freshrec.errors import FreshrecError
from freshrec.features.useragent import warm_up
from freshrec.serving.metrics import LatencyMiddleware, Metrics
from freshrec.serving.responses import error_body
from freshrec.serving.routes import drift, events, models, ops, recommendations

WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


def create_app(engine: Engine, run_processor: bool = True, close_engine: bool = False) -> FastAPI:
    """An app serving ``engine``; its processor runs in the background while the app is up.

    With ``close_engine`` the engine is closed (final snapshot) when the server shuts down, before
    the server re-raises a SIGTERM that stopped it.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warm_up()  # load the User-Agent rules now, not on the first request that needs them
        if run_processor:
            engine.start()
        try:
            yield
        finally:
            engine.stop()
            if close_engine:
                engine.close()

    app = FastAPI(
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
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    return app
