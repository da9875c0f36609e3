"""``freshrec replay``: formats, counts, idempotency, event time, bad rows, missing columns."""

from __future__ import annotations

import re
from itertools import islice
from pathlib import Path

import pytest
from typer.testing import CliRunner

from freshrec import replay as replay_module
from freshrec.cli import app
from freshrec.engine import Engine
from freshrec.errors import ValidationError
from freshrec.replay import ReplaySource, replay_into

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # ../shared/data
runner = CliRunner()

# user, item, rating, time: u1 and u2 like m1 then m2 (ratings >= 3.5); u3 rates m1 low.
U_DATA = """\
1\t10\t5\t881250000
1\t20\t4\t881250060
2\t10\t4\t881250100
2\t20\t5\t881250160
3\t10\t1\t881250200
this line is not a rating
2\t30\tfive\t881250300
4\t10\t4\t881250400
"""

CSV_DATA = """\
visitor,sku,when,kind,visit
a,shoe,2024-01-01T10:00:00Z,pv,s1
a,sock,2024-01-01T10:01:00Z,cart,s1
b,shoe,1704103300,pv,s2
b,sock,1704103360,pv,s2
c,shoe,2024-01-01T10:05:00+00:00,pv,
d,hat,2024-01-01T10:06:00,pv,s4
e,hat,,pv,s5
f,hat,1704103500,teleport,s6
g,hat
h,belt,2024-01-01T11:00:00Z,buy,s7
"""
CSV_MAX_TS = 1704106800.0  # 2024-01-01T11:00:00Z, the latest valid row


def run_replay(path: Path, data_dir: Path, *args: str):
    return runner.invoke(app, ["replay", str(path), "--data-dir", str(data_dir), *args])


def counts(output: str) -> dict[str, int]:
    """``{"rows read": 8, "accepted": 6, ...}`` from a replay summary."""
    found = re.findall(r"([\d,]+) (rows read|accepted|duplicates|rejected|users|items)", output)
    return {name: int(n.replace(",", "")) for n, name in found}


@pytest.fixture
def u_data(tmp_path: Path) -> Path:
    path = tmp_path / "u.data"
    path.write_text(U_DATA)
    return path


@pytest.fixture
def events_csv(tmp_path: Path) -> Path:
    path = tmp_path / "events.csv"
    path.write_text(CSV_DATA)
    return path


CSV_ARGS = (
    "--user-col",
    "visitor",
    "--item-col",
    "sku",
    "--time-col",
    "when",
    "--type-col",
    "kind",
    "--session-col",
    "visit",
    "--type-map",
    "pv=view,cart=add_to_cart,buy=purchase,fav=favorite",
)


def test_ml100k_counts_event_time_and_ratings(u_data: Path, tmp_path: Path) -> None:
    result = run_replay(u_data, tmp_path / "d")
    assert result.exit_code == 0, result.output
    assert counts(result.stdout) == {
        "rows read": 8,
        "accepted": 6,
        "duplicates": 0,
        "rejected": 2,
        "users": 4,
        "items": 2,
    }
    assert "line 6: expected 4 tab-separated fields" in result.stdout
    assert "line 7: value: rating is not a number: 'five'" in result.stdout
    with Engine.open(tmp_path / "d") as engine:
        assert engine.stats()["events_accepted"] == 6
        assert engine.state.max_ts == 881250400.0
        # u3 only rated m1 low: not a positive event, so nothing to recommend from
        assert engine.state.view("3").recent_items.size == 0
        assert engine.state.view("4").recent_items.size == 1
        top = engine.recommend("4", k=1)[0]
        assert (top.item_id, top.reason) == ("20", {"type": "because_you_rated", "item_id": "10"})


