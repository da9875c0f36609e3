"""Snapshots read in place: aligned members, sparse tables made dense a row at a time, pages
given back, arrays copied into the buffers a model holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from freshrec.registry.mapped import SparseArray, copy_rows, release_pages, rows_into
from freshrec.registry.store import SnapshotStore


def table(rows: int, width: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Co-visitation-like tables: 12 % of the slots set (stored sparse when large)."""
    rng = np.random.default_rng(seed)
    used = rng.random((rows, width)) < 0.12
    nbr = np.where(used, rng.integers(0, rows, (rows, width)), -1).astype(np.int32)
    nbw = np.where(used, rng.random((rows, width)), 0.0).astype(np.float32)
    return nbr, nbw


def rss_file_kb() -> int:
    with open("/proc/self/status", encoding="utf-8") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile:"))


@pytest.fixture
def stored(tmp_path: Path) -> tuple[dict[str, np.ndarray], Path, SnapshotStore]:
    nbr, nbw = table(40_000, 64)  # 10 MB each: stored sparse
    arrays = {
        "covisitation/nbr": nbr,
        "covisitation/nbw": nbw,
        "mf/user_factors": np.random.default_rng(2).normal(size=(3_001, 8)).astype(np.float32),
        "mf/user_events": np.where(np.arange(1_100_000) % 9 == 0, 4, 0),  # 1-d, sparse
        "odd": np.arange(7, dtype=np.int8),
    }
    store = SnapshotStore(tmp_path)
    return arrays, store.save(5, arrays, {"users": ["a"]}, {}), store


def test_a_mapped_snapshot_holds_the_stored_arrays_aligned_and_exact(stored) -> None:
    arrays, folder, store = stored
    snap = store.load(folder, mapped=True)
    assert snap.documents == {"users": ["a"]}
    assert store.load_version("v5", mapped=True).documents == {}  # a version: ids not read
    assert isinstance(snap.arrays["covisitation/nbr"], SparseArray)
    assert isinstance(snap.arrays["mf/user_events"], SparseArray)
    for key, value in arrays.items():
        got = snap.arrays[key]
        dense = got.dense() if isinstance(got, SparseArray) else got
        assert dense.dtype == value.dtype and dense.tobytes() == value.tobytes(), key
        if isinstance(got, np.ndarray):
            assert got.ctypes.data % 64 == 0 and got.flags.aligned, key  # members on 64 bytes
    nbr = snap.arrays["covisitation/nbr"]
    rows = np.array([39_999, 0, 7, 7, 20_000])
    np.testing.assert_array_equal(nbr.rows(rows), arrays["covisitation/nbr"][rows])
    ones = snap.arrays["mf/user_events"]
    np.testing.assert_array_equal(ones.rows(np.array([9, 10, 0])), [4, 0, 4])
    with np.load(folder / "arrays.npz") as plain:  # still an ordinary .npz
        assert plain["odd"].tolist() == list(range(7))


def test_released_pages_leave_the_process_and_other_arrays_are_untouched(
    tmp_path: Path,
) -> None:
    big = np.random.default_rng(3).normal(size=(16_000_000,)).astype(np.float32)  # 64 MB
    folder = SnapshotStore(tmp_path).save(1, {"big": big}, {}, {})
    snap = SnapshotStore(tmp_path).load(folder, mapped=True)
    mapped = snap.arrays["big"]
    before = rss_file_kb()
    assert float(mapped.sum(dtype=np.float64)) == pytest.approx(float(big.sum(dtype=np.float64)))
    assert rss_file_kb() - before > 40_000  # read: its pages are the process's
    release_pages(mapped[: mapped.shape[0] // 2])
    middle = rss_file_kb()
    snap.release()
    assert rss_file_kb() < middle < before + 40_000
    np.testing.assert_array_equal(mapped[:1000], big[:1000])  # read again from the page cache
    plain = big.copy()
    release_pages(plain)  # not a snapshot's mapping: nothing happens to it
    np.testing.assert_array_equal(plain, big)


def test_rows_are_copied_into_a_buffer_with_room_or_a_new_array(stored) -> None:
    arrays, folder, store = stored
    snap = store.load(folder, mapped=True)
    roomy = np.full((50_000, 64), 99, dtype=np.int32)
    out = rows_into(roomy, snap.arrays["covisitation/nbr"])
    assert out is roomy
    np.testing.assert_array_equal(out[:40_000], arrays["covisitation/nbr"])
    assert (out[40_000:] == 99).all()  # the rest is the caller's to reset
    small = np.zeros((10, 8), dtype=np.float64)
    out = rows_into(small, snap.arrays["mf/user_factors"])
    assert out is not small and out.shape == (3_001, 8) and out.dtype == np.float64
    np.testing.assert_array_equal(out, arrays["mf/user_factors"])
    copied = np.empty_like(arrays["covisitation/nbw"])
    copy_rows(copied, snap.arrays["covisitation/nbw"])
    assert copied.tobytes() == arrays["covisitation/nbw"].tobytes()
