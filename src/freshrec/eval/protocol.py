"""The prequential (test-then-learn) protocols and the loop that runs a model through one.

**User protocol.** Events in time order (stable). An event is *tested* when its user was seen
before and the (user, item) pair was not. For a tested event the model recommends its top-K
(K = the largest of ``ks``) excluding the items the user already interacted with; the rank of
the event's item in that list is recorded. Then -- tested or not -- the model learns the event.
The model never sees an event before it is tested on it.

**Session protocol** (``freshrec.eval.session``): see there.

A ``Plan`` fixes, once per data set, which events are tested and (user protocol) the sampled
negatives of the AUC, so every model faces exactly the same questions.

>>> from freshrec.events import LoggedEvent
>>> events = [LoggedEvent(0, u, i, float(t)) for t, (u, i) in
...           enumerate([("a", "x"), ("a", "y"), ("a", "x"), ("b", "y"), ("b", "x")])]
>>> user_plan(events, auc_negatives=0).tested.tolist()
[False, True, False, False, True]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from freshrec.eval.adapters import Recommender, Scorer
from freshrec.eval.metrics import sampled_auc
from freshrec.events import LoggedEvent
from freshrec.state import IdMap

Progress = Callable[[int], None]  # events done so far
_NOTHING: frozenset[str] = frozenset()


@dataclass(slots=True)
class Plan:
    """The events of a run in protocol order, which are tested, and the AUC negatives."""

    protocol: str  # "user" or "session"
    events: list[LoggedEvent]
    tested: np.ndarray  # bool per event
    exclude_seen: bool  # exclude the user's items from recommendations (user protocol)
    negatives: np.ndarray | None = None  # (tests, m) item indices into ``items``, -1 = unused
    items: list[str] = field(default_factory=list)

    @property
    def n_tested(self) -> int:
        return int(self.tested.sum())


@dataclass(slots=True)
class ModelRun:
    """One model's answers: per test the rank of the true item (-1 = miss) and its AUC."""

    name: str
    ranks: np.ndarray
    auc: np.ndarray | None
    seconds: float
    learn_seconds: float
    recommend_seconds: float


def _sample(rng: np.random.Generator, n_items: int, exclude: set[int], m: int) -> list[int]:
    """Up to ``m`` distinct item indices below ``n_items`` and not in ``exclude``."""
    available = n_items - len(exclude)
    if available <= 0:
        return []
    if available <= 2 * m:
        pool = np.setdiff1d(np.arange(n_items), np.fromiter(exclude, dtype=np.int64))
        return rng.permutation(pool)[:m].tolist()
    out: list[int] = []
    taken: set[int] = set()
    while len(out) < m:
        for j in rng.integers(0, n_items, size=2 * m).tolist():
            if j in exclude or j in taken:
                continue
            taken.add(j)
            out.append(j)
            if len(out) == m:
                break
    return out


def user_plan(events: list[LoggedEvent], auc_negatives: int = 100, seed: int = 0) -> Plan:
    """The user protocol over ``events`` (already in time order).

    For each tested event whose item was seen before, ``auc_negatives`` items are drawn
    uniformly, without replacement, from the items seen before the event that the user has not
    interacted with (fewer when fewer exist); the true item is never among them. A test of an
    item never seen before gets no negatives (and no AUC): nothing can rank it.
    """
    rng = np.random.default_rng(seed)
    items = IdMap()
    seen: dict[str, set[int]] = {}
    tested = np.zeros(len(events), dtype=bool)
    negatives: list[list[int]] = []
    for n, e in enumerate(events):
        hist = seen.get(e.user_id)
        i = items.get(e.item_id)
        if hist is not None and (i is None or i not in hist):
            tested[n] = True
            if auc_negatives:  # a new item cannot be ranked by anyone: no AUC test
                known = i is not None
                negatives.append(
                    _sample(rng, len(items), hist | {i}, auc_negatives) if known else []
                )
        i = items.add(e.item_id)
        seen.setdefault(e.user_id, set()).add(i)
    neg = None
    if auc_negatives:
        neg = np.full((len(negatives), auc_negatives), -1, dtype=np.int32)
        for row, values in enumerate(negatives):
            neg[row, : len(values)] = values
    return Plan("user", events, tested, True, neg, items.keys())


def run_model(
    plan: Plan, model: Recommender, k: int, progress: Progress | None = None, every: int = 1000
) -> ModelRun:
    """Test-then-learn ``model`` through ``plan``; ``k`` is the length of each list asked for."""
    ranks = np.full(plan.n_tested, -1, dtype=np.int64)
    want_auc = plan.negatives is not None and isinstance(model, Scorer)
    auc = np.full(plan.n_tested, np.nan) if want_auc else None
    seen: dict[str, set[str]] = {}
    learn_s = rec_s = 0.0
    t = 0
    start = time.perf_counter()
    for n, (event, is_test) in enumerate(zip(plan.events, plan.tested.tolist(), strict=True)):
        if is_test:
            t0 = time.perf_counter()
            exclude = seen.get(event.user_id, _NOTHING) if plan.exclude_seen else _NOTHING
            recs = model.recommend(event.user_id, k, exclude)  # type: ignore[arg-type]
            for r, item in enumerate(recs[:k]):
                if item == event.item_id:
                    ranks[t] = r
                    break
            if auc is not None:
                auc[t] = _auc(plan, t, model, event)  # type: ignore[arg-type]
            rec_s += time.perf_counter() - t0
            t += 1
        t0 = time.perf_counter()
        model.learn(event)
        learn_s += time.perf_counter() - t0
        if plan.exclude_seen:
            seen.setdefault(event.user_id, set()).add(event.item_id)
        if progress is not None and (n + 1) % every == 0:
            progress(n + 1)
    if progress is not None:
        progress(len(plan.events))
    return ModelRun(model.name, ranks, auc, time.perf_counter() - start, learn_s, rec_s)


def _auc(plan: Plan, t: int, model: Scorer, event: LoggedEvent) -> float:
    row = plan.negatives[t]  # type: ignore[index]
    row = row[row >= 0]
    if row.size == 0:
        return float("nan")
    keys = plan.items
    scores = np.asarray(model.score(event.user_id, [event.item_id, *(keys[j] for j in row)]))
    return float(sampled_auc(scores[:1], scores[None, 1:])[0])


def evaluate_models(
    plan: Plan,
    models: Iterable[Recommender],
    k: int,
    on_start: Callable[[str], Progress | None] | None = None,
) -> list[ModelRun]:
    """Run each model in turn (each its own pass, so each has its own runtime)."""
    runs = []
    for model in models:
        progress = on_start(model.name) if on_start else None
        try:
            runs.append(run_model(plan, model, k, progress))
        finally:
            close = getattr(model, "close", None)
            if close is not None:
                close()
    return runs


__all__ = ["ModelRun", "Plan", "evaluate_models", "run_model", "user_plan"]
