"""Names of the scale-out keys in Redis, all under one prefix (the log's keys are in
``freshrec.log.redis``, the user records in ``freshrec.state.redis``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    def lease(self, partition: int) -> str:
        """Who owns the partition (a worker's token, with a TTL)."""
        return f"{self.prefix}lease:p{partition}"

    @property
    def workers(self) -> str:
        """Sorted set: worker id -> time of its last heartbeat (ms)."""
        return f"{self.prefix}workers"

    @property
    def parts(self) -> str:
        """Hash: ``done:p``, ``processed:p``, ``users:p``, ``archived:p`` per partition."""
        return f"{self.prefix}parts"

    @property
    def items(self) -> str:
        """Set of every item id processed (the cluster's catalogue size)."""
        return f"{self.prefix}items"

    @property
    def fresh(self) -> str:
        """Hash: the freshness histogram (``le:<bound>`` counts, ``count``, ``sum``)."""
        return f"{self.prefix}freshness"

    @property
    def drift(self) -> str:
        """Stream: the drift detections of every partition (workers write, replicas list)."""
        return f"{self.prefix}drift"

    @property
    def drift_counts(self) -> str:
        """Hash: detections so far by ``<detector>|<signal>`` (replicas' ``/metrics``)."""
        return f"{self.prefix}drift:counts"

    @property
    def drift_seen(self) -> str:
        """Hash: every detection counted (``<partition>:<at_event>:<detector>:<signal>``), so
        one that a new owner replays is counted once."""
        return f"{self.prefix}drift:seen"

    def commands(self, partition: int) -> str:
        """List: lifecycle commands (promote, rollback) for the partition's owner (JSON)."""
        return f"{self.prefix}lifecycle:p{partition}"

    def reply(self, command_id: str) -> str:
        """List: the owner's answer to one lifecycle command (expires)."""
        return f"{self.prefix}lifecycle:reply:{command_id}"
