"""Reading the archive: SQL over it with DuckDB, and the events back in log order.

``query`` exposes the files as a view ``events`` (columns of
``freshrec.archive.writer.SCHEMA`` plus ``date`` from the folder names).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from freshrec.archive.writer import archive_dir
from freshrec.errors import NotFound
from freshrec.events import LoggedEvent
from freshrec.events.schema import type_code


def archive_glob(data_dir: str | Path) -> str:
    root = archive_dir(data_dir)
    if not any(root.glob("date=*/*.parquet")):
        raise NotFound(f"data_dir: no archived events under {root}")
    return str(root / "date=*" / "*.parquet")


def _connect(data_dir: str | Path):  # type: ignore[no-untyped-def]
    import duckdb

    con = duckdb.connect()
    glob = archive_glob(data_dir).replace("'", "''")
    con.execute(
        f"CREATE VIEW events AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)"
    )
    return con


def query(data_dir: str | Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` over the archive (table ``events``); returns column names and rows."""
    con = _connect(data_dir)
    try:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description or ()]
        return names, cursor.fetchall()
    finally:
        con.close()


def read_events(data_dir: str | Path, batch: int = 10_000) -> Iterator[list[LoggedEvent]]:
    """The archived events in their original log order, ``batch`` at a time. An event that
    had no ``event_id`` gets ``archive:<offset>``, so backfilling twice finds duplicates."""
    con = _connect(data_dir)
    try:
        cursor = con.execute(
            "SELECT type, user_id, item_id, ts, event_id, session_id, context, "
            'recommendation_id, value, "offset" FROM events ORDER BY "offset"'
        )
        while rows := cursor.fetchmany(batch):
            yield [
                LoggedEvent(
                    type_code(r[0]),
                    r[1],
                    r[2],
                    r[3],
                    r[4] if r[4] is not None else f"archive:{r[9]}",
                    r[5],
                    None if r[6] is None else json.loads(r[6]),
                    r[7],
                    r[8],
                )
                for r in rows
            ]
    finally:
        con.close()


def backfill(data_dir: str | Path, target: Any, batch: int = 10_000) -> tuple[int, int]:
    """Append the archive under ``data_dir`` to ``target``'s log (an ``Engine`` or a
    ``ClusterEngine``) in its original order; returns (accepted, duplicates)."""
    accepted = duplicates = 0
    for events in read_events(data_dir, batch):
        result = target.log.append(events)
        accepted += result.accepted
        duplicates += result.duplicates
    return accepted, duplicates
