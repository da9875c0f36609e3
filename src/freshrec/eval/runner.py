"""One evaluation, end to end: read a file, plan a protocol, run the models, summarise.

``evaluate(spec, ...)`` returns a JSON-ready report (the ``--json`` output of ``freshrec
evaluate``); ``freshrec.eval.report`` renders it as a table, ``freshrec.eval.plot`` draws its
windowed curves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from freshrec.eval.adapters import check_names, create, known_models
from freshrec.eval.datasets import DataSpec, load, sessions_of
from freshrec.eval.metrics import hits, summarise, windowed
from freshrec.eval.protocol import ModelRun, Plan, evaluate_models, user_plan
from freshrec.eval.session import session_plan
from freshrec.events import LoggedEvent

PROTOCOLS = ("user", "session")
DEFAULT_MODELS = {
    "user": (
        "engine",
        "popularity",
        "covisitation",
        "mf",
        "pop",
        "pop-decayed",
        "itemknn",
        "isgd",
        "als-1000-recalc",
    ),
    "session": ("engine", "covisitation", "mf", "pop", "successor", "sknn", "vsknn"),
}
METRICS = {"user": ("recall", "ndcg", "precision", "mrr"), "session": ("hr", "mrr", "ndcg")}
CURVE_K = 10


def default_models(protocol: str) -> list[str]:
    """The default model list of ``protocol``, without those not available here."""
    known = set(known_models())
    return [m for m in DEFAULT_MODELS[protocol] if m in known]


def make_plan(
    events: list[LoggedEvent],
    protocol: str,
    limit: int | None = None,
    auc_negatives: int = 100,
    seed: int = 0,
    session_gap_seconds: float = 1800.0,
) -> Plan:
    """The protocol's plan over ``events`` (time-ordered); ``limit`` keeps its first N events."""
    if protocol == "user":
        return user_plan(events[:limit], auc_negatives, seed)
    if protocol == "session":
        plan = session_plan(sessions_of(events, session_gap_seconds))
        if limit is not None:
            plan.events, plan.tested = plan.events[:limit], plan.tested[:limit]
        return plan
    raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")


def summarise_run(run: ModelRun, plan: Plan, ks: Sequence[int], window: int) -> dict[str, Any]:
    """Metrics, curve and timings of one model's run."""
    x, y = windowed(hits(run.ranks, CURVE_K).astype(float), window)
    n = max(len(plan.events), 1)
    return {
        "metrics": summarise(run.ranks, ks, METRICS[plan.protocol], run.auc),
        "seconds": round(run.seconds, 2),
        "learn_us_per_event": round(1e6 * run.learn_seconds / n, 1),
        "recommend_ms_per_test": round(1e3 * run.recommend_seconds / max(plan.n_tested, 1), 3),
        "curve": {"x": x.tolist(), "y": [round(v, 5) for v in y.tolist()]},
    }


def run_plan(
    plan: Plan,
    models: Sequence[str],
    ks: Sequence[int],
    window: int = 1000,
    seed: int = 0,
    show_progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run every model through ``plan``; returns ``{model: summary}``."""
    check_names(models)
    adapters = (create(name, seed) for name in models)  # one at a time, as each run starts
    k = max(ks)
    bar = _progress_bar(show_progress)
    with bar or nullcontext():

        def on_start(name: str):  # type: ignore[no-untyped-def]
            if bar is None:
                return None
            task = bar.add_task(name, total=len(plan.events))
            return lambda done: bar.update(task, completed=done)

        runs = evaluate_models(plan, adapters, k, on_start)
    return {run.name: summarise_run(run, plan, ks, window) for run in runs}


def evaluate(
    spec: DataSpec,
    protocol: str = "user",
    models: Sequence[str] | None = None,
    ks: Sequence[int] = (10, 20),
    window: int = 1000,
    auc_negatives: int = 100,
    seed: int = 0,
    limit: int | None = None,
    session_gap_seconds: float = 1800.0,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``models`` on the file of ``spec`` with ``protocol``; a JSON-ready report."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    models = list(models or default_models(protocol))
    check_names(models)  # unknown names fail before the data is read
    started = time.perf_counter()
    loaded = load(spec)
    plan = make_plan(loaded.events, protocol, limit, auc_negatives, seed, session_gap_seconds)
    results = run_plan(plan, models, ks, window, seed, show_progress)
    users = {e.user_id for e in plan.events}
    return {
        "data": spec.name,
        "protocol": protocol,
        "ks": list(ks),
        "window": window,
        "auc_negatives": auc_negatives if protocol == "user" else 0,
        "rows": loaded.rows,
        "rejected": loaded.rejected,
        "dropped": loaded.dropped,
        "events": len(plan.events),
        "tested": plan.n_tested,
        "users" if protocol == "user" else "sessions": len(users),
        "items": len({e.item_id for e in plan.events}),
        "limit": limit,
        "seconds": round(time.perf_counter() - started, 1),
        "models": results,
    }


def _progress_bar(show: bool):  # type: ignore[no-untyped-def]
    if not show:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description:>18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )


__all__ = ["DEFAULT_MODELS", "PROTOCOLS", "default_models", "evaluate", "make_plan", "run_plan"]
