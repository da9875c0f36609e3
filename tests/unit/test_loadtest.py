"""``freshrec loadtest``: the simulated shop's two open-loop streams, measured and reported."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from typer.testing import CliRunner

from freshrec import Engine
from freshrec.cli import app as cli_app
from freshrec.loadtest import LoadTest
from freshrec.serving import create_app


def test_both_streams_reach_the_server_and_are_counted() -> None:
    engine = Engine.open(None)
    transport = httpx.ASGITransport(app=create_app(engine, run_processor=False))
    test = LoadTest(
        "http://shop", rate=40, event_rate=300, seconds=1.0, shoppers=200, items=300,
        transport=transport,
    )  # fmt: skip
    report = test.run()
    recs, events = report["recommendations"], report["events"]
    assert recs["sent"] == recs["answered"] == 40 and recs["statuses"] == {"200": 40}
    assert events["statuses"] == {"202": events["sent"]} and events["sent"] == 10
    # every event reached the log: the simulated shop's, and the clicks on recommendations
    assert events["events"] == report["server"]["events_accepted"] >= 300
    assert report["server"]["events_rejected"] == 0
    assert set(recs["ms"]) == {"p50", "p95", "p99", "max"} and recs["ms"]["p50"] > 0
    engine.close()


def _serve(engine: Engine) -> tuple[uvicorn.Server, threading.Thread, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def test_the_command_reports_and_fails_on_a_p99_over_the_limit(tmp_path: Path) -> None:
    engine = Engine.open(None)
    server, thread, url = _serve(engine)
    try:
        args = ["loadtest", "--url", url, "--seconds", "1", "--rate", "30", "--event-rate", "200"]
        out = tmp_path / "report.json"
        ok = CliRunner().invoke(cli_app, [*args, "--json", str(out), "--fail-p99-ms", "10000"])
        assert ok.exit_code == 0, ok.output
        report = json.loads(out.read_text())
        assert report["recommendations"]["statuses"] == {"200": 30}
        assert report["server"]["events_processed"] > 0  # the server's processor ran
        strict = CliRunner().invoke(cli_app, [*args, "--fail-p99-ms", "0.001"])
        assert strict.exit_code == 1 and "FAILED: recommendations p99" in strict.output
    finally:
        server.should_exit = True
        thread.join(10)
        engine.close()
