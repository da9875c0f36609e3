"""docs/api.md documents every HTTP endpoint the app serves."""

from __future__ import annotations

from pathlib import Path

from fastapi.routing import APIRoute

from freshrec import Engine
from freshrec.serving import create_app

ROOT = Path(__file__).resolve().parents[3]


def test_every_endpoint_is_in_the_api_docs() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    with Engine.open() as engine:
        app = create_app(engine)
        routes = [r for r in app.routes if isinstance(r, APIRoute)]
    missing = [
        f"{method} {r.path}"
        for r in routes
        for method in r.methods
        if f"{method} {r.path.replace('{experiment_id}', '{id}')}" not in text
        and f"{method} {r.path}?" not in text
    ]
    assert not missing, f"docs/api.md lacks {missing}"
