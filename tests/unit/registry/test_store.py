"""Snapshot files: the checksums recorded while writing are those of the files on disk."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from freshrec.registry.store import SnapshotStore


def test_checksums_recorded_while_writing_match_the_files(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    arrays = {
        "mf/item_factors": np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32),
        "state/flags": np.array([1, 0, 1], dtype=np.int8),
        "empty": np.zeros((0, 4)),
    }
    folder = store.save(7, arrays, {"users": ["a", "b"]}, {"note": "x"})
    meta = json.loads((folder / "meta.json").read_text())
    for name, digest in meta["sha256"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    snap = store.load(folder)
    assert snap.offset == 7 and snap.documents == {"users": ["a", "b"]}
    for key, value in arrays.items():
        np.testing.assert_array_equal(snap.arrays[key], value)
        assert snap.arrays[key].dtype == value.dtype


def test_a_flipped_byte_is_caught(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    folder = store.save(3, {"a": np.arange(100)}, {}, {})
    data = bytearray((folder / "arrays.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "arrays.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        store.load(folder)
    assert store.load_latest() is None


def test_mostly_filled_large_arrays_are_stored_sparse_and_load_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    nbr = np.full((40_000, 64), -1, dtype=np.int32)  # 10 MB, 12 % set (co-visitation's rows)
    set_ = rng.random(nbr.shape) < 0.12
    nbr[set_] = rng.integers(0, 40_000, int(set_.sum()))
    nbw = np.where(set_, rng.random(nbr.shape), 0.0).astype(np.float32)
    nbw[0, 0] = -0.0  # kept bit for bit
    dense = rng.normal(size=(40_000, 64)).astype(np.float32)  # stored whole
    arrays = {"covisitation/nbr": nbr, "covisitation/nbw": nbw, "mf/item_factors": dense}
    store = SnapshotStore(tmp_path)
    folder = store.save(9, arrays, {}, {})
    with np.load(folder / "arrays.npz") as stored:
        names = set(stored.files)
    assert "mf/item_factors" in names and "covisitation/nbr" not in names
    assert (folder / "arrays.npz").stat().st_size < 0.6 * sum(a.nbytes for a in arrays.values())
    snap = store.load(folder)
    for key, value in arrays.items():
        assert snap.arrays[key].dtype == value.dtype and snap.arrays[key].shape == value.shape
        assert snap.arrays[key].tobytes() == value.tobytes(), key


def test_a_new_snapshot_at_an_offset_is_named_after_every_one_there_and_kept(
    tmp_path: Path,
) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    arrays = {"x": np.arange(3)}
    names = [store.save(9, arrays, {}, {}).name for _ in range(3)]
    assert names == ["000000000000009", "000000000000009-1", "000000000000009-2"]
    assert [p.name for p in store.versions()] == names[:0:-1]  # the oldest pruned
    # "9" is free again, but a name after "9-2" keeps the newest snapshot the newest
    newest = store.save(9, arrays, {}, {}).name
    assert newest == "000000000000009-3"
    assert store.versions()[0].name == newest
    # a name the version book still knows is never given to other parameters
    store.taken = lambda folder: folder == "000000000000012"
    assert store.save(12, arrays, {}, {}).name == "000000000000012-1"
