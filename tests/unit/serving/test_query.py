"""The recommendations query: validated in one call, documented as FastAPI would."""

from __future__ import annotations

from fastapi.testclient import TestClient

from freshrec import Engine
from freshrec.serving import create_app
from freshrec.settings import Settings


def test_query_is_documented_and_its_errors_name_the_field() -> None:
    app = create_app(Engine(Settings(data_dir=None)), close_engine=True)
    with TestClient(app) as client:
        doc = client.get("/openapi.json").json()["paths"]["/v1/recommendations"]["get"]
        params = {p["name"]: p for p in doc["parameters"]}
        assert params["user_id"]["required"] and params["user_id"]["in"] == "query"
        assert params["k"]["schema"]["maximum"] == 1000 and not params["k"]["required"]
        assert "max_per_category" in params and "description" in params["exclude"]
        bad = client.get("/v1/recommendations?user_id=a&k=0")
        assert bad.status_code == 422 and bad.json()["error"].startswith("k: ")
        bad = client.get("/v1/recommendations?user_id=a&exclude_viewed=maybe")
        assert bad.status_code == 422 and bad.json()["error"].startswith("exclude_viewed: ")
        assert client.get("/v1/recommendations?k=3").json()["error"].startswith("user_id: ")
        ok = client.get("/v1/recommendations?user_id=a&k=3&exclude_viewed=yes&min_price=2.5")
        assert ok.status_code == 200 and ok.json()["user_id"] == "a"


def test_query_strings_split_as_starlette_does() -> None:
    from starlette.datastructures import QueryParams

    from freshrec.serving.query import query_dict

    for raw in [
        b"user_id=u1&k=10",
        b"user_id=caf%C3%A9+cr%C3%A8me&exclude=a%2Cb,c&k=",
        b"a=1&a=2&&b&c=x%3Dy=z&%6B=3",
        b"",
        b"only",
        b"plus=a+b&pct=100%25&raw=\xc3\xa9",
    ]:
        assert query_dict(raw) == dict(QueryParams(raw.decode("latin-1")))


def test_headers_read_as_starlette_does() -> None:
    from starlette.requests import Request

    from freshrec.serving.query import header

    raw = [(b"host", b"x"), (b"user-agent", b"Mozilla/5.0 \xe9"), (b"cf-ipcountry", b"DE")]
    raw.append((b"cf-ipcountry", b"FR"))  # a repeated header: the first one, as Headers.get
    request = Request({"type": "http", "headers": raw})
    for name in ("user-agent", "cf-ipcountry", "x-missing"):
        assert header(request.scope, name.encode()) == request.headers.get(name)
