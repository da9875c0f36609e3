"""A fast lane for the hottest ``GET`` routes, in front of FastAPI's per-request machinery.

A request FastAPI serves goes through three layers of its own (server errors, telemetry, a body
limit), the metrics middleware, then the router: the path matched against every route, two
exit stacks opened, the endpoint's dependencies solved (even for one that only takes the
``Request``), the call wrapped in the exception middleware. On ``GET /v1/recommendations``
those layers were about a fifth of the server's CPU per response (10k-item catalogue), for
work the endpoint does not need.

``LaneApp`` is the FastAPI application with one more step at its door: a ``GET`` whose path is
one of the lane's routes is handed to that route's endpoint directly (``FastLane.serve``);
anything else goes through FastAPI unchanged. What the skipped layers did for these routes,
the lane does itself:

- the request's latency is recorded under the route's template and the status sent (the
  metrics middleware's histogram);
- an exception is answered by the app's own handler for its class (validation errors, engine
  errors, ``HTTPException``), so every status and body is what the routed request would give;
  one without a handler is answered ``500 Internal Server Error`` and re-raised for the server
  to log, as the server-error middleware does;
- with CORS configured, a request carrying an ``Origin`` header takes the routed path, where
  the CORS middleware adds its headers.

The route stays registered with FastAPI, with the same endpoint function: ``/docs`` and the
OpenAPI schema come from it. An endpoint the lane serves must take the ``Request`` alone
(checked when the lane is built).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from fastapi import FastAPI, Request
from starlette.responses import PlainTextResponse

from freshrec.serving.metrics import Metrics
from freshrec.serving.query import header


class LaneRoute(NamedTuple):
    """What ``scope["route"]`` holds for a request the lane served (the metrics read ``path``)."""

    path: str
    endpoint: Callable[[Request], Awaitable[Any]]


class FastLane:
    """Serve ``GET`` on ``endpoints``' paths straight from their endpoints, for ``api``."""

    def __init__(
        self,
        api: FastAPI,
        endpoints: Mapping[str, Callable[[Request], Any]],
        metrics: Metrics,
        cors: bool = False,
    ) -> None:
        self.api = api
        self.metrics = metrics
        self.cors = cors  # requests with an Origin header take the routed path (CORS headers)
        self.routes: dict[str, LaneRoute] = {}
        self._latency: dict[tuple[str, int], Any] = {}  # the histogram's child per route, status
        for path, endpoint in endpoints.items():
            params = list(inspect.signature(endpoint).parameters.values())
            if len(params) != 1 or params[0].annotation not in (Request, "Request"):
                raise TypeError(
                    f"{path}: a fast-lane endpoint takes the Request alone, "
                    f"not {[p.name for p in params]}"
                )
            self.routes[path] = LaneRoute(path, endpoint)

    def route(self, scope: dict) -> LaneRoute | None:
        """The lane's route for this request, or None (FastAPI serves it)."""
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        route = self.routes.get(scope["path"])
        if route is not None and self.cors and header(scope, b"origin") is not None:
            return None
        return route

    async def serve(self, route: LaneRoute, scope: dict, receive: Any, send: Any) -> None:
        start = time.perf_counter()
        scope["app"] = self.api
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        request = Request(scope, receive)
        status, answered = 500, False
        try:
            try:
                response = await route.endpoint(request)
            except Exception as exc:
                handler = self._handler(exc)
                if handler is None:
                    raise
                response = await handler(request, exc)
            status, answered = response.status_code, True
            await response(scope, receive, send)
        except Exception:
            if not answered:  # as the server-error middleware: a 500, and the server logs it
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)
            raise
        finally:
            self._histogram(route.path, status).observe(time.perf_counter() - start)

    def _histogram(self, path: str, status: int) -> Any:
        """The latency histogram's child for ``GET path`` answered ``status`` (looked up once)."""
        child = self._latency.get((path, status))
        if child is None:
            child = self._latency[path, status] = self.metrics.http_latency.labels(
                "GET", path, str(status)
            )
        return child

    def _handler(self, exc: Exception) -> Any:
        """The app's exception handler for ``exc``'s class or its nearest base, if any."""
        handlers = self.api.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]
        return None


class LaneApp(FastAPI):
    """FastAPI with a fast lane at the door (``lane``; None: every request is routed)."""

    lane: FastLane | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        lane = self.lane
        if lane is not None:
            route = lane.route(scope)
            if route is not None:
                await lane.serve(route, scope, receive, send)
                return
        await super().__call__(scope, receive, send)
