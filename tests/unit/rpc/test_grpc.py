"""The gRPC API: recommend and ingest through a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fastapi.testclient import TestClient
from google.protobuf.struct_pb2 import Struct

from freshrec import Engine
from freshrec.rpc import freshrec_pb2 as pb
from freshrec.rpc import freshrec_pb2_grpc as pb_grpc
from freshrec.serving import create_app
from tests.processes import free_port

T0 = 1_700_000_000.0


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[tuple[pb_grpc.RecommendationsStub, Engine, TestClient]]:
    """The app with gRPC enabled (as `freshrec serve --grpc-port`), and a client stub."""
    port = free_port()
    engine = Engine.open(tmp_path, grpc_port=port, recommend_budget_ms=5000.0, max_batch_events=100)
    with TestClient(create_app(engine)) as http, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield pb_grpc.RecommendationsStub(ch), engine, http
    engine.close()


def events(n: int = 30) -> list[pb.Event]:
    out = []
    for u in range(n):
        ctx = Struct()
        ctx.update({"country": "DE", "price": 10 + u % 4, "tz_offset_minutes": 60})
        out.append(
            pb.Event(
                type="view",
                user_id=f"x{u}",
                item_id=f"i{u % 4}",
                event_id=f"e{u}",
                timestamp=T0 + u,
                context=ctx,
            )
        )
    return out


def test_ingest_then_recommend_with_filters_and_attribution(stub) -> None:
    client, engine, http = stub
    got = client.Ingest(
        pb.IngestRequest(events=[*events(), pb.Event(type="fly", user_id="u", item_id="i")])
    )
    assert (got.accepted, got.duplicates) == (30, 0)
    assert [(e.index, e.error.split(":")[0]) for e in got.errors] == [(30, "type")]
    assert client.Ingest(pb.IngestRequest(events=events()[:2])).duplicates == 2
    assert engine.wait_processed(timeout=10)
    http.post("/v1/items", json={"items": [{"item_id": "i3", "available": False}]})
    reply = client.Recommend(pb.RecommendRequest(user_id="x1", k=3, exclude=["i2"]))
    ids = [i.item_id for i in reply.items]
    assert ids and not {"i2", "i3"} & set(ids)
    assert all(i.reason["type"] for i in reply.items)
    assert reply.strategy == "ensemble" and reply.fallback == "" and reply.recommendation_id
    cheap = client.Recommend(pb.RecommendRequest(user_id="new", k=4, max_price=11.5))
    assert {i.item_id for i in cheap.items} <= {"i0", "i1"} and cheap.cold_start
    # the same cache, arms and attribution as HTTP
    assert client.Recommend(pb.RecommendRequest(user_id="x1", k=3, exclude=["i2"])).cached
    click = pb.Event(
        type="click",
        user_id="x1",
        item_id=ids[0],
        recommendation_id=reply.recommendation_id,
        timestamp=T0 + 99,
    )
    client.Ingest(pb.IngestRequest(events=[click]))
    feedback = http.get("/v1/stats").json()["feedback"]
    assert feedback[f"ensemble/{reply.model_version}"]["clicks"] == 1


@pytest.mark.parametrize(
    ("request_", "code", "field"),
    [
        (pb.RecommendRequest(user_id=""), grpc.StatusCode.INVALID_ARGUMENT, "user_id"),
        (pb.RecommendRequest(user_id="u", k=5000), grpc.StatusCode.INVALID_ARGUMENT, "k"),
        (
            pb.RecommendRequest(user_id="u", min_price=9, max_price=1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "min_price",
        ),
        (
            pb.RecommendRequest(user_id="u", exclude=["never-seen"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "exclude",
        ),
        (
            pb.RecommendRequest(user_id="u", strategy="magic"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "strategy",
        ),
    ],
)
def test_bad_recommend_requests_name_the_field(stub, request_, code, field) -> None:
    client, _, _ = stub
    with pytest.raises(grpc.RpcError) as err:
        client.Recommend(request_)
    assert err.value.code() == code
    assert err.value.details().startswith(f"{field}:")


def test_bad_ingest_requests(stub) -> None:
    client, _, _ = stub
    with pytest.raises(grpc.RpcError) as err:
        client.Ingest(pb.IngestRequest(events=events(101)))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.value.details().startswith("events: 101 events is over the limit of 100")
    with pytest.raises(grpc.RpcError) as err:
        client.Ingest(pb.IngestRequest(events=[pb.Event(type="view", user_id="u")]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "item_id" in err.value.details()
