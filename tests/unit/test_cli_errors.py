"""Bad settings and a data directory in use are usage errors naming the cause, not tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from freshrec import Engine
from freshrec.cli import app

runner = CliRunner()


def text(output: str) -> str:
    """The output as one line, without the error box's borders (rich wraps long messages)."""
    return " ".join(output.replace("│", " ").split())


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["serve", "--data-dir", "{d}", "--port", "70000"], {}, "port (FRESHREC_PORT)"),
        (["serve", "--data-dir", "{d}"], {"FRESHREC_PORT": "abc"}, "got 'abc'"),
        (
            ["models", "list", "--data-dir", "{d}"],
            {"FRESHREC_POPULARITY_HALF_LIFE_SECONDS": "-5"},
            "popularity_half_life_seconds (FRESHREC_POPULARITY_HALF_LIFE_SECONDS)",
        ),
        (["serve", "--data-dir", "{d}"], {"FRESHREC_TYPE_WEIGHTS": "{purchase: 10"}, "JSON"),
    ],
)
def test_a_bad_setting_is_a_usage_error_naming_it(
    tmp_path: Path, args: list[str], env: dict[str, str], words: str
) -> None:
    args = [a.replace("{d}", str(tmp_path)) for a in args]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 2  # click's usage error, not an exception
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert words in text(result.output)


def test_a_data_directory_in_use_is_named_not_a_traceback(tmp_path: Path) -> None:
    with Engine.open(tmp_path):  # holds the directory's lock, as a running server would
        result = runner.invoke(app, ["models", "list", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "in use by another freshrec process" in text(result.output)
