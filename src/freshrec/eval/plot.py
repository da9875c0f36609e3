"""Windowed Recall@10 (or HR@10) curves of every model in a report, as a PNG (matplotlib, Agg).

Needs the ``eval`` extra (``pip install 'freshrec[eval]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from freshrec.errors import FreshrecError


def plot_curves(report: dict[str, Any], path: str | Path) -> Path:
    """Draw each model's windowed curve of ``report`` into the PNG ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise FreshrecError("--plot needs matplotlib: pip install 'freshrec[eval]'") from None
    metric = "HR@10" if report["protocol"] == "session" else "Recall@10"
    fig = Figure(figsize=(10, 5), dpi=100)
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["tab10"].colors
    for n, (name, result) in enumerate(report["models"].items()):
        curve = result["curve"]
        style = "o" if len(curve["x"]) == 1 else ("-", "--", ":")[n // 10 % 3]
        ax.plot(curve["x"], curve["y"], style, color=colours[n % 10], label=name, linewidth=1.3)
    ax.set_xlabel("tested events")
    ax.set_ylabel(f"{metric}, last {report['window']:,} tests")
    ax.set_title(f"{report['data']} — {report['protocol']} protocol (prequential)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


__all__ = ["plot_curves"]
