"""``freshrec`` commands. Entry points only wire parts together; logic lives in the parts.

Settings come from flags, then ``FRESHREC_*`` environment variables, then defaults.
"""

from __future__ import annotations

import logging
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

    engine = Engine(settings)
    try:
        uvicorn.run(create_app(engine), host=settings.host, port=settings.port,
                    log_level="warning", access_log=False)
    finally:
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


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
