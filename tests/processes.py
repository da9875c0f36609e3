"""Helpers for tests that run freshrec as a real child process on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

HOST = "127.0.0.1"
# a cold numba cache: a server compiles every kernel before it listens (a minute on a slow machine)
START_TIMEOUT = 240.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Demo:
    """A ``freshrec demo`` child process and where its output goes."""

    process: subprocess.Popen[bytes]
    url: str
    output: Path

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self) -> None:
        """Kill it if it still runs (fixture teardown, even after a failure)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def start_demo(root: Path, *args: str) -> Demo:
    """``freshrec demo`` with its data under ``root``, answering /healthz before it returns."""
    port = free_port()
    output = root / "demo.log"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "freshrec.cli",
                "demo",
                "--data-dir",
                str(root / "data"),
                "--host",
                HOST,
                "--port",
                str(port),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    demo = Demo(process, f"http://{HOST}:{port}", output)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"demo exited early:\n{demo.log()}"
            assert time.monotonic() < deadline, (
                f"no /healthz after {START_TIMEOUT} s:\n{demo.log()}"
            )
            try:
                if httpx.get(f"{demo.url}/healthz", timeout=1.0).status_code == 200:
                    return demo
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    except BaseException:
        demo.stop()
        raise


@dataclass
class Child:
    """A freshrec child process (``freshrec serve``, ``freshrec worker``...) and its output."""

    process: subprocess.Popen[bytes]
    output: Path
    url: str | None = None

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def start_child(
    root: Path, name: str, args: list[str], env: dict[str, str], port: int | None = None
) -> Child:
    """``python -m freshrec.cli <args>`` with ``env`` added; with ``port``, waits for /healthz."""
    output = root / f"{name}.log"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "freshrec.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
    child = Child(process, output, None if port is None else f"http://{HOST}:{port}")
    if child.url is None:
        return child
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"{name} exited early:\n{child.log()}"
            assert time.monotonic() < deadline, f"{name}: no /healthz:\n{child.log()}"
            try:
                if httpx.get(f"{child.url}/healthz", timeout=1.0).status_code == 200:
                    return child
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    except BaseException:
        child.stop()
        raise
