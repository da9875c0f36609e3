"""One socket write per response: the coalescing transport, and uvicorn serving through it."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from freshrec.serving.transport import CoalescingTransport, HttpProtocol


def test_writes_of_one_loop_turn_leave_as_one_in_order() -> None:
    async def scenario() -> tuple[list[bytes], bytes]:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        sent: list[bytes] = []
        real_write = transport.write

        def spy(data: bytes) -> None:  # the real transport's writes, counted
            sent.append(bytes(data))
            real_write(data)

        transport.write = spy  # type: ignore[method-assign]
        coalescing = CoalescingTransport(transport, loop)  # type: ignore[arg-type]
        coalescing.write(b"HTTP/1.1 200 OK\r\n\r\n")
        reused = bytearray(b"body")
        coalescing.write(reused)
        reused[:] = b"XXXX"  # a caller's buffer reused after the write: what was written stays
        coalescing.write(b"")
        assert sent == [] and coalescing.get_write_buffer_size() == 23  # held until the turn ends
        await asyncio.sleep(0)
        coalescing.writelines([b"-next", b"-turn"])
        await asyncio.sleep(0)
        coalescing.write(b"-last")
        coalescing.close()  # what is held goes first
        await asyncio.sleep(0.05)  # the loop writes and closes
        theirs.settimeout(5)
        received = b""
        while chunk := theirs.recv(1 << 16):
            received += chunk
        theirs.close()
        return sent, received

    sent, received = asyncio.run(scenario())
    assert sent == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"-next-turn", b"-last"]
    assert received == b"HTTP/1.1 200 OK\r\n\r\nbody-next-turn-last"


def test_abort_drops_what_is_held_with_the_connection() -> None:
    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        coalescing = CoalescingTransport(transport, loop)  # type: ignore[arg-type]
        coalescing.write(b"never sent")
        coalescing.abort()
        await asyncio.sleep(0.05)  # the loop closes the connection
        theirs.settimeout(5)
        data = theirs.recv(1 << 16)
        theirs.close()
        return data

    assert asyncio.run(scenario()) == b""


async def _app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Small, streamed, large and empty answers."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    body = b"x" * 3_000_000 if path == "/big" else b'{"ok": true}'
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def server() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=HttpProtocol, log_level="warning"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    yield port
    running.should_exit = True
    thread.join(10)


def test_uvicorn_answers_every_kind_of_response_through_it(server: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    for _ in range(3):  # one keep-alive connection throughout
        conn.request("GET", "/json")
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b'{"ok": true}')
        conn.request("GET", "/stream")
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"one,two,three")
        conn.request("GET", "/big")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"x" * 3_000_000
        conn.request("GET", "/empty")
        r = conn.getresponse()
        assert (r.status, r.read()) == (204, b"")
        conn.request("HEAD", "/json")
        r = conn.getresponse()
        assert (r.status, r.read(), r.getheader("content-length")) == (200, b"", "12")
    conn.request("GET", "/json", headers={"Connection": "close"})
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b'{"ok": true}')
    conn.close()
