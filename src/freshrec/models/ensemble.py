"""An ensemble whose member weights follow each member's recent live hit rate.

Candidates are the union of every member's own candidates; each member scores all of them and
its scores become a distribution over the candidates (non-negative scores divided by their sum;
logits, as MF's, through a softmax at ``temperature``: raw BPR logits are sharp enough to make
their softmax nearly one-hot), so the blend is a mixture: a member whose scores are flat
(it knows little here) spreads its weight thinly instead of crowding the top. Weights:

    w_m = prior_m * exp(eta * hit_rate_m) / sum_j prior_j * exp(eta * hit_rate_j)

where ``hit_rate_m`` is the member's prequential hit rate over a sliding window of live tests
(``freshrec.engine.quality.LiveQuality``). A member never drops below ``min_weight``, so one that
falls behind keeps a voice and can win back weight after a drift.

>>> from freshrec.models import DecayedPopularity
>>> ens = Ensemble([DecayedPopularity()], priors={"popularity": 1.0})
>>> ens.weights
{'popularity': 1.0}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numba
import numpy as np

from freshrec.models.base import Model, _heap_best
from freshrec.state import UserView
from freshrec.state.arrays import member_of, sorted_unique


@dataclass(slots=True)
class Ranked:
    """Items ranked for one user: ``parts[:, m]`` is member m's weighted share of each score."""

    items: np.ndarray
    scores: np.ndarray
    parts: np.ndarray
    members: list[str]


def _distribution(scores: np.ndarray, logits: bool, temperature: float = 1.0) -> np.ndarray | None:
    """A member's scores as a distribution over the candidates: the softmax of logits, else
    the non-negative scores divided by their sum (zero stays "no opinion"). Scores that are all
    equal rank nothing: they count as no opinion at all. None if a score is not finite. (What
    ``_blend`` does with each member's scores, one at a time.)"""
    scores = np.asarray(scores, dtype=np.float64)
    out = np.zeros(scores.shape[0])
    mass, finite = _shares(scores, logits, temperature, out)
    if not finite:
        return None
    return out / mass if mass > 0.0 else np.zeros(scores.shape[0])


@numba.njit(cache=True, nogil=True)
def _shares(scores, logits, temperature, out):  # pragma: no cover - compiled
    """A member's shares before normalising, written into ``out``: ``exp((s - max) / T)`` of
    logits, else the score clipped at 0; returns their sum (0: no opinion -- every score equal,
    or none above 0 -- and ``out`` is then not to be read) and whether every score is finite."""
    n = scores.shape[0]
    if n == 0:
        return 0.0, True
    hi = scores[0]
    lo = scores[0]
    for i in range(n):
        v = scores[i]
        if not np.isfinite(v):
            return 0.0, False
        hi = max(hi, v)
        lo = min(lo, v)
    if hi == lo:
        return 0.0, True
    mass = 0.0
    if logits:
        for i in range(n):
            out[i] = np.exp((scores[i] - hi) / temperature)
            mass += out[i]
    else:
        for i in range(n):
            out[i] = max(scores[i], 0.0)
            mass += out[i]
    return mass, True


@numba.njit(cache=True, nogil=True)
def _blend(scores, served, logits, weights, temperature, k):  # pragma: no cover - compiled
    """The blend of one request in one pass: ``scores[j]`` (member j's scores of the sorted
    candidates) made a distribution (``_shares`` over their sum) and weighted by
    ``weights[j]``, summed over the ``served`` members; the positions
    of the ``k`` best sums, best first (ties: the lower position, so the lower item), those
    sums and their parts. ``finite[j]`` is False for a served member with a non-finite score:
    it sits the request out."""
    m, n = scores.shape
    finite = np.ones(m, dtype=np.bool_)
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0), np.zeros((0, m)), finite
    parts = np.zeros((n, m))
    total = np.zeros(n)
    share = np.empty(n)
    for j in range(m):
        if not served[j]:
            continue
        mass, ok = _shares(scores[j], logits[j], temperature, share)
        if not ok:
            finite[j] = False
            continue
        if mass <= 0.0:  # no opinion
            continue
        scale = weights[j] / mass
        for i in range(n):
            part = share[i] * scale
            parts[i, j] = part
            total[i] += part
    order = _heap_best(np.arange(n), total, min(k, n))  # ties: the lower position
    return order, total[order], parts[order], finite


