"""What the online learners share (``OnlineMF``, ``ContextRanker``): a counter-based random
generator (splitmix64) whose state is part of the model, rows initialised from a hash of
``(seed, index)`` (what is learned never depends on when the arrays grew), and the checks of
their arguments.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
# Vectorisable reductions, but keep inf/NaN semantics: the kernel checks for them.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@numba.njit(cache=True, nogil=True)
def _mix(z):  # pragma: no cover - compiled; splitmix64 finaliser
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _below(rng, n):  # pragma: no cover - compiled; uniform integer in [0, n), n < 2**32
    rng[0] += _GOLDEN
    return np.int64(((_mix(rng[0]) >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


@numba.njit(cache=True, nogil=True)
def _init_rows(a, start, seed, salt, std):  # pragma: no cover - compiled
    """Rows ``start:`` uniform with standard deviation ``std``, a function of (seed, index)."""
    key = _mix(np.uint64(seed) * _GOLDEN + np.uint64(salt))
    k = a.shape[1]
    half = math.sqrt(3.0) * std
    for r in range(start, a.shape[0]):
        for f in range(k):
            z = _mix(key + np.uint64(r * k + f) * _GOLDEN)
            a[r, f] = ((z >> np.uint64(11)) * 2.0**-53 * 2.0 - 1.0) * half


def _number(
    name: str, value: object, *, integer: bool = False, zero: bool = False, most: float = math.inf
) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a number > 0 (>= 0 if ``zero``)."""
    kind = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kind):
        value_ok = False
    else:
        low = value >= 0 if zero else value > 0  # type: ignore[operator]
        value_ok = low and value <= most and math.isfinite(value)  # type: ignore[operator,arg-type]
    if not value_ok:
        what = f"{'an integer' if integer else 'a number'} {'>=' if zero else '>'} 0"
        what += f" and <= {most}" if most < math.inf else ""
        raise ValueError(f"{name} must be {what}, got {value!r}")


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
