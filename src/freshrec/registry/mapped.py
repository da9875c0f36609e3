"""A snapshot's arrays read in place: its ``arrays.npz`` memory-mapped, never written.

A gate tests two frozen versions (``freshrec.engine.lifecycle``) on a few hundred events. Read
into memory, each would be a full copy of the models -- at a million shoppers MF's user factors
and co-visitation's tables, about 480 MB a version -- when a test touches a few rows of each.
Mapped, a version costs only the pages a test reads, and ``release`` gives those back after it
(``MADV_DONTNEED``: the process stops holding them; the kernel keeps them in its page cache
while memory allows, so the next test reads them from memory, not disk). A version put back,
and the snapshot a start restores, are copied out of the mapping a chunk at a time
(``copy_rows``, ``rows_into``, ``copied``), each chunk's pages released once copied, so that
neither ever holds the snapshot and the models at once.

The ``.npz`` is an uncompressed zip (``ZIP_STORED``) of ``.npy`` members, so each member's
bytes lie in the file as they are: its array is the mapping at that offset. A large array
stored as its other entries (``freshrec.registry.store.pack_sparse``) stays so: a
``SparseArray`` whose rows are made dense one request at a time (``rows``).

The mapping is copy-on-write (``ACCESS_COPY``) only so that its arrays are writable, which
numba needs to take them as it takes the live ones; nothing writes to them (a page written
would be private, and ``release`` would drop it).
"""

from __future__ import annotations

import mmap
import struct
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length
_CHUNK_BYTES = 16 << 20  # read at a time by ``all_finite`` and ``copy_rows`` (then released)
_MAPS: dict[int, weakref.ref[mmap.mmap]] = {}  # the mappings ``release_pages`` may drop, by id


@dataclass(slots=True, frozen=True)
class SparseArray:
    """An array stored as the flat positions (ascending) and values of its entries other
    than ``fill`` -- as ``pack_sparse`` writes it, here read in place."""

    shape: tuple[int, ...]
    fill: np.generic
    index: np.ndarray
    values: np.ndarray

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """The dense rows ``rows`` (in that order, repeats allowed), bit for bit as stored."""
        rows = np.asarray(rows, dtype=np.int64)
        width = int(np.prod(self.shape[1:], dtype=np.int64))  # 1 for a 1-d array
        out = np.full((rows.shape[0], width), self.fill, dtype=self.values.dtype)
        starts = rows * width
        lo = np.searchsorted(self.index, starts)
        hi = np.searchsorted(self.index, starts + width)
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            return out.reshape(rows.shape[0], *self.shape[1:])
        first = np.cumsum(counts) - counts  # where each row's entries start in the gathered run
        at = np.arange(total) - np.repeat(first - lo, counts)  # positions in index/values
        line = np.repeat(np.arange(rows.shape[0]), counts)
        out[line, self.index[at] - np.repeat(starts, counts)] = self.values[at]
        return out.reshape(rows.shape[0], *self.shape[1:])

    def dense(self) -> np.ndarray:
        """The whole array, in memory."""
        out = np.empty(self.shape, dtype=self.values.dtype)
        copy_rows(out, self)
        return out


