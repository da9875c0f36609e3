"""gRPC on a scale-out replica (real Redis, a worker thread): ``freshrec serve --redis-url …
--grpc-port …`` ingests into the partitioned log and recommends from what the workers
publish, like the HTTP API of the same replica."""

from __future__ import annotations

import grpc
from fastapi.testclient import TestClient

from freshrec.rpc import freshrec_pb2 as pb
from freshrec.rpc import freshrec_pb2_grpc as pb_grpc
from freshrec.scaleout import ClusterEngine
from freshrec.serving import create_app
from tests.processes import free_port
from tests.unit.scaleout.test_scaleout import running_worker, scaleout_settings, wait_models
from tests.unit.scaleout.test_shop import within

T0 = 1_700_000_000.0


def test_a_replica_ingests_and_recommends_over_grpc(redis_prefix: str) -> None:
    port = free_port()
    settings = scaleout_settings(redis_prefix, grpc_port=port, recommend_budget_ms=1000.0)
    replica = ClusterEngine(settings)
    try:
        with (
            running_worker(settings),
            TestClient(create_app(replica)) as http,
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = pb_grpc.RecommendationsStub(channel)
            sent = [
                pb.Event(
                    type="view",
                    user_id=f"s{u % 6}",
                    item_id=f"i{(u * 3) % 5}",
                    event_id=f"g{u}",
                    timestamp=T0 + u,
                )
                for u in range(40)
            ]
            got = stub.Ingest(pb.IngestRequest(events=[*sent, pb.Event(type="fly")]))
            assert (got.accepted, got.duplicates) == (40, 0)
            assert [e.index for e in got.errors] == [40]
            assert stub.Ingest(pb.IngestRequest(events=sent[:3])).duplicates == 3
            assert replica.wait_processed(30)
            wait_models(replica)
            within(5.0, lambda: http.get("/v1/stats").json()["events_processed"] == 40)
            reply = stub.Recommend(pb.RecommendRequest(user_id="s1", k=3))
            assert 0 < len(reply.items) <= 3
            body = http.get("/v1/recommendations", params={"user_id": "s1", "k": 3}).json()
            assert [i.item_id for i in reply.items] == [i["item_id"] for i in body["items"]]
    finally:
        replica.close()
