"""Every processed event appended to Parquet files partitioned by date, for analytics (DuckDB)
and for backfilling a fresh deployment (``freshrec replay --from-archive``). Never on the
request path: workers hand processed chunks to a background writer."""

from freshrec.archive.query import archive_glob, backfill, query, read_events
from freshrec.archive.writer import ArchiveWriter

__all__ = ["ArchiveWriter", "archive_glob", "backfill", "query", "read_events"]
