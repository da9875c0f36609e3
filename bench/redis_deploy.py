"""Helpers of the scale-out benchmarks: a deployment on the local Redis under a key prefix of
its own (deleted afterwards), its replicas and workers as real child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from bench.ingest_http import HOST, free_port, stop_server, wait_healthy

REDIS_URL = os.environ.get("FRESHREC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def freshrec_command(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "freshrec"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "freshrec.cli"]
    return [*head, *args]


class Deployment:
    """A scale-out deployment: one prefix in Redis, child processes, a scratch folder."""

    def __init__(self, partitions: int = 4, **settings: str) -> None:
        self.prefix = f"freshrec-bench-{uuid.uuid4().hex[:10]}:"
        self.partitions = partitions
        self.tmp = Path(tempfile.mkdtemp(prefix="freshrec-bench-redis-"))
        self.env = {
            **os.environ,
            "FRESHREC_REDIS_URL": REDIS_URL,
            "FRESHREC_REDIS_PREFIX": self.prefix,
            "FRESHREC_REDIS_PARTITIONS": str(partitions),
            **{f"FRESHREC_{k.upper()}": v for k, v in settings.items()},
        }
        self.children: list[subprocess.Popen[bytes]] = []
        self.redis = redis.Redis.from_url(REDIS_URL)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        out = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            freshrec_command(*args),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        self.children.append(proc)
        return proc

    def replica(self, name: str = "replica") -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        proc = self._spawn(name, ["serve", "--host", HOST, "--port", str(port)])
        wait_healthy(proc, port)
        return proc, port

    def worker(self, name: str = "worker", partitions: str | None = None) -> subprocess.Popen:
        args = ["worker"] + (["--partitions", partitions] if partitions else [])
        return self._spawn(name, args)

    def processed(self) -> int:
        parts = self.redis.hgetall(f"{self.prefix}parts")
        return sum(int(v) for k, v in parts.items() if k.startswith(b"processed:"))

    def accepted(self) -> int:
        return int(self.redis.hget(f"{self.prefix}log:meta", "end") or 0)

    def owners(self) -> set[bytes]:
        keys = [f"{self.prefix}lease:p{p}" for p in range(self.partitions)]
        return {v for v in self.redis.mget(keys) if v is not None}

    def wait(self, check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what} (logs in {self.tmp})")
            time.sleep(0.02)

    def close(self) -> None:
        for proc in self.children:
            stop_server(proc, timeout=30)
        keys = list(self.redis.scan_iter(match=f"{self.prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            self.redis.delete(*keys[start : start + 1000])
        self.redis.close()
