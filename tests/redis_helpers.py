"""The real Redis the scale-out tests use (127.0.0.1:6379), one key prefix per test."""

from __future__ import annotations

import os
import uuid

import redis

REDIS_URL = os.environ.get("FRESHREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def new_prefix() -> str:
    """A key prefix no other test (or deployment) uses."""
    return f"freshrec-test-{uuid.uuid4().hex[:12]}:"


def delete_prefix(prefix: str, url: str = REDIS_URL) -> int:
    """Delete every key under ``prefix``; returns how many there were."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()
