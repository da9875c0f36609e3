"""``freshrec evaluate`` on tiny files: table, JSON, plot, errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from freshrec.cli import app

runner = CliRunner()


def tiny_csv(path: Path) -> Path:
    rows = ["user,item,when,kind"]
    t = 1_700_000_000
    for u in range(6):
        for n, item in enumerate(["a", "b", "c", "d"] if u % 2 else ["x", "y", "z"]):
            rows.append(f"u{u},{item},{t + 100 * u + n},{'buy' if n == 2 else 'pv'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_evaluate_prints_a_table_and_writes_json_and_plot(tmp_path: Path) -> None:
    data = tiny_csv(tmp_path / "events.csv")
    out, png = tmp_path / "r.json", tmp_path / "curves.png"
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(data),
            "--user-col",
            "user",
            "--item-col",
            "item",
            "--time-col",
            "when",
            "--type-col",
            "kind",
            "--type-map",
            "pv=view,buy=purchase",
            "--models",
            "pop,successor,itemknn",
            "--k",
            "1,5",
            "--json",
            str(out),
            "--plot",
            str(png),
            "--no-progress",
            "--window",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Recall@1" in result.output and "itemknn" in result.output
    report = json.loads(out.read_text())
    assert report["events"] == 21 and report["tested"] == 15 and report["users"] == 6
    assert set(report["models"]) == {"pop", "successor", "itemknn"}
    assert report["models"]["successor"]["metrics"]["recall@1"] > 0.5
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_session_protocol_on_a_headerless_file(tmp_path: Path) -> None:
    data = tmp_path / "raw.csv"
    data.write_text(
        "".join(
            f"{u},{i},{1000 + 60 * n}\n"
            for n, (u, i) in enumerate([(1, 7), (1, 8), (2, 7), (2, 8), (3, 7)])
        )
    )
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(data),
            "--user-col",
            "0",
            "--item-col",
            "1",
            "--time-col",
            "2",
            "--protocol",
            "session",
            "--models",
            "successor",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "HR@10" in result.output and "MRR@20" in result.output


def test_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    data = tiny_csv(tmp_path / "events.csv")
    result = runner.invoke(app, ["evaluate", str(data), "--models", "pop,magic", "--no-progress"])
    assert result.exit_code != 0
    assert "unknown model 'magic'" in result.output and "itemknn" in result.output


def test_bad_cutoffs_and_formats_are_refused(tmp_path: Path) -> None:
    data = tiny_csv(tmp_path / "events.csv")
    assert runner.invoke(app, ["evaluate", str(data), "--k", "ten"]).exit_code != 0
    result = runner.invoke(app, ["evaluate", str(data), "--format", "parquet"])
    assert result.exit_code != 0 and "diginetica" in result.output
