"""The model lifecycle of a scale-out deployment, from a serving replica.

Versions are made where the models learn: each partition's engine on its worker runs the
embedded ``Lifecycle`` (gate, promotion, watch and automatic rollback) over the partition's full
snapshots, with its versions and version book in Redis (``freshrec.scaleout.snapshots``). A
replica reads those to list them, and asks the partition's owner to promote or roll back:

- ``GET /v1/models``: every partition's versions, newest first, named ``p<partition>-v<offset>``;
- ``POST /v1/models/p<N>-v<offset>/promote``: partition ``N``'s owner puts that version's exact
  parameters back, snapshots and publishes them (replicas serve them at their next refresh);
- ``POST /v1/models/rollback``: every partition that has an earlier promoted version goes back
  to it (one call for the deployment: a bad update is usually everywhere at once).

A command is a JSON entry on the partition's command list (``Keys.commands``), which its owner
reads between chunks; the answer comes back on a reply list the replica waits on
(``COMMAND_TIMEOUT_SECONDS``). A command nobody took in time is dropped by the worker when it
finally reads it (``expires_at``), so a late promotion never lands unannounced.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import redis

from freshrec.errors import Conflict, FreshrecError, NotFound, StorageError
from freshrec.scaleout.keys import Keys
from freshrec.scaleout.snapshots import RedisVersionBook, RedisVersions, book_key

COMMAND_TIMEOUT_SECONDS = 10.0
_NAME = re.compile(r"p(\d+)-(v\d+(?:-\d+)?)")
_ERRORS: dict[int, type[FreshrecError]] = {404: NotFound, 409: Conflict}


class ClusterLifecycle:
    """List the partitions' versions; send promote and rollback to their owners."""

    def __init__(
        self, client: redis.Redis, prefix: str, partitions: int, keep_promoted: int
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.partitions = partitions
        self.keep_promoted = keep_promoted
        self.keys = Keys(prefix)

    def book(self, partition: int) -> RedisVersionBook:
        return RedisVersionBook(self.redis, book_key(self.prefix, partition), self.keep_promoted)

    def versions(self) -> list[dict[str, Any]]:
        """Every partition's stored versions with metadata and status, newest first."""
        out = []
        for p in range(self.partitions):
            book = self.book(p)
            for version, meta in RedisVersions(self.redis, self.prefix, p).listing():
                entry = {**book.entry(version, meta), "version": f"p{p}-{version}", "partition": p}
                if isinstance(entry.get("restored_from"), str):  # a name promote accepts
                    entry["restored_from"] = f"p{p}-{entry['restored_from']}"
                out.append(entry)
        out.sort(key=lambda v: v["created_at"] or 0.0, reverse=True)
        return out

    def promote(self, version: str) -> dict[str, Any]:
        """Partition ``N`` serves ``p<N>-v<offset>``'s exact parameters from now on."""
        match = _NAME.fullmatch(version)
        if match is None or int(match[1]) >= self.partitions:
            raise NotFound(
                f"version: unknown model version {version!r} (scale-out versions are named "
                "p<partition>-v<offset>: see GET /v1/models)"
            )
        p, local = int(match[1]), match[2]
        if not RedisVersions(self.redis, self.prefix, p).has(local):
            raise NotFound(f"version: unknown model version {version!r}")
        return self._wait(p, self._send(p, {"op": "promote", "version": local}))

    def rollback(self) -> dict[str, Any]:
        """Every partition with an earlier promoted version goes back to it. A partition that
        cannot (no owner, no answer, every earlier version damaged) is listed under ``errors``
        while the others roll back; if none could, its error is raised."""
        targets = [p for p in range(self.partitions) if self.book(p).previous() is not None]
        if not targets:
            raise Conflict("no earlier promoted version to roll back to in any partition")
        done: list[dict[str, Any]] = []
        failed: list[tuple[int, FreshrecError]] = []
        sent: list[tuple[int, str]] = []
        for p in targets:
            try:
                sent.append((p, self._send(p, {"op": "rollback"})))
            except FreshrecError as exc:
                failed.append((p, exc))
        for p, command_id in sent:
            try:
                done.append(self._wait(p, command_id))
            except FreshrecError as exc:
                failed.append((p, exc))
        if not done:
            raise failed[0][1]
        errors = [{"partition": p, "status": e.status_code, "error": str(e)} for p, e in failed]
        return {"partitions": done, "errors": errors}

    def _send(self, partition: int, command: dict[str, Any]) -> str:
        if not self.redis.exists(self.keys.lease(partition)):
            raise StorageError(f"partition {partition}: no worker holds it right now; try again")
        command_id = uuid.uuid4().hex
        expires = time.time() + COMMAND_TIMEOUT_SECONDS
        body = {"id": command_id, "expires_at": expires, **command}
        self.redis.rpush(self.keys.commands(partition), json.dumps(body))
        return command_id

    def _wait(self, partition: int, command_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + COMMAND_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            # short waits: the client's socket timeout is a couple of seconds
            got = self.redis.blpop([self.keys.reply(command_id)], timeout=1)
            if got is None:
                continue
            answer = json.loads(got[1])
            if answer["status"] != 200:
                raise _ERRORS.get(answer["status"], StorageError)(
                    f"partition {partition}: {answer['error']}"
                )
            result = answer["result"]
            for key in ("model_version", "restored", "rolled_back"):
                if isinstance(result.get(key), str) and result[key] != "live":
                    result[key] = f"p{partition}-{result[key]}"
            return result  # type: ignore[no-any-return]
        raise StorageError(
            f"partition {partition}: its worker did not answer within "
            f"{COMMAND_TIMEOUT_SECONDS:g} s (the command is dropped)"
        )
