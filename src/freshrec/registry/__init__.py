"""Versioned snapshots of the engine's state and model parameters."""

from freshrec.registry.store import Snapshot, SnapshotStore

__all__ = ["Snapshot", "SnapshotStore"]
