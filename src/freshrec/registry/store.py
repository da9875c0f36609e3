"""Snapshots on disk: arrays in ``.npz`` (no pickles), ids in msgpack, metadata in JSON.

A snapshot is written into a temporary folder, every file fsync'd, its checksums recorded in
``meta.json`` (written last), and only then renamed into place, so a crash mid-write never leaves a
half-written snapshot that looks complete. On load, a snapshot whose files do not match their
checksums is skipped with a log line and the next older one is tried.

A large array that is mostly one fill value (0, or -1 for signed integers) is stored as its other
entries: flat positions and values (``<name>#sparse-index``, ``-values``, ``-shape``, ``-fill``),
and loaded back dense. Co-visitation's neighbour tables are the case: a fixed row per item, 12 %
filled after a million events over 100k items, 205 of a snapshot's 307 MB when written whole.

>>> packed = pack_sparse({"t": np.where(np.arange(4_000_000) % 10 == 0, 5, -1)})
>>> sorted(packed), packed["t#sparse-index"].shape
(['t#sparse-fill', 't#sparse-index', 't#sparse-shape', 't#sparse-values'], (400000,))
>>> bool((unpack_sparse(packed)["t"] == np.where(np.arange(4_000_000) % 10 == 0, 5, -1)).all())
True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from freshrec.registry.mapped import MappedArrays, gather_sparse
from freshrec.registry.versions import next_folder, version_folder, version_name

log = logging.getLogger(__name__)

_ARRAYS, _DOCS, _META = "arrays.npz", "documents.msgpack", "meta.json"
_SPARSE = "#sparse-"
SPARSE_MIN_BYTES = 8 << 20  # smaller arrays are always stored whole
SPARSE_MAX_SHARE = 0.4  # ... and so are arrays with more entries than this off the fill value
_BLOCK = 1 << 22  # elements per block of the sparse encoding's passes (bounded scratch)


def _flat(array: np.ndarray) -> np.ndarray:
    """``array`` flat, floats as their bit patterns (-0.0 kept as itself, not filled as 0.0)."""
    flat = array.reshape(-1)
    return flat.view(f"u{array.dtype.itemsize}") if array.dtype.kind == "f" else flat


def _sparse_fill(array: np.ndarray) -> tuple[int, int] | None:
    """``(fill, count of other entries)`` of a large, mostly-filled ``array``; else None.
    Counted block by block: no scratch as large as the array."""
    if array.nbytes < SPARSE_MIN_BYTES or array.dtype.kind not in "iuf":
        return None
    flat = _flat(array)
    for fill in (0, -1) if array.dtype.kind == "i" else (0,):
        count = sum(
            int(np.count_nonzero(flat[at : at + _BLOCK] != fill))
            for at in range(0, flat.shape[0], _BLOCK)
        )
        if count <= SPARSE_MAX_SHARE * flat.shape[0]:
            return fill, count
    return None


def _sparse_blocks(array: np.ndarray, fill: int, index: np.dtype | None):
    """Block by block, the flat positions (as ``index``) of ``array``'s other entries or, with
    ``index`` None, the entries themselves."""
    flat, raw = _flat(array), array.reshape(-1)
    for at in range(0, flat.shape[0], _BLOCK):
        keep = np.flatnonzero(flat[at : at + _BLOCK] != fill)
        yield raw[at : at + _BLOCK][keep] if index is None else (keep + at).astype(index)


def _members(arrays: dict[str, np.ndarray]):
    """``(name, member)`` of everything stored for ``arrays``: an array, or for the two long
    members of a sparse one ``(dtype, count, blocks)``, written or joined block by block."""
    for name, array in arrays.items():
        found = _sparse_fill(array)
        if found is None:
            yield name, array
            continue
        fill, count = found
        index = np.dtype(np.int64 if array.size >= 2**31 else np.int32)
        yield name + _SPARSE + "index", (index, count, _sparse_blocks(array, fill, index))
        yield name + _SPARSE + "values", (array.dtype, count, _sparse_blocks(array, fill, None))
        yield name + _SPARSE + "shape", np.asarray(array.shape, dtype=np.int64)
        yield name + _SPARSE + "fill", np.asarray([fill], dtype=array.dtype)


def pack_sparse(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` as stored: mostly-filled large ones as their other entries."""
    out: dict[str, np.ndarray] = {}
    for name, member in _members(arrays):
        if isinstance(member, tuple):
            dtype, _, blocks = member
            member = np.concatenate([np.zeros(0, dtype), *blocks])
        out[name] = member
    return out


