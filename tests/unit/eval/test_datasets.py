"""Reading files for the evaluator: MovieLens ratings, headerless CSV, DIGINETICA."""

from __future__ import annotations

from pathlib import Path

import pytest

from freshrec.eval.datasets import TAOBAO_TYPES, DataSpec, load, resolved_format
from freshrec.events import EventType

DATA = Path(__file__).resolve().parents[4] / "shared" / "data"


def test_ml100k_keeps_ratings_of_four_or_more_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "u.data"
    path.write_text("1\t10\t5\t300\n1\t20\t3\t100\n2\t10\t4\t200\nnot a row\n")
    loaded = load(DataSpec(path, "ml100k"))
    assert [(e.user_id, e.item_id, e.ts) for e in loaded.events] == [
        ("2", "10", 200.0),
        ("1", "10", 300.0),
    ]
    assert (loaded.dropped, loaded.rejected, loaded.rows) == (1, 1, 4)


def test_headerless_taobao_style_csv_by_column_position(tmp_path: Path) -> None:
    path = tmp_path / "ub.csv"
    path.write_text("1,100,9,pv,1511544070\n1,101,9,buy,1511544000\n2,100,9,cart,1511544080\n")
    spec = DataSpec(path, "csv", "0", "1", "4", "3", type_map=TAOBAO_TYPES)
    events = load(spec).events
    assert [e.item_id for e in events] == ["101", "100", "100"]
    assert [e.type for e in events] == [EventType.purchase, EventType.view, EventType.add_to_cart]


def test_diginetica_time_is_the_date_plus_timeframe(tmp_path: Path) -> None:
    path = tmp_path / "views.csv"
    path.write_text(
        "session_id;user_id;item_id;timeframe;eventdate\n"
        "1;NA;81766;526309;2016-05-09\n1;NA;31331;1031;2016-05-09\n"
        "2;7;5;0;2016-05-10\n3;NA;5;x;2016-05-10\n"
    )
    loaded = load(DataSpec(path, "diginetica"))
    assert [(e.user_id, e.session_id, e.item_id) for e in loaded.events] == [
        ("1", "1", "31331"),
        ("1", "1", "81766"),
        ("2", "2", "5"),
    ]
    assert loaded.events[0].ts == pytest.approx(1462752000 + 1.031)
    assert loaded.rejected == 1


def test_auto_format_reads_each_kind_from_its_first_line(tmp_path: Path) -> None:
    movielens = tmp_path / "u.data"
    movielens.write_text("1\t10\t5\t300\n1\t20\t3\t100\n")
    digi = tmp_path / "views.csv"
    digi.write_text("session_id;user_id;item_id;timeframe;eventdate\n1;NA;8;5;2016-05-09\n")
    named = tmp_path / "events.csv"
    named.write_text("user_id,item_id,timestamp\nu,i,100\n")
    assert [resolved_format(DataSpec(p)) for p in (movielens, digi, named)] == [
        "ml100k",
        "diginetica",
        "csv",
    ]
    assert [e.item_id for e in load(DataSpec(movielens)).events] == ["10"]  # ratings >= 4
    assert [e.session_id for e in load(DataSpec(digi)).events] == ["1"]


@pytest.mark.skipif(not (DATA / "ml-100k" / "u.data").exists(), reason="no shared data")
def test_a_slice_of_movielens_ranks_item_knn_above_popularity() -> None:
    from freshrec.eval.adapters import create
    from freshrec.eval.metrics import recall_at_k
    from freshrec.eval.protocol import run_model, user_plan

    events = load(DataSpec(DATA / "ml-100k" / "u.data", "ml100k")).events
    assert len(events) == 55_375
    plan = user_plan(events[:4000], auc_negatives=0)
    pop = recall_at_k(run_model(plan, create("pop"), 10).ranks, 10)
    knn = recall_at_k(run_model(plan, create("itemknn"), 10).ranks, 10)
    assert 0.05 < pop < knn
