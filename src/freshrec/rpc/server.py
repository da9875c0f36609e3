"""The gRPC server: ``Recommend`` and ``Ingest`` over one ``RecommendService``.

Errors map to status codes the way HTTP maps them to 4xx: an invalid request is
``INVALID_ARGUMENT`` with the field named, an oversized batch ``RESOURCE_EXHAUSTED``, an unknown
thing ``NOT_FOUND``; a batch whose events are all invalid is ``INVALID_ARGUMENT`` too.
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from freshrec.errors import FreshrecError, PayloadTooLarge, ValidationError
from freshrec.rpc import freshrec_pb2 as pb
from freshrec.rpc import freshrec_pb2_grpc as pb_grpc
from freshrec.serving.service import RecommendService

log = logging.getLogger(__name__)

_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}
MAX_K = 1000


def _abort(context: grpc.ServicerContext, exc: FreshrecError) -> None:
    context.abort(_STATUS.get(exc.status_code, grpc.StatusCode.INTERNAL), str(exc))


def _context(value: Any) -> dict[str, Any]:
    """A ``Struct`` as a dict; whole numbers as ints (``tz_offset_minutes`` must be one)."""
    out = MessageToDict(value)
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in out.items()}


class RecommendationsServicer(pb_grpc.RecommendationsServicer):
    def __init__(self, service: RecommendService) -> None:
        self.service = service
        self.engine = service.engine

    def Recommend(self, request: pb.RecommendRequest, context: grpc.ServicerContext):
        try:
            if not request.user_id or len(request.user_id) > 256:
                raise _invalid("user_id", "1 to 256 characters")
            k = request.k or 10
            if not 1 <= k <= MAX_K:
                raise _invalid("k", f"must be 1..{MAX_K}")
            ctx: dict[str, Any] = {}
            if request.device:
                ctx["device"] = request.device
            if request.country:
                ctx["country"] = request.country
            if request.HasField("tz_offset_minutes"):
                if not -720 <= request.tz_offset_minutes <= 840:
                    raise _invalid("tz_offset_minutes", "must be -720..840")
                ctx["tz_offset_minutes"] = request.tz_offset_minutes
            filters = self.engine.default_filters(
                exclude=tuple(request.exclude) or None,
                category=request.category or None,
                min_price=request.min_price if request.HasField("min_price") else None,
                max_price=request.max_price if request.HasField("max_price") else None,
                exclude_purchased=request.exclude_purchased
                if request.HasField("exclude_purchased")
                else None,
                exclude_viewed=request.exclude_viewed,
                max_per_category=request.max_per_category
                if request.HasField("max_per_category")
                else None,
            )
            body = self.service.recommend(
                request.user_id,
                k,
                filters,
                ctx or None,
                strategy=request.strategy or None,
                user_agent=request.user_agent or None,
            )
        except FreshrecError as exc:
            _abort(context, exc)
            raise  # unreachable: abort raises
        return pb.RecommendResponse(
            recommendation_id=body["recommendation_id"],
            model_version=body["model_version"],
            user_id=body["user_id"],
            strategy=body["strategy"],
            experiment=None if body["experiment"] is None else pb.Experiment(**body["experiment"]),
            cold_start=body["cold_start"],
            fallback=body["fallback"] or "",
            cached=body["cached"],
            items=[
                pb.Item(item_id=r.item_id, score=r.score, reason=r.reason) for r in body["items"]
            ],
        )

    def Ingest(self, request: pb.IngestRequest, context: grpc.ServicerContext):
        try:
            limit = self.engine.settings.max_batch_events
            if len(request.events) > limit:
                raise PayloadTooLarge(
                    f"events: {len(request.events)} events is over the limit of {limit}"
                )
            if not request.events:
                raise _invalid("events", "no event in the request")
            result = self.engine.ingest([_event(e) for e in request.events])
            if result.errors and not result.accepted and not result.duplicates:
                index, error = result.errors[0]
                raise _invalid("events", f"no valid event: [{index}] {error}")
        except FreshrecError as exc:
            _abort(context, exc)
            raise
        return pb.IngestResponse(
            accepted=result.accepted,
            duplicates=result.duplicates,
            errors=[pb.IngestError(index=i, error=e) for i, e in result.errors],
        )


def _event(e: pb.Event) -> dict[str, Any]:
    out: dict[str, Any] = {"type": e.type, "user_id": e.user_id, "item_id": e.item_id}
    for name in ("event_id", "session_id", "recommendation_id"):
        value = getattr(e, name)
        if value:
            out[name] = value
    for name in ("timestamp", "value"):
        if e.HasField(name):
            out[name] = getattr(e, name)
    if e.HasField("context"):
        out["context"] = _context(e.context)
    return out


def _invalid(field: str, message: str) -> FreshrecError:
    return ValidationError(field, message)


def start_grpc(service: RecommendService, host: str, port: int, workers: int = 8) -> grpc.Server:
    """Start a gRPC server for ``service`` on ``host:port`` (0 = any free port: read
    ``server.port``); stop it with ``server.stop(grace)``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    pb_grpc.add_RecommendationsServicer_to_server(RecommendationsServicer(service), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    server.port = bound  # type: ignore[attr-defined]
    log.info("gRPC API on %s:%d", host, bound)
    return server
