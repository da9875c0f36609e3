"""``freshrec models list|promote|rollback``: model versions of a server (``--url``) or of a data
directory no server holds (``--data-dir``; the engine is opened, the log replayed, then closed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

models_app = typer.Typer(help="Model versions: list, promote, roll back.", no_args_is_help=True)

Url = Annotated[
    str | None, typer.Option(help="A running server, e.g. http://127.0.0.1:8000 (else --data-dir).")
]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (when no server runs).")
]


def _call(url: str | None, data_dir: Path | None, method: str, path: str, op: str, *args: Any):
    if url:
        import httpx

        try:
            r = httpx.request(method, url.rstrip("/") + path, timeout=30.0)
        except httpx.HTTPError as exc:
            raise typer.BadParameter(f"cannot reach {url}: {exc}", param_hint="--url") from None
        body = r.json()
        if r.status_code >= 400:
            typer.echo(f"error {r.status_code}: {body.get('error', body)}", err=True)
            raise typer.Exit(1)
        return body
    if data_dir is None:
        raise typer.BadParameter("give --url or --data-dir", param_hint="--url")
    import pydantic

    from freshrec.engine import Engine
    from freshrec.errors import FreshrecError
    from freshrec.settings import describe_errors

    try:
        engine = Engine.open(data_dir)
    except FreshrecError as exc:  # e.g. a server holds the data directory: use --url
        raise typer.BadParameter(str(exc), param_hint="--data-dir") from None
    except pydantic.ValidationError as exc:  # a bad FRESHREC_* variable
        raise typer.BadParameter(describe_errors(exc)) from None
    with engine:
        engine.process()
        try:
            return getattr(engine, op)(*args)
        except FreshrecError as exc:
            typer.echo(f"error {exc.status_code}: {exc}", err=True)
            raise typer.Exit(1) from None


@models_app.command("list")
def list_versions(url: Url = None, data_dir: DataDir = None) -> None:
    """Versions, newest first: events seen, live hit rate, status; * marks the current one."""
    result = _call(url, data_dir, "GET", "/v1/models", "versions")
    versions = result["versions"] if isinstance(result, dict) else result
    typer.echo(f"{'':1} {'version':>14} {'events_seen':>12} {'hit_rate':>8}  status")
    for v in versions:
        rate = ((v.get("metrics") or {}).get("hit_rate") or {}).get("ensemble")
        shown = "-" if rate is None else f"{rate:.3f}"
        extra = f" (from {v['restored_from']})" if v.get("restored_from") else ""
        mark = "*" if v["current"] else ""
        seen = "-" if v.get("events_seen") is None else v["events_seen"]  # unreadable metadata
        typer.echo(f"{mark:1} {v['version']:>14} {seen:>12} {shown:>8}  {v['status']}{extra}")


@models_app.command()
def promote(version: str, url: Url = None, data_dir: DataDir = None) -> None:
    """Serve VERSION's exact parameters from now on."""
    typer.echo(
        json.dumps(
            _call(url, data_dir, "POST", f"/v1/models/{version}/promote", "promote", version)
        )
    )


@models_app.command()
def rollback(url: Url = None, data_dir: DataDir = None) -> None:
    """Back to the version promoted before the current one."""
    typer.echo(json.dumps(_call(url, data_dir, "POST", "/v1/models/rollback", "rollback")))
