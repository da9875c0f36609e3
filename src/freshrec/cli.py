"""``freshrec`` commands. Entry points only wire parts together; logic lives in the parts.

Settings come from flags, then ``FRESHREC_*`` environment variables, then defaults.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import pydantic
import typer
from pydantic_settings import SettingsError

from freshrec.cli_models import models_app
from freshrec.errors import FreshrecError
from freshrec.settings import Settings, describe_errors, unknown_variables

app = typer.Typer(help="freshrec: real-time recommendations for e-commerce.", no_args_is_help=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (log, snapshots).")
]
Host = Annotated[str | None, typer.Option(help="Address to bind.")]
Port = Annotated[int | None, typer.Option(help="Port to bind.")]
# how a data file is read (freshrec replay and freshrec evaluate)
DataFile = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, help="u.data or a CSV file.")
]
UserCol = Annotated[str, typer.Option(help="CSV column of user ids (name or 0-based index).")]
ItemCol = Annotated[str, typer.Option(help="CSV column of item ids.")]
TimeCol = Annotated[str, typer.Option(help="CSV column of timestamps.")]
TypeCol = Annotated[str | None, typer.Option(help="CSV column of event types.")]
SessionCol = Annotated[str | None, typer.Option(help="CSV column of session ids.")]
RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis of a scale-out deployment (redis://host:6379/0)."),
]
TypeMap = Annotated[
    str | None,
    typer.Option(help="Rename types, e.g. 'pv=view,cart=add_to_cart,buy=purchase,fav=favorite'."),
]


def _settings(**flags: Any) -> Settings:
    """Settings from the flags given, ``FRESHREC_*`` variables and defaults; a bad value is a
    usage error naming the setting (and its variable), not a traceback."""
    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except pydantic.ValidationError as exc:
        raise typer.BadParameter(describe_errors(exc)) from None
    except SettingsError as exc:  # a FRESHREC_* variable that is not valid JSON where needed
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise typer.BadParameter(f"{exc}{cause} (list and dict settings take JSON)") from None


def _require_data_dir(settings: Settings) -> None:
    if settings.data_dir is None:
        raise typer.BadParameter(
            "--data-dir (or FRESHREC_DATA_DIR) is required", param_hint="--data-dir"
        )


def run_server(settings: Settings) -> None:
    """Serve the HTTP API over an engine opened from ``settings`` until interrupted."""
    import uvicorn

    from freshrec.engine import Engine
    from freshrec.serving import create_app
    from freshrec.serving.transport import HttpProtocol

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if settings.redis_url is not None:  # scale-out: a stateless replica over Redis
        from freshrec.scaleout import ClusterEngine

        engine: Any = ClusterEngine(settings)
    else:
        try:
            engine = Engine(settings)
        except FreshrecError as exc:  # e.g. the data directory is another process's
            raise typer.BadParameter(str(exc)) from None
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: end with exit code 0 instead
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        uvicorn.run(
            create_app(engine, close_engine=True, freeze_heap=True),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            http=HttpProtocol,  # one socket write per response (serving/transport.py)
        )
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        engine.close()


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Host = None,
    port: Port = None,
    redis_url: RedisUrl = None,
    grpc_port: Annotated[int | None, typer.Option(help="Also serve gRPC on this port.")] = None,
) -> None:
    """Run the HTTP API with an embedded engine (log and snapshots under --data-dir), or, with
    --redis-url, as a stateless replica of a scale-out deployment."""
    settings = _settings(
        data_dir=data_dir, host=host, port=port, redis_url=redis_url, grpc_port=grpc_port
    )
    where = f"Redis {settings.redis_url}" if settings.redis_url else f"data in {settings.data_dir}"
    if settings.redis_url is None:
        _require_data_dir(settings)
    typer.echo(f"freshrec serving on http://{settings.host}:{settings.port} ({where})")
    run_server(settings)


@app.command()
def worker(
    redis_url: RedisUrl = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the Parquet archive is written.")
    ] = None,
    partitions: Annotated[
        str | None, typer.Option(help="Only these partitions, e.g. '0,1' (default: a fair share).")
    ] = None,
) -> None:
    """Process events of a scale-out deployment (any number of workers share the partitions)."""
    from freshrec.scaleout import Worker

    settings = _settings(redis_url=redis_url, data_dir=data_dir)
    if settings.redis_url is None:
        raise typer.BadParameter("--redis-url (or FRESHREC_REDIS_URL) is required")
    only = None
    if partitions:
        try:
            only = {int(p) for p in partitions.split(",") if p.strip()}
        except ValueError:
            raise typer.BadParameter(
                f"expected integers like 0,1, got {partitions!r}", param_hint="--partitions"
            ) from None
        bad = [p for p in only if not 0 <= p < settings.redis_partitions]
        if bad:
            raise typer.BadParameter(
                f"partitions {bad} outside 0..{settings.redis_partitions - 1}",
                param_hint="--partitions",
            )
    try:
        w = Worker(settings, only)
    except FreshrecError as exc:
        raise typer.BadParameter(str(exc)) from None

    def stop(signum: int, frame: object) -> None:
        w.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    typer.echo(f"freshrec worker {w.id} on {settings.redis_url}")
    w.run()
    typer.echo(f"freshrec worker {w.id} stopped ({w.processed} events processed)")


archive_app = typer.Typer(help="The Parquet archive of processed events.", no_args_is_help=True)
app.add_typer(archive_app, name="archive")


@archive_app.command("query")
def archive_query(
    sql: Annotated[str, typer.Argument(help="SQL over the table `events` (DuckDB).")],
    data_dir: DataDir = None,
) -> None:
    """Run SQL over the archived events with DuckDB and print the rows (tab-separated)."""
    from freshrec.archive import query

    settings = _settings(data_dir=data_dir)
    _require_data_dir(settings)
    try:
        names, rows = query(settings.data_dir, sql)  # type: ignore[arg-type]
    except FreshrecError as exc:
        raise typer.BadParameter(str(exc)) from None
    except Exception as exc:  # DuckDB's own errors (syntax, unknown column)
        raise typer.BadParameter(f"sql: {exc}") from None
    typer.echo("\t".join(names))
    for row in rows:
        typer.echo("\t".join("" if v is None else str(v) for v in row))


@app.command()
def replay(
    file: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, help="u.data or a CSV file."),
    ] = None,
    data_dir: DataDir = None,
    from_archive: Annotated[
        Path | None,
        typer.Option(
            "--from-archive",
            exists=True,
            file_okay=False,
            help="Backfill from the Parquet archive under this data directory instead.",
        ),
    ] = None,
    redis_url: RedisUrl = None,
    fmt: Annotated[str, typer.Option("--format", help="ml100k, csv or auto.")] = "auto",
    user_col: UserCol = "user_id",
    item_col: ItemCol = "item_id",
    time_col: TimeCol = "timestamp",
    type_col: TypeCol = None,
    session_col: SessionCol = None,
    type_map: TypeMap = None,
    default_type: Annotated[str, typer.Option(help="Type of rows without a type column.")] = "view",
) -> None:
    """Load a historical data file (or, with --from-archive, a deployment's Parquet archive)
    through the log and the processor (event time preserved); into --redis-url when given."""
    from freshrec.replay import ReplaySource, replay_file

    settings = _settings(data_dir=data_dir, redis_url=redis_url)
    if from_archive is not None:
        _backfill(from_archive, settings)
        return
    if file is None:
        raise typer.BadParameter("a data file (or --from-archive DIR) is required")
    _require_data_dir(settings)
    try:
        source = ReplaySource(
            file, fmt, user_col, item_col, time_col, type_col, session_col, type_map, default_type
        )
        summary = replay_file(source, settings)
    except FreshrecError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(summary)


def _backfill(archive: Path, settings: Settings) -> None:
    """``freshrec replay --from-archive``: the archive's events into a fresh deployment."""
    from freshrec.archive import backfill

    if settings.redis_url is not None:
        from freshrec.scaleout import ClusterEngine

        target: Any = ClusterEngine(settings)
    else:
        _require_data_dir(settings)
        from freshrec.engine import Engine

        target = Engine(settings)
    try:
        accepted, duplicates = backfill(archive, target)
        if settings.redis_url is None:
            target.process()
    except FreshrecError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        target.close()
    typer.echo(f"backfilled {accepted} events from {archive} ({duplicates} already there)")


@app.command()
def demo(
    data_dir: DataDir = None,
    host: Host = None,
    port: Port = None,
    rate: Annotated[float, typer.Option(min=0.1, help="Simulated events per second.")] = 200.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated shop.")] = 0,
    shoppers: Annotated[int, typer.Option(min=1, help="Shoppers in the simulated shop.")] = 500,
    items: Annotated[int, typer.Option(min=20, help="Items in the simulated shop.")] = 3000,
) -> None:
    """Run the server, a simulated shop sending it live traffic, and the dashboard at /."""
    import time
    import uuid

    from freshrec.sim import ShopSimulator, TrafficDriver

    settings = _settings(data_dir=data_dir, host=host, port=port)
    if settings.data_dir is None:
        settings = settings.model_copy(update={"data_dir": Path(".freshrec")})
    if settings.port == 0:
        raise typer.BadParameter("the demo needs a fixed port", param_hint="--port")
    reach = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = f"http://{'[' + reach + ']' if ':' in reach else reach}:{settings.port}"
    shop = ShopSimulator(
        n_items=items,
        n_shoppers=shoppers,
        seed=seed,
        start_time=time.time(),
        run_id=f"demo-{uuid.uuid4().hex[:8]}",
    )
    driver = TrafficDriver(url, shop, rate_events_per_s=rate)

    typer.echo(
        f"freshrec demo: dashboard at {url}/ ({rate:g} simulated events/s, seed {seed}, "
        f"data in {settings.data_dir}); Ctrl-C to stop"
    )
    driver.start()
    try:
        run_server(settings)
    finally:
        driver.stop()
    typer.echo(f"freshrec demo stopped ({driver.acknowledged} simulated events acknowledged)")


@app.command()
def evaluate(
    data: DataFile,
    fmt: Annotated[
        str, typer.Option("--format", help="auto (from the first line), ml100k, csv or diginetica.")
    ] = "auto",
    user_col: UserCol = "user_id",
    item_col: ItemCol = "item_id",
    time_col: TimeCol = "timestamp",
    type_col: TypeCol = None,
    session_col: SessionCol = None,
    type_map: TypeMap = None,
    protocol: Annotated[str, typer.Option(help="user or session.")] = "user",
    models: Annotated[
        str | None, typer.Option(help="Comma-separated model names (default: standard set).")
    ] = None,
    k: Annotated[str, typer.Option("--k", help="Cut-offs, e.g. 10,20.")] = "10,20",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write Recall@10 curves here (PNG).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N events.")] = None,
    window: Annotated[int, typer.Option(min=1, help="Tests per window of the curves.")] = 1000,
    auc_negatives: Annotated[
        int, typer.Option(min=0, help="Sampled items per AUC test (0: no AUC).")
    ] = 100,
    min_rating: Annotated[float, typer.Option(help="ml100k: lowest positive rating.")] = 4.0,
    session_gap: Annotated[
        float, typer.Option(help="Inactivity (s) ending a session without a session id.")
    ] = 1800.0,
    seed: Annotated[int, typer.Option(help="Seed of models and AUC sampling.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Prequential (test-then-learn) evaluation of models on a data file; prints a table."""
    import json

    from rich.console import Console

    from freshrec.errors import FreshrecError
    from freshrec.eval import DataSpec
    from freshrec.eval import evaluate as run_evaluation
    from freshrec.eval.plot import plot_curves
    from freshrec.eval.report import rich_table

    try:
        ks = sorted({int(x) for x in k.split(",") if x.strip()})
    except ValueError:
        message = f"expected integers like 10,20, got {k!r}"
        raise typer.BadParameter(message, param_hint="--k") from None
    if not ks or ks[0] < 1:
        raise typer.BadParameter("cut-offs must be integers >= 1", param_hint="--k")
    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    try:
        spec = DataSpec(
            data, fmt, user_col, item_col, time_col, type_col, session_col, type_map, min_rating
        )
        report = run_evaluation(
            spec, protocol, names, ks, window, auc_negatives, seed, limit, session_gap, progress
        )
    except (FreshrecError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    console = Console()
    if not console.is_terminal:  # a file or a pipe: do not cut the table to 80 columns
        console = Console(width=160)
    console.print(rich_table(report))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if plot is not None:
        plot_curves(report, plot)


@app.command()
def loadtest(
    url: Annotated[str, typer.Option(help="The server to load.")] = "http://127.0.0.1:8000",
    rate: Annotated[
        float, typer.Option(min=0.0, help="Recommendation requests per second (open loop).")
    ] = 100.0,
    event_rate: Annotated[float, typer.Option(min=0.0, help="Events per second posted.")] = 500.0,
    seconds: Annotated[float, typer.Option(min=0.1, help="How long to run.")] = 30.0,
    connections: Annotated[int, typer.Option(min=1, help="Most requests in flight.")] = 16,
    k: Annotated[int, typer.Option(min=1, max=1000, help="Items per recommendation.")] = 10,
    shoppers: Annotated[int, typer.Option(min=1, help="Shoppers in the simulated shop.")] = 2000,
    items: Annotated[int, typer.Option(min=20, help="Items in the simulated shop.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the simulated shop.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    fail_p99_ms: Annotated[
        float | None,
        typer.Option(help="Exit 1 if the recommendations' p99 is above this (or any 5xx)."),
    ] = None,
) -> None:
    """Send a simulated shop's traffic to a running server and report throughput and latency."""
    import json

    from rich.console import Console
    from rich.table import Table

    from freshrec.loadtest import LoadTest

    if rate + event_rate <= 0:
        raise typer.BadParameter("give --rate or --event-rate above 0", param_hint="--rate")
    test = LoadTest(url, rate, event_rate, seconds, connections, k, shoppers, items, seed=seed)
    typer.echo(
        f"loading {url} for {seconds:g} s: {rate:g} recommendations/s, {event_rate:g} events/s"
    )
    report = test.run()
    table = Table(title=f"freshrec loadtest: {url}, {report['seconds']} s")
    for column in ("requests", "sent", "answered", "answers/s", "statuses", "p50 ms",
                   "p95 ms", "p99 ms", "max ms"):  # fmt: skip
        table.add_column(column)
    for name, label in (
        ("recommendations", "GET /v1/recommendations"),
        ("events", "POST /v1/events"),
    ):
        r = report[name]
        ms = r.get("ms", {})
        events = f" ({r['events']:,} events)" if "events" in r else ""
        table.add_row(
            label,
            f"{r['sent']:,}{events}",
            f"{r['answered']:,}",
            f"{r['per_second']:,}",
            ", ".join(f"{k}: {v:,}" for k, v in r["statuses"].items()) or "-",
            *(f"{ms[q]:.2f}" if q in ms else "-" for q in ("p50", "p95", "p99", "max")),
        )
    Console().print(table)
    typer.echo(f"server meanwhile: {json.dumps(report['server'])}")
    typer.echo(f"clicks on recommendations: {report['clicks_on_recommendations']}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    failed = [
        f"{name} answered {status} x{n}"
        for name in ("recommendations", "events")
        for status, n in report[name]["statuses"].items()
        if not status.isdigit() or int(status) >= 500
    ]
    p99 = report["recommendations"].get("ms", {}).get("p99")
    if fail_p99_ms is not None and p99 is not None and p99 > fail_p99_ms:
        failed.append(f"recommendations p99 {p99:.2f} ms > {fail_p99_ms:g} ms")
    if fail_p99_ms is not None and failed:
        typer.echo("FAILED: " + "; ".join(failed), err=True)
        raise typer.Exit(1)


app.add_typer(models_app, name="models")


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request it sends
    for variable in unknown_variables(os.environ):
        logging.getLogger("freshrec").warning("%s is not a freshrec setting: ignored", variable)
    app()


if __name__ == "__main__":
    main()