def test_second_replay_finds_only_duplicates(u_data: Path, tmp_path: Path) -> None:
    assert run_replay(u_data, tmp_path / "d").exit_code == 0
    again = run_replay(u_data, tmp_path / "d", "--format", "ml100k")
    assert again.exit_code == 0, again.output
    assert counts(again.stdout) == {
        "rows read": 8,
        "accepted": 0,
        "duplicates": 6,
        "rejected": 2,
        "users": 4,
        "items": 2,
    }
    with Engine.open(tmp_path / "d") as engine:
        assert engine.stats()["events_accepted"] == 6


def test_csv_types_sessions_timestamps_and_bad_rows(events_csv: Path, tmp_path: Path) -> None:
    result = run_replay(events_csv, tmp_path / "d", *CSV_ARGS)
    assert result.exit_code == 0, result.output
    assert counts(result.stdout) == {
        "rows read": 10,
        "accepted": 6,
        "duplicates": 0,
        "rejected": 4,
        "users": 4,
        "items": 3,
    }
    out = result.stdout
    assert "line 7: timestamp: RFC 3339 time needs a UTC offset" in out
    assert "line 8: timestamp: empty" in out
    assert "line 9: type: unknown event type 'teleport'" in out
    assert "line 10: expected at least 5 fields, got 2" in out
    with Engine.open(tmp_path / "d") as engine:
        assert engine.state.max_ts == CSV_MAX_TS
        a = engine.state.view("a")
        assert [engine.state.items.key(i) for i in a.recent_items] == ["sock", "shoe"]
        assert a.recent_types.tolist() == [3, 0]  # add_to_cart, view
        assert engine.state.purchased == {
            engine.state.users.get("h"): {engine.state.items.get("belt")}
        }
        top = engine.recommend("c", k=1)[0]
        assert (top.item_id, top.reason["item_id"]) == ("sock", "shoe")
        assert [r.item_id for r in engine.similar("shoe", k=1)] == ["sock"]

    again = run_replay(events_csv, tmp_path / "d", *CSV_ARGS)
    assert counts(again.stdout)["duplicates"] == 6


def test_csv_without_type_column_uses_default_type(events_csv: Path, tmp_path: Path) -> None:
    result = run_replay(
        events_csv,
        tmp_path / "d",
        "--user-col",
        "visitor",
        "--item-col",
        "sku",
        "--time-col",
        "when",
        "--default-type",
        "click",
    )
    assert result.exit_code == 0, result.output
    assert counts(result.stdout)["accepted"] == 7  # 'teleport' is not read: the row is a click
    with Engine.open(tmp_path / "d") as engine:
        assert engine.state.view("h").recent_types.tolist() == [1]  # click
        assert not engine.state.purchased


def test_missing_column_is_a_clear_error(events_csv: Path, tmp_path: Path) -> None:
    result = run_replay(
        events_csv,
        tmp_path / "d",
        "--user-col",
        "visitor",
        "--item-col",
        "sku",
        "--time-col",
        "when",
        "--type-col",
        "behaviour",
    )
    assert result.exit_code != 0
    message = str(result.exception) + result.output
    assert "--type-col" in message and "'behaviour'" in message
    assert "visitor, sku, when, kind, visit" in message
    assert not (tmp_path / "d").exists()  # checked before the engine opens


def test_headerless_csv_by_column_position(tmp_path: Path) -> None:
    path = tmp_path / "behaviour.csv"
    path.write_text("1,100,7,pv,1511658000\n1,101,7,buy,1511658060\n2,100,7,pv,1511658100\n")
    result = run_replay(
        path,
        tmp_path / "d",
        "--user-col",
        "0",
        "--item-col",
        "1",
        "--type-col",
        "3",
        "--time-col",
        "4",
        "--type-map",
        "pv=view,buy=purchase",
    )
    assert result.exit_code == 0, result.output
    assert counts(result.stdout)["accepted"] == 3
    with Engine.open(tmp_path / "d") as engine:
        assert engine.state.max_ts == 1511658060 + 40
        assert engine.state.purchased == {0: {1}}


