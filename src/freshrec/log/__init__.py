"""Durable, ordered, replayable event log with consumer offsets, opened by URL.

Embedded mode uses ``sqlite:///path/log.db`` (or ``memory://`` for an in-process engine);
scale-out mode ``redis://host:6379/0`` (Redis Streams, see ``freshrec.log.redis``).
"""

from freshrec.log.base import AppendResult, EventLog, open_log, register_log
from freshrec.log.redis import RedisLog
from freshrec.log.sqlite import SqliteLog

__all__ = ["AppendResult", "EventLog", "RedisLog", "SqliteLog", "open_log", "register_log"]
