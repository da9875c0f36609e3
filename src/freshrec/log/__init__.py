"""Durable, ordered, replayable event log with consumer offsets, opened by URL.

Embedded mode uses ``sqlite:///path/log.db`` (or ``memory://`` for an in-process engine).
"""

from freshrec.log.base import AppendResult, EventLog, open_log, register_log
from freshrec.log.sqlite import SqliteLog

__all__ = ["AppendResult", "EventLog", "SqliteLog", "open_log", "register_log"]