def _write_npz(f: Any, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` of ``pack_sparse(arrays)``, with the sparse members streamed block by block
    (the snapshot never holds a packed copy of a large array)."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, member in _members(arrays):
            info = zipfile.ZipInfo(name + ".npy", time.localtime()[:6])
            info.extra = _alignment(f.tell(), len(info.filename.encode()))
            with zf.open(info, mode="w", force_zip64=True) as out:
                if not isinstance(member, tuple):
                    np.lib.format.write_array(out, np.asanyarray(member), allow_pickle=False)
                    continue
                dtype, count, blocks = member
                header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
                np.lib.format.write_array_header_1_0(out, header | {"shape": (count,)})
                for block in blocks:
                    out.write(np.ascontiguousarray(block, dtype=dtype).tobytes())


def _alignment(offset: int, name_length: int) -> bytes:
    """The extra field that puts a member written at ``offset`` on a multiple of 64 bytes, so
    its array is aligned where the file is mapped (``freshrec.registry.mapped``): the local
    header (30 bytes), the name, this field (the alignment field zipalign writes, id 0xD935),
    then the ZIP64 field (20 bytes) zipfile appends; the .npy header pads itself to 64."""
    pad = -(offset + 30 + name_length + 6 + 20) % 64
    return struct.pack("<HHH", 0xD935, 2 + pad, 64) + bytes(pad)


def unpack_sparse(stored: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays ``pack_sparse`` stored, dense again."""
    out = {k: v for k, v in stored.items() if _SPARSE not in k}
    for key in stored:
        if key.endswith(_SPARSE + "index"):
            name = key.removesuffix(_SPARSE + "index")
            fill = stored[name + _SPARSE + "fill"]
            shape = tuple(int(n) for n in stored[name + _SPARSE + "shape"])
            dense = np.full(shape, fill[0], dtype=fill.dtype)
            dense.reshape(-1)[stored[key]] = stored[name + _SPARSE + "values"]
            out[name] = dense
    return out


@dataclass(slots=True)
class Snapshot:
    """State as of log offset ``offset`` (every event before it is reflected)."""

    offset: int
    arrays: dict[str, np.ndarray]
    documents: dict[str, Any]
    meta: dict[str, Any]
    mapping: MappedArrays | None = None  # arrays read in place (``load(mapped=True)``)

    def release(self) -> None:
        """Stop holding the pages of mapped arrays read so far (nothing if read into memory)."""
        if self.mapping is not None:
            self.mapping.release()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _key(name: str) -> tuple[int, int] | None:
    """``(offset, n)`` of a snapshot folder named ``<offset>`` or ``<offset>-<n>``, else None."""
    offset, _, n = name.partition("-")
    if offset.isdigit() and (n.isdigit() or not n):
        return int(offset), int(n or 0)
    return None


class SnapshotStore:
    """Snapshots under ``root``, one folder per version named by its log offset.

    A folder is never overwritten: a second snapshot at the same offset (parameters put back
    without new events, see ``freshrec.engine.lifecycle``) goes to ``<offset>-1``, ``-2``...;
    the newest is the one with the highest ``(offset, n)``.
    """

    def __init__(self, root: Path, keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = keep
        self.pinned: set[str] = set()  # folders never pruned (versions a rollback may need)
        # why a folder must not be restored from (e.g. its version was rolled back), or None
        self.unwanted: Callable[[str], str | None] = lambda name: None
        # a folder name that must not be used again (its version is in the book), or not
        self.taken: Callable[[str], bool] = lambda name: False
        # told of a folder found damaged when restoring (the lifecycle marks its version)
        self.on_damaged: Callable[[str, str], object] = lambda name, error: None
        self.root.mkdir(parents=True, exist_ok=True)

    def versions(self) -> list[Path]:
        """Snapshot folders, newest first."""
        return sorted(
            (p for p in self.root.iterdir() if p.is_dir() and _key(p.name) is not None),
            key=lambda p: _key(p.name),  # type: ignore[arg-type, return-value]
            reverse=True,
        )

    def save(
        self,
        offset: int,
        arrays: dict[str, np.ndarray],
        documents: dict[str, Any],
        meta: dict[str, Any],
    ) -> Path:
        """Write a snapshot and put it in place (see ``write`` and ``finish``)."""
        tmp = self.temporary(offset)
        try:
            self.write(tmp, offset, arrays, documents, meta)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.finish(tmp, offset)

    def temporary(self, offset: int) -> Path:
        """A new, empty temporary folder for a snapshot at ``offset`` (named after this process,
        so ``prune`` leaves it alone while the process lives)."""
        tmp = self.root / f".tmp-{offset}-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir()
        return tmp

    def write(
        self,
        tmp: Path,
        offset: int,
        arrays: dict[str, np.ndarray],
        documents: dict[str, Any],
        meta: dict[str, Any],
    ) -> None:
        """Every file of a snapshot into ``tmp``, fsync'd, the checksums recorded last. Only
        reads ``arrays`` (a forked child may run it: ``freshrec.registry.background``)."""
        with (tmp / _ARRAYS).open("wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        with (tmp / _DOCS).open("wb") as f:
            f.write(msgspec.msgpack.encode(documents))
            f.flush()
            os.fsync(f.fileno())
        full_meta = {
            **meta,
            "offset": offset,
            "created_at": time.time(),
            "sha256": {name: _digest(tmp / name) for name in (_ARRAYS, _DOCS)},
        }
        with (tmp / _META).open("w") as f:
            json.dump(full_meta, f)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)

    def finish(self, tmp: Path, offset: int) -> Path:
        """Rename a written ``tmp`` into place under a new version's name, then prune."""
        names = [p.name for p in self.root.iterdir()]
        final = self.root / next_folder(offset, names, lambda f: f in names or self.taken(f))
        try:
            tmp.rename(final)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.prune()
        return final

    def prune(self) -> None:
        """Remove old snapshots beyond ``keep`` (never a pinned one) and stale temporaries."""
        for old in self.versions()[self.keep :]:
            if old.name not in self.pinned:
                shutil.rmtree(old, ignore_errors=True)
        for tmp in self.root.glob(".tmp-*"):
            if f"-{os.getpid()}-" not in tmp.name:
                shutil.rmtree(tmp, ignore_errors=True)

    def _read(self, folder: Path, mapped: bool = False, documents: bool = True) -> Snapshot:
        meta = json.loads((folder / _META).read_text())
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), dict):
            raise ValueError(f"{_META} is not a snapshot's metadata")
        # meta.json has no checksum of its own: its offset must be the folder's
        named = _key(folder.name)
        if named is None or meta.get("offset") != named[0]:
            found = meta.get("offset")
            raise ValueError(f"{_META} says offset {found!r}, its folder {folder.name}")
        for name, expected in meta["sha256"].items():
            if _digest(folder / name) != expected:
                raise ValueError(f"checksum mismatch in {name}")
        mapping = None
        if mapped:
            mapping = MappedArrays(folder / _ARRAYS)
            arrays = gather_sparse(mapping.arrays, _SPARSE)
        else:
            with np.load(folder / _ARRAYS, allow_pickle=False) as data:
                arrays = unpack_sparse({key: data[key] for key in data.files})
        docs = msgspec.msgpack.decode((folder / _DOCS).read_bytes()) if documents else {}
        return Snapshot(int(meta["offset"]), arrays, docs, meta, mapping)

    def load(self, folder: Path, mapped: bool = False, documents: bool = True) -> Snapshot:
        """The snapshot in ``folder``, checksums verified (``OSError``/``ValueError`` if damaged
        or missing). ``mapped``: its arrays read in place (``MappedArrays``), the large sparse
        ones as ``SparseArray``; ``documents`` off: the state's ids are not read."""
        try:
            return self._read(folder, mapped, documents)
        except (KeyError, msgspec.DecodeError) as exc:
            raise ValueError(f"damaged snapshot {folder}: {exc}") from exc

    def read_meta(self, folder: Path) -> dict[str, Any] | None:
        """A snapshot's metadata without reading its arrays; None if unreadable."""
        try:
            meta = json.loads((folder / _META).read_text())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    # -- by version name (``freshrec.engine.lifecycle``; the scale-out store has the same) ------
    def has(self, version: str) -> bool:
        """Whether ``version`` (``v<offset>[-n]``) has a snapshot here."""
        name = version_folder(version)
        return name is not None and (self.root / name).is_dir()

    def load_version(self, version: str, mapped: bool = False) -> Snapshot:
        """``version``'s parameters, checksums verified (see ``load``), without the state's
        documents: a version put back or gated ranks with the live state."""
        return self.load(self.root / (version_folder(version) or version), mapped, False)

    def listing(self) -> list[tuple[str, dict[str, Any] | None]]:
        """Every version here with its metadata (None if unreadable), newest first."""
        return [(version_name(f.name), self.read_meta(f)) for f in self.versions()]

    def names(self) -> list[str]:
        """Every version here, newest first (``listing`` without reading any metadata)."""
        return [version_name(f.name) for f in self.versions()]

    def load_latest(self, mapped: bool = False) -> Snapshot | None:
        """The newest intact snapshot (``mapped``: see ``load``), or None when there is
        none."""
        for folder in self.versions():
            why = self.unwanted(folder.name)
            if why is not None:
                log.warning("not restoring from snapshot %s: %s", folder, why)
                continue
            try:
                return self._read(folder, mapped)
            except (OSError, ValueError, KeyError, msgspec.DecodeError) as exc:
                log.warning("skipping damaged snapshot %s: %s", folder, exc)
                self.on_damaged(folder.name, str(exc))
        return None
