"""``TrafficDriver``: a background thread sending a simulator's events through the HTTP API.

The driver waits until the server answers ``/healthz``, then posts batches to ``/v1/events`` at
a steady rate. Now and then it fetches ``/v1/recommendations`` for a shopper who is browsing and
lets the simulator decide whether that shopper clicks one (the click carries the
``recommendation_id``). At most one batch is in hand at a time: a batch that fails for a
transient reason (connection error, timeout, 408, 429, 5xx) is retried with back-off until it
goes through, which is safe because every event has an ``event_id`` and the server de-duplicates.
A batch the server refuses outright (another 4xx) is dropped and logged.

Connection errors are logged as warnings once they have lasted ``quiet_seconds``, so a server
restarting or shutting down does not fill the log; HTTP errors are logged at once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx
import msgspec

from freshrec.sim.shop import ShopSimulator

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()
_TRANSIENT_STATUS = frozenset({408, 425, 429})
_WARN_EVERY_SECONDS = 30.0


class TrafficDriver:
    """Send ``simulator``'s events to a server at ``rate_events_per_s``, in a background thread.

    Parameters
    ----------
    base_url
        Where the server listens, e.g. ``http://127.0.0.1:8000``.
    simulator
        The shop whose events are sent (used only by the driver's thread once started).
    rate_events_per_s
        Target event rate; batches go out about ten times a second.
    batch_size
        Most events in one request.
    follow_recommendations
        Fetch recommendations for a browsing shopper once per batch and maybe click one.
    timeout_seconds
        Timeout of each HTTP request.
    quiet_seconds
        How long connection errors last before they are logged as warnings.
    max_backoff_seconds
        Longest wait before retrying a failed batch.
    transport
        An ``httpx`` transport to use instead of the network (for tests).
    """

    def __init__(
        self,
        base_url: str,
        simulator: ShopSimulator,
        rate_events_per_s: float = 200.0,
        batch_size: int = 500,
        follow_recommendations: bool = True,
        timeout_seconds: float = 5.0,
        quiet_seconds: float = 1.0,
        max_backoff_seconds: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if rate_events_per_s <= 0 or batch_size < 1:
            raise ValueError("rate_events_per_s must be > 0 and batch_size >= 1")
        self.base_url = base_url.rstrip("/")
        self.simulator = simulator
        self.rate_events_per_s = rate_events_per_s
        self.batch_size = batch_size
        self.follow_recommendations = follow_recommendations
        self.timeout_seconds = timeout_seconds
        self.quiet_seconds = quiet_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.transport = transport
        self.acknowledged = 0  # accepted + duplicates: the server has these events
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0  # events the server found invalid
        self.dropped = 0  # events of batches refused outright
        self.failures = 0  # failed attempts (each retried)
        self.followed = 0  # clicks on recommendations
        self.connected = threading.Event()  # set once the server has answered /healthz
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None
        self._warned_at: float | None = None
        self._attempt = 0

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start sending in a background thread (it first waits for ``/healthz``)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="freshrec-traffic", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop sending; waits up to ``timeout`` seconds for a request in flight to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        """The driver's counters."""
        return {
            name: getattr(self, name)
            for name in (
                "acknowledged",
                "accepted",
                "duplicates",
                "rejected",
                "dropped",
                "failures",
                "followed",
            )
        }

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            with httpx.Client(
                base_url=self.base_url, timeout=self.timeout_seconds, transport=self.transport
            ) as client:
                if self._wait_healthy(client):
                    self._loop(client)
        except Exception:  # the driver must never take its host process down
            log.exception("traffic driver stopped by an unexpected error")

    def _wait_healthy(self, client: httpx.Client) -> bool:
        while not self._stop.is_set():
            try:
                if client.get("/healthz").status_code == 200:
                    self.connected.set()
                    log.info(
                        "sending %g simulated events/s to %s", self.rate_events_per_s, self.base_url
                    )
                    return True
            except httpx.HTTPError:
                pass
            self._stop.wait(0.1)
        return False

    def _loop(self, client: httpx.Client) -> None:
        n = max(1, min(self.batch_size, round(self.rate_events_per_s / 10)))
        interval = n / self.rate_events_per_s
        next_at = time.monotonic()
        batch: list[dict[str, Any]] | None = None
        while not self._stop.is_set():
            try:
                if batch is None:
                    batch = self.simulator.take(n, until=time.time())
                    click = self._follow(client) if self.follow_recommendations else None
                    if click is not None:
                        batch.append(click)
                done = self._send(client, batch)
            except Exception:
                log.exception("sending simulated events failed; retrying")
                done = False
            if not done:
                self._attempt += 1
                self._stop.wait(min(self.max_backoff_seconds, 0.1 * 2 ** min(self._attempt, 10)))
                continue
            batch = None
            self._attempt = 0
            next_at += interval
            now = time.monotonic()
            if next_at < now - 1.0:  # fell behind (slow server): do not burst to catch up
                next_at = now
            self._stop.wait(max(0.0, next_at - now))

    def _send(self, client: httpx.Client, batch: list[dict[str, Any]]) -> bool:
        """Post ``batch``; True when the server has dealt with it (even by refusing it)."""
        try:
            response = client.post(
                "/v1/events",
                content=_encoder.encode({"events": batch}),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            self._transient(f"{type(exc).__name__}: {exc}", connection=True)
            return False
        status = response.status_code
        if status == 202:
            body = response.json()
            self.accepted += body["accepted"]
            self.duplicates += body["duplicates"]
            self.acknowledged += body["accepted"] + body["duplicates"]
            self.rejected += len(body["errors"])
            if body["errors"]:
                log.warning(
                    "server rejected %d simulated events, first: %s",
                    len(body["errors"]),
                    body["errors"][0],
                )
            self._recovered()
            return True
        if status >= 500 or status in _TRANSIENT_STATUS:
            self._transient(f"HTTP {status}: {response.text[:200]}", connection=False)
            return False
        self.dropped += len(batch)
        log.error(
            "server refused a batch of %d events (HTTP %d): %s; dropped",
            len(batch),
            status,
            response.text[:200],
        )
        self._recovered()
        return True

    def _follow(self, client: httpx.Client) -> dict[str, Any] | None:
        user_id = self.simulator.browsing_shopper()
        try:
            response = client.get("/v1/recommendations", params={"user_id": user_id, "k": 10})
        except httpx.HTTPError as exc:
            log.debug("fetching recommendations failed: %s", exc)
            return None
        if response.status_code != 200:
            return None
        click = self.simulator.follow(user_id, response.json())
        if click is not None:
            self.followed += 1
        return click

    # -- failure reporting -------------------------------------------------------------------
    def _transient(self, reason: str, connection: bool) -> None:
        self.failures += 1
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since, self._warned_at = now, None
        lasted = now - self._failing_since
        due = self._warned_at is None or now - self._warned_at >= _WARN_EVERY_SECONDS
        if due and (not connection or lasted >= self.quiet_seconds):
            log.warning(
                "posting events to %s failed (%s); retrying, failing for %.1f s",
                self.base_url,
                reason,
                lasted,
            )
            self._warned_at = now
        else:
            log.debug("posting events failed (%s); retrying", reason)

    def _recovered(self) -> None:
        if self._failing_since is not None and self._warned_at is not None:
            log.info(
                "server at %s answering again after %.1f s",
                self.base_url,
                time.monotonic() - self._failing_since,
            )
        self._failing_since = self._warned_at = None