def test_broken_rows_reject_only_themselves(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    huge = b"x" * 200_000  # over the csv module's field size limit
    path.write_bytes(
        b"user_id,item_id,timestamp\nu1,i1,100\nu\xff,i1,101\nu2,i1,102\n"
        b'u3,"' + huge + b'",103\nu4,i1,104\n'
    )
    result = run_replay(path, tmp_path / "d")
    assert result.exit_code == 0, result.output
    assert counts(result.stdout)["accepted"] == 3
    assert "line 3: not valid UTF-8 text" in result.stdout
    assert "line 5: not valid CSV: field larger than field limit" in result.stdout


def test_errors_across_chunks_keep_their_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(replay_module, "CHUNK_ROWS", 3)
    lines = ["user_id,item_id,timestamp,type"]
    for n in range(20):
        lines.append(f"u{n % 4},i{n},{1000 + n},{'view' if n % 7 else 'nope'}")
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    seen: list[tuple[int, int]] = []
    with Engine.open() as engine:
        report = replay_into(
            engine,
            ReplaySource(path, "csv", type_col="type"),
            lambda rows, chars: seen.append((rows, chars)),
        )
        assert engine.state.max_ts == 1019.0
        assert engine.stats()["events_processed"] == 17
    assert (report.rows, report.accepted, report.rejected) == (20, 17, 3)
    assert [line for line, _ in report.reasons] == [2, 9, 16]
    assert seen[-1] == (20, path.stat().st_size) and len(seen) > 5


def test_auto_format_and_option_errors(u_data: Path, events_csv: Path) -> None:
    assert ReplaySource(u_data).resolved_format() == "ml100k"
    assert ReplaySource(events_csv).resolved_format() == "csv"
    with pytest.raises(ValidationError, match="--format"):
        ReplaySource(u_data, "parquet")
    with pytest.raises(ValidationError, match="--default-type"):
        ReplaySource(u_data, default_type="peek")
    with pytest.raises(ValidationError, match="--type-map"):
        ReplaySource(u_data, type_map="pv")


# -- slices of the shared data sets (skipped when they are absent) -------------------------------
def _slice(source: Path, target: Path, n: int) -> list[str]:
    if not source.is_file():
        pytest.skip(f"{source} is not available")
    with source.open() as f:
        lines = list(islice(f, n))
    target.write_text("".join(lines))
    return lines


def test_movielens_slice(tmp_path: Path) -> None:
    lines = _slice(DATA / "ml-100k" / "u.data", tmp_path / "u.data", 2000)
    result = run_replay(tmp_path / "u.data", tmp_path / "d")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in lines]
    assert counts(result.stdout) == {
        "rows read": 2000,
        "accepted": 2000,
        "duplicates": 0,
        "rejected": 0,
        "users": len({r[0] for r in rows}),
        "items": len({r[1] for r in rows}),
    }
    with Engine.open(tmp_path / "d") as engine:
        assert engine.state.max_ts == max(float(r[3]) for r in rows)


def test_taobao_slice(tmp_path: Path) -> None:
    source = DATA / "taobao-userbehavior" / "userbehavior_time_slice.csv"
    lines = _slice(source, tmp_path / "taobao.csv", 3000)
    result = run_replay(
        tmp_path / "taobao.csv",
        tmp_path / "d",
        "--user-col",
        "0",
        "--item-col",
        "1",
        "--type-col",
        "3",
        "--time-col",
        "4",
        "--type-map",
        "pv=view,cart=add_to_cart,buy=purchase,fav=favorite",
    )
    assert result.exit_code == 0, result.output
    rows = [line.strip().split(",") for line in lines]
    assert counts(result.stdout)["accepted"] == 3000
    with Engine.open(tmp_path / "d") as engine:
        assert engine.state.max_ts == max(float(r[4]) for r in rows)
        buyers = {engine.state.users.get(r[0]) for r in rows if r[3] == "buy"}
        assert set(engine.state.purchased) == buyers
