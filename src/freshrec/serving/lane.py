"""A fast lane for the hottest ``GET`` routes, around FastAPI's per-request machinery.

Between the middleware and an endpoint, FastAPI matches the path against every route, opens
two exit stacks, solves the endpoint's dependencies (even for one that only takes the
``Request``) and wraps the call in the exception middleware. On ``GET /v1/recommendations``
that was 12-22 % of the server's CPU per response (in-process, 10k-item catalogue), for work
the endpoint does not need.

``FastLane`` is a pure ASGI middleware, installed innermost (inside the metrics middleware): a
``GET`` whose path is one of its routes is handed to that route's endpoint directly; anything
else goes on to FastAPI unchanged. What the skipped layers did for these routes is kept:

- ``scope["route"]`` names the route's template (``LaneRoute``), so the latency metrics keep
  their labels;
- an exception is answered by the app's own handler for its class (validation errors, engine
  errors, ``HTTPException``), so every status and body is what the routed request would give;
  one without a handler propagates to the server-error middleware (500) as before.

The route stays registered with FastAPI, with the same endpoint function: ``/docs`` and the
OpenAPI schema come from it. An endpoint the lane serves must take the ``Request`` alone
(checked when the middleware is built).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from fastapi import FastAPI, Request


class LaneRoute(NamedTuple):
    """What ``scope["route"]`` holds for a request the lane served (the metrics read ``path``)."""

    path: str
    endpoint: Callable[[Request], Awaitable[Any]]


class FastLane:
    """Serve ``GET`` on ``endpoints``' paths straight from their endpoints; pass everything
    else on to ``app`` (the rest of ``api``'s stack)."""

    def __init__(
        self, app: Any, api: FastAPI, endpoints: Mapping[str, Callable[[Request], Any]]
    ) -> None:
        self.app = app
        self.api = api
        self.routes: dict[str, LaneRoute] = {}
        for path, endpoint in endpoints.items():
            params = list(inspect.signature(endpoint).parameters.values())
            if len(params) != 1 or params[0].annotation not in (Request, "Request"):
                raise TypeError(
                    f"{path}: a fast-lane endpoint takes the Request alone, "
                    f"not {[p.name for p in params]}"
                )
            self.routes[path] = LaneRoute(path, endpoint)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        route = (
            self.routes.get(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Any:
        """The app's exception handler for ``exc``'s class or its nearest base, if any."""
        handlers = self.api.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]
        return None
