"""Reports of ``freshrec.eval.runner.evaluate`` as a terminal table or a markdown table.

>>> report = {"data": "d", "protocol": "session", "ks": [10], "events": 9, "tested": 4,
...           "models": {"pop": {"metrics": {"hr@10": 0.25, "mrr@10": 0.125, "ndcg@10": 0.2},
...                              "seconds": 0.01}}}
>>> print(markdown(report))
| model | HR@10 | MRR@10 | NDCG@10 | seconds |
|---|---|---|---|---|
| pop | 0.2500 | 0.1250 | 0.2000 | 0.0 |
"""

from __future__ import annotations

from typing import Any

_LABELS = {"recall": "Recall", "hr": "HR", "ndcg": "NDCG", "precision": "P", "mrr": "MRR"}


def columns(report: dict[str, Any]) -> list[str]:
    """Metric keys in display order: per K, every metric; then AUC when measured."""
    first = next(iter(report["models"].values()), {"metrics": {}})["metrics"]
    names: list[str] = []
    for k in report["ks"]:
        names += [key for key in first if key.endswith(f"@{k}")]
    if any(r["metrics"].get("auc") is not None for r in report["models"].values()):
        names.append("auc")
    return names


def label(key: str) -> str:
    name, _, k = key.partition("@")
    return f"{_LABELS.get(name, name)}@{k}" if k else name.upper()


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and one row per model."""
    keys = columns(report)
    header = ["model", *(label(k) for k in keys), "seconds"]
    body = [
        [name, *(_cell(r["metrics"].get(k)) for k in keys), f"{r['seconds']:.1f}"]
        for name, r in report["models"].items()
    ]
    return header, body


def title(report: dict[str, Any]) -> str:
    who = "sessions" if report["protocol"] == "session" else "users"
    count = report.get(who)
    extra = f", {count:,} {who}" if count is not None else ""
    return (
        f"{report['data']} — {report['protocol']} protocol: {report['events']:,} events, "
        f"{report['tested']:,} tested{extra}"
    )


def markdown(report: dict[str, Any]) -> str:
    """The report as a GitHub markdown table (no title)."""
    header, body = rows(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def rich_table(report: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The report as a ``rich`` table, best Recall/HR@K (first K) in bold."""
    from rich.table import Table

    header, body = rows(report)
    table = Table(title=title(report))
    for n, name in enumerate(header):
        table.add_column(name, justify="left" if n == 0 else "right")
    best = _best_row(body)
    for n, row in enumerate(body):
        table.add_row(*row, style="bold" if n == best else None)
    return table


def _best_row(body: list[list[str]]) -> int | None:
    values = [float(r[1]) if r[1] != "—" else -1.0 for r in body]
    return max(range(len(values)), key=values.__getitem__) if values else None


__all__ = ["columns", "label", "markdown", "rich_table", "rows", "title"]
