"""``freshrec`` commands. Entry points only wire parts together; logic lives in the parts.

Settings come from flags, then ``FRESHREC_*`` environment variables, then defaults.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from freshrec.settings import Settings

app = typer.Typer(help="freshrec: real-time recommendations for e-commerce.", no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (log, snapshots).")]
Host = Annotated[str | None, typer.Option(help="Address to bind.")]
Port = Annotated[int | None, typer.Option(help="Port to bind.")]


def _settings(**flags: Any) -> Settings:
    return Settings(**{k: v for k, v in flags.items() if v is not None})


def run_server(settings: Settings) -> None:
    """Serve the HTTP API over an engine opened from ``settings`` until interrupted."""
    import uvicorn

    from freshrec.engine import Engine
    from freshrec.serving import create_app

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    engine = Engine(settings)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: end with exit code 0 instead
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        uvicorn.run(create_app(engine, close_engine=True), host=settings.host,
                    port=settings.port, log_level="warning", access_log=False)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        engine.close()


@app.command()
def serve(data_dir: DataDir = None, host: Host = None, port: Port = None) -> None:
    """Run the HTTP API with an embedded engine (log and snapshots under --data-dir)."""
    settings = _settings(data_dir=data_dir, host=host, port=port)
    if settings.data_dir is None:
        raise typer.BadParameter("--data-dir (or FRESHREC_DATA_DIR) is required", param_hint="--data-dir")
    typer.echo(f"freshrec serving on http://{settings.host}:{settings.port} "
               f"(data in {settings.data_dir})")
    run_server(settings)


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="u.data or a CSV file.")],
    data_dir: DataDir = None,
    fmt: Annotated[str, typer.Option("--format", help="ml100k, csv or auto.")] = "auto",
    user_col: Annotated[str, typer.Option(help="CSV column of user ids.")] = "user_id",
    item_col: Annotated[str, typer.Option(help="CSV column of item ids.")] = "item_id",
    time_col: Annotated[str, typer.Option(help="CSV column of timestamps.")] = "timestamp",
    type_col: Annotated[str | None, typer.Option(help="CSV column of event types.")] = None,
    session_col: Annotated[str | None, typer.Option(help="CSV column of session ids.")] = None,
    type_map: Annotated[str | None, typer.Option(
        help="Rename types, e.g. 'pv=view,cart=add_to_cart,buy=purchase,fav=favorite'.")] = None,
    default_type: Annotated[str, typer.Option(help="Type of rows without a type column.")] = "view",
) -> None:
    """Load a historical data file through the log and the processor (event time preserved)."""
    from freshrec.replay import ReplaySource, replay_file

    settings = _settings(data_dir=data_dir)
    if settings.data_dir is None:
        raise typer.BadParameter("--data-dir (or FRESHREC_DATA_DIR) is required", param_hint="--data-dir")
    source = ReplaySource(file, fmt, user_col, item_col, time_col, type_col, session_col,
                          type_map, default_type)
    summary = replay_file(source, settings)
    typer.echo(summary)


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
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per simulated request

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


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
