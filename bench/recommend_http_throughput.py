"""Recommendations over HTTP, throughput with a 10k-item catalogue: see ``bench.recommend_http``.

Budget (issue 6): >= 2,000 req/s, one server process, filters and explanations on.
"""

from __future__ import annotations

from bench.recommend_http import main as _main


def main(argv: list[str] | None = None) -> int:
    return _main(argv, mode="throughput")


if __name__ == "__main__":
    raise SystemExit(main())
