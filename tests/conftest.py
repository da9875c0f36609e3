"""Shared fixtures: small event streams with a known answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


def view(user: str, item: str, ts: float, **extra: object) -> dict[str, object]:
    return {"type": "view", "user_id": user, "item_id": item, "timestamp": ts, **extra}


def make_checkerboard(users_per_taste: int = 10) -> list[dict[str, object]]:
    """Two tastes: users u0.. browse a0->a1->a2, users v0.. browse b0->b1->b2 (in sessions)."""
    events = []
    t = 1_700_000_000.0
    for n in range(users_per_taste):
        for group in ("a", "b"):
            user = f"{'u' if group == 'a' else 'v'}{n}"
            for step in range(3):
                events.append(view(user, f"{group}{step}", t))
                t += 10
    return events


@pytest.fixture
def checkerboard() -> list[dict[str, object]]:
    """The two-taste stream with 10 users per taste (60 events)."""
    return make_checkerboard(10)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix in the real Redis at 127.0.0.1:6379, its keys deleted afterwards."""
    from tests.redis_helpers import delete_prefix, new_prefix

    prefix = new_prefix()
    yield prefix
    delete_prefix(prefix)