class MappedArrays:
    """The arrays of one ``.npz`` file, each a view of one shared mapping of it."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:  # copy-on-write, never written: see the module's docstring
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        key = id(self._map)
        _MAPS[key] = weakref.ref(self._map, lambda _, key=key: _MAPS.pop(key, None))
        self.arrays: dict[str, np.ndarray] = {}
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ValueError(f"{path.name}: member {info.filename} is compressed")
                name = info.filename.removesuffix(".npy")
                self.arrays[name] = self._member(info)

    def _member(self, info: zipfile.ZipInfo) -> np.ndarray:
        signature, name_len, extra_len = _LOCAL_HEADER.unpack_from(self._map, info.header_offset)
        if signature != b"PK\x03\x04":
            raise ValueError(f"member {info.filename}: no local header at its offset")
        start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        view = memoryview(self._map)[start : start + info.file_size]
        reader = _Reader(view)
        version = np.lib.format.read_magic(reader)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(reader)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(reader)
        if dtype.hasobject:
            raise ValueError(f"member {info.filename}: object arrays are never stored")
        count = int(np.prod(shape, dtype=np.int64))
        flat = np.frombuffer(self._map, dtype=dtype, count=count, offset=start + reader.at)
        return flat.reshape(shape, order="F" if fortran else "C")

    def release(self) -> None:
        """Stop holding the pages read so far (they stay in the kernel's page cache)."""
        self._map.madvise(mmap.MADV_DONTNEED)

    def all_finite(self, array: np.ndarray | SparseArray) -> bool:
        """Whether every entry of a mapped float array is finite, read a chunk at a time and
        released after each (the check never holds the whole array)."""
        flat = (array.values if isinstance(array, SparseArray) else array).reshape(-1)
        if flat.dtype.kind != "f":
            return True
        step = max(1, _CHUNK_BYTES // flat.itemsize)
        for at in range(0, flat.shape[0], step):
            part = flat[at : at + step]
            finite = bool(np.isfinite(part).all())
            release_pages(part)
            if not finite:
                return False
        return True


def release_pages(array: np.ndarray) -> None:
    """Stop holding the whole pages ``array`` spans, if it lies in a ``MappedArrays``
    mapping (they stay in the page cache); nothing for any other array."""
    owner: Any = array
    while isinstance(owner, np.ndarray | memoryview):  # numpy keeps the buffer's memoryview
        owner = owner.base if isinstance(owner, np.ndarray) else owner.obj
    known = _MAPS.get(id(owner))
    if known is None or known() is not owner or not array.flags.c_contiguous:
        return
    start = array.ctypes.data - np.frombuffer(owner, np.uint8, count=1).ctypes.data
    first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
    end = (start + array.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > first:
        owner.madvise(mmap.MADV_DONTNEED, first, end - first)


def copy_rows(out: np.ndarray, source: np.ndarray | SparseArray) -> None:
    """``out[:n] = source`` (n rows), a chunk at a time, the pages of a mapped ``source``
    released after each: copying a version's arrays out of its mapping never holds them twice."""
    n = source.shape[0]
    width = int(np.prod(source.shape[1:], dtype=np.int64))
    step = max(1, _CHUNK_BYTES // max(1, width * source.dtype.itemsize))
    for at in range(0, n, step):
        end = min(n, at + step)
        if isinstance(source, SparseArray):
            out[at:end] = source.rows(np.arange(at, end))
            release_pages(source.index)
            release_pages(source.values)
        else:
            out[at:end] = source[at:end]
            release_pages(source[at:end])


class _Reader:
    """A read-only file over a memoryview: what numpy's header readers need."""

    def __init__(self, view: memoryview) -> None:
        self.view, self.at = view, 0

    def read(self, n: int) -> bytes:
        out = bytes(self.view[self.at : self.at + n])
        self.at += len(out)
        return out


def gather_sparse(stored: dict[str, np.ndarray], sparse: str) -> dict[str, np.ndarray]:
    """``stored`` with each array ``pack_sparse`` split in four (``<name><sparse>index`` ...)
    joined again as a ``SparseArray`` (still in place), the others as they are."""
    out: dict[str, np.ndarray] = {k: v for k, v in stored.items() if sparse not in k}
    for key in stored:
        if key.endswith(sparse + "index"):
            name = key.removesuffix(sparse + "index")
            fill = stored[name + sparse + "fill"]
            shape = tuple(int(n) for n in stored[name + sparse + "shape"])
            values = stored[name + sparse + "values"]
            out[name] = SparseArray(shape, fill[0], stored[key], values)  # type: ignore[assignment]
    return out


def rows_into(buffer: np.ndarray, source: np.ndarray | SparseArray) -> np.ndarray:
    """``source`` copied (``copy_rows``, cast to ``buffer``'s dtype) into the first rows of
    ``buffer`` when it has room for them (same row shape: a live model's array, reused, so
    that putting a version back never holds two copies of it), else into a new array of just
    its rows. The rows after them keep what they held: resetting them is the caller's."""
    n = source.shape[0]
    fits = (
        buffer.shape[0] >= n
        and buffer.shape[1:] == tuple(source.shape[1:])
        and buffer.flags.c_contiguous
        and buffer.flags.writeable
    )
    out = buffer if fits else np.empty(source.shape, dtype=buffer.dtype)
    copy_rows(out, source)
    return out


def as_held(array: np.ndarray, dtype: type) -> np.ndarray:
    """``array`` as compiled kernels take it (``dtype``, C order, aligned, writable), with no
    copy when it already is (a ``MappedArrays`` member); a copy otherwise -- a read-only or
    unaligned array would be another type to numba, compiled again on first use."""
    return np.require(array, dtype=dtype, requirements=["C", "A", "W"])


def copied(array: np.ndarray | SparseArray, dtype: Any = None) -> np.ndarray:
    """A new in-memory copy of ``array`` (as ``dtype``), made by ``copy_rows``: a mapped
    array's pages are released as they are copied."""
    out = np.empty(array.shape, dtype=array.dtype if dtype is None else dtype)
    if out.ndim == 0:
        out[()] = array if isinstance(array, np.ndarray) else array.dense()
    else:
        copy_rows(out, array)
    return out


def loadable(part: object, arrays: dict[str, Any]) -> dict[str, Any]:
    """``arrays`` as ``part.load_state_dict`` takes them: as they are for a model that reads
    them in place (``reads_in_place``), else ``copied`` into memory, so that it keeps nothing
    of a mapping (whose pages are released under it)."""
    if getattr(part, "reads_in_place", False):
        return arrays
    return {k: copied(v) for k, v in arrays.items()}