class Ensemble:
    """Weighted blend of member models with weights driven by live quality."""

    def __init__(
        self,
        members: Sequence[Model],
        priors: Mapping[str, float] | None = None,
        eta: float = 10.0,
        min_weight: float = 0.02,
        candidates_per_member: int = 100,
        temperature: float = 2.0,
    ) -> None:
        if not members:
            raise ValueError("members: an ensemble needs at least one model")
        if eta < 0 or not 0 <= min_weight < 1 or temperature <= 0:
            raise ValueError("eta must be >= 0, min_weight in [0, 1) and temperature > 0")
        self.members = list(members)
        self.priors = {m.name: float((priors or {}).get(m.name, 1.0)) for m in self.members}
        self.eta = eta
        self.min_weight = min_weight
        self.candidates_per_member = candidates_per_member
        self.temperature = temperature
        self.hit_rates: dict[str, float] = {m.name: 0.0 for m in self.members}
        self.weights: dict[str, float] = {}
        self.disabled: dict[str, str] = {}  # member -> why it is not served (e.g. diverged)
        self.errors: dict[str, int] = {}  # non-finite score vectors met while ranking
        self._layout_key: tuple[int, int] = (0, -1)
        self.update_weights(self.hit_rates)

    def _layout(self) -> tuple[list[str], np.ndarray, list[Model]]:
        """The members' names, which score in logits, and which propose candidates (a
        re-ranker's ``candidates`` is the base's, which raises): worked out again only when
        the members list changes."""
        key = (id(self.members), len(self.members))
        if key != self._layout_key:
            members = self.members
            self._names = [m.name for m in members]
            self._logits = np.asarray([m.scores_are_logits for m in members], dtype=np.bool_)
            self._proposers = [m for m in members if type(m).candidates is not Model.candidates]
            self._layout_key = key
        return self._names, self._logits, self._proposers

    def disable(self, name: str, reason: str) -> None:
        """Stop serving member ``name`` (its learning diverged); the others carry on."""
        self.disabled[name] = reason
        self.errors[name] = self.errors.get(name, 0) + 1

    def update_weights(self, hit_rates: Mapping[str, float]) -> dict[str, float]:
        """Recompute the weights from each member's recent hit rate; returns them."""
        self.hit_rates = {name: float(hit_rates.get(name, 0.0)) for name in self.priors}
        best = max(self.hit_rates.values())
        raw = {
            n: p * math.exp(self.eta * (self.hit_rates[n] - best)) for n, p in self.priors.items()
        }
        total = sum(raw.values()) or 1.0
        floor = self.min_weight if len(raw) > 1 else 0.0
        weights = {n: max(v / total, floor) for n, v in raw.items()}
        total = sum(weights.values())
        self.weights = {n: v / total for n, v in weights.items()}
        return self.weights

    def candidates(self, user: UserView, n: int) -> np.ndarray:
        """Every member's candidates, merged (sorted, read-only); computed once per ``n`` for a
        view: the ensemble and the re-ranker share them within a request or a live test."""
        key = f"ensemble-{id(self)}/candidates/{n}"  # a view may meet two ensembles
        out = user.memo.get(key)
        if out is not None:
            return out  # type: ignore[return-value]
        found = []
        want = max(n, self.candidates_per_member)
        for member in self._layout()[2]:
            if member.name in self.disabled:
                continue
            try:
                found.append(member.candidates(user, want))
            except NotImplementedError:
                continue
        # numpy's sort: numba's is 8x slower on these lists (runs of repeats, sorted stretches)
        merged = (
            sorted_unique(np.concatenate([f.astype(np.int32, copy=False) for f in found]))
            if found
            else np.zeros(0, dtype=np.int32)
        )
        merged.flags.writeable = False
        user.memo[key] = merged
        return merged

    def rank(self, user: UserView, k: int, exclude: np.ndarray | None = None) -> Ranked:
        """The top ``k`` items for ``user`` (``exclude`` left out) with each member's share."""
        names, logits, _ = self._layout()
        candidates = self.candidates(user, k + (0 if exclude is None else exclude.shape[0]))
        if exclude is not None and exclude.size and candidates.size:
            candidates = candidates[~member_of(candidates, exclude)]
        if candidates.size == 0:
            empty = np.zeros(0)
            return Ranked(candidates, empty, np.zeros((0, len(names))), names)
        m = len(names)
        scores = np.zeros((m, candidates.shape[0]))
        weights = np.zeros(m)
        served = np.zeros(m, dtype=np.bool_)
        disabled, shares = self.disabled, self.weights
        for j, member in enumerate(self.members):
            if disabled and member.name in disabled:
                continue
            scores[j] = member.score(user, candidates)
            weights[j] = shares[member.name]
            served[j] = True
        top, best, parts, finite = _blend(scores, served, logits, weights, self.temperature, k)
        if np.count_nonzero(finite) < m:  # a member's non-finite score: it sat this one out
            for j in np.flatnonzero(~finite).tolist():
                self.errors[names[j]] = self.errors.get(names[j], 0) + 1
        return Ranked(candidates[top], best, parts, names)
