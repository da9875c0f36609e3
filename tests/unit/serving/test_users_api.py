"""User profiles over HTTP: optional attributes, validation, never required."""

from __future__ import annotations

from tests.unit.serving.conftest import Shop


def test_put_get_delete_a_profile(shop: Shop) -> None:
    r = shop.client.put(
        "/v1/users/u1", json={"age_band": "25-34", "gender": "f", "country": "de", "segment": "vip"}
    )
    assert r.status_code == 200
    got = shop.client.get("/v1/users/u1").json()
    assert (got["country"], got["segment"], got["age_band"]) == ("DE", "vip", "25-34")
    assert shop.client.put("/v1/users/u2", json={}).status_code == 200  # every field optional
    assert shop.client.get("/v1/stats").json()["user_profiles"] == 2
    assert shop.client.delete("/v1/users/u1").status_code == 204
    r = shop.client.get("/v1/users/u1")
    assert r.status_code == 404 and r.json()["error"].startswith("user_id:")
    assert shop.client.delete("/v1/users/u1").status_code == 404


def test_bad_profiles_are_4xx_naming_the_field(shop: Shop) -> None:
    for body, field in (
        ({"country": "Germany"}, "country"),
        ({"age_band": 30}, "age_band"),
        ({"shoe_size": 42}, "shoe_size"),
        ({"user_id": "someone-else"}, "user_id"),
        ([1, 2], "body"),
    ):
        r = shop.client.put("/v1/users/u1", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"].startswith(f"{field}:"), r.json()
    assert shop.client.put("/v1/users/u1", content=b"{").status_code == 400


def test_recommendations_never_need_a_profile(shop: Shop) -> None:
    body = shop.recommend("nobody-we-know")
    assert body["items"] == [] and body["cold_start"] is True
