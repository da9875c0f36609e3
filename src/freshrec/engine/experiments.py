"""A/B tests: users split between strategies by a stable hash, with a per-arm readout.

A user's bucket is ``blake2b(experiment_id + ":" + user_id)`` mod 10,000, so the same user
always lands in the same arm of an experiment (on every replica, after every restart), and two
experiments split users independently. Arms take consecutive ranges of buckets by their
``percent``; users in no arm (percentages summing below 100) get the default strategy and are
not counted. One experiment runs at a time.

The readout gives each arm's click-through rate (responses with a click / responses) and
conversion (responses with a purchase / responses) with 95 % Wilson score intervals, and each
arm against the first (the control): the difference and the two-sided p-value of a pooled
two-proportion z-test.

>>> exp = Experiment.create("e1", [Arm("a", "ensemble", 50), Arm("b", "popular", 50)])
>>> exp.arm_of("user-42") == exp.arm_of("user-42")
True
>>> lo, hi = wilson(30, 100)
>>> round(lo, 3), round(hi, 3)
(0.219, 0.396)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from freshrec.engine.recommender import STRATEGIES
from freshrec.errors import Conflict, NotFound, ValidationError

BUCKETS = 10_000
Z95 = 1.959963984540054
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Arm(msgspec.Struct, forbid_unknown_fields=True):
    """One arm: a name, the strategy it serves, and the percent of users it gets."""

    name: str
    strategy: str
    percent: float


class ExperimentSpec(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``POST /v1/experiments``."""

    id: str
    arms: list[Arm]


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (``(0, 1)`` with no trials)."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p(s1: int, n1: int, s2: int, n2: int) -> float | None:
    """Two-sided p-value that two proportions are equal (pooled z-test); None if undefined."""
    if n1 == 0 or n2 == 0:
        return None
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return None
    z = (s1 / n1 - s2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass
class ArmCounts:
    responses: int = 0
    clicked: int = 0  # responses with at least one click
    converted: int = 0  # responses with at least one purchase
    clicks: int = 0
    purchases: int = 0


@dataclass
class Experiment:
    id: str
    arms: list[Arm]
    created_at: float
    status: str = "running"
    stopped_at: float | None = None
    counts: dict[str, ArmCounts] = field(default_factory=dict)
    _bounds: list[float] = field(default_factory=list)
    # the deployment's counts when the store shares them (scale-out), else None
    shared: Callable[[], dict[str, int] | None] | None = None

    @classmethod
    def create(cls, exp_id: str, arms: list[Arm], created_at: float | None = None) -> Experiment:
        check(ExperimentSpec(exp_id, arms))
        exp = cls(exp_id, list(arms), time.time() if created_at is None else created_at)
        exp.counts = {a.name: ArmCounts() for a in arms}
        edge = 0.0
        for arm in arms:
            edge += arm.percent * BUCKETS / 100
            exp._bounds.append(edge)
        return exp

    def bucket(self, user_id: str) -> int:
        digest = hashlib.blake2b(f"{self.id}:{user_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % BUCKETS

    def arm_of(self, user_id: str) -> Arm | None:
        b = self.bucket(user_id)
        for arm, edge in zip(self.arms, self._bounds, strict=True):
            if b < edge:
                return arm
        return None

    def totals(self) -> dict[str, ArmCounts]:
        """Counts per arm: the whole deployment's when shared, else this process's."""
        shared = None if self.shared is None else self.shared()
        if shared is None:
            return self.counts
        names = [f.name for f in dataclasses.fields(ArmCounts)]
        return {
            a.name: ArmCounts(**{n: int(shared.get(f"{a.name}:{n}", 0)) for n in names})
            for a in self.arms
        }

    def readout(self) -> dict[str, Any]:
        control = self.arms[0].name
        counts = self.totals()
        c0 = counts[control]
        arms = []
        for arm in self.arms:
            c = counts[arm.name]
            ctr_lo, ctr_hi = wilson(c.clicked, c.responses)
            cv_lo, cv_hi = wilson(c.converted, c.responses)
            row: dict[str, Any] = {
                "name": arm.name,
                "strategy": arm.strategy,
                "percent": arm.percent,
                "responses": c.responses,
                "clicks": c.clicks,
                "purchases": c.purchases,
                "ctr": _rate(c.clicked, c.responses),
                "ctr_ci95": [ctr_lo, ctr_hi],
                "conversion": _rate(c.converted, c.responses),
                "conversion_ci95": [cv_lo, cv_hi],
            }
            if arm.name != control:
                row["vs_control"] = {
                    "ctr_difference": _rate(c.clicked, c.responses)
                    - _rate(c0.clicked, c0.responses),
                    "ctr_p_value": two_proportion_p(
                        c.clicked, c.responses, c0.clicked, c0.responses
                    ),
                    "conversion_difference": _rate(c.converted, c.responses)
                    - _rate(c0.converted, c0.responses),
                    "conversion_p_value": two_proportion_p(
                        c.converted, c.responses, c0.converted, c0.responses
                    ),
                }
            arms.append(row)
        return {
            "id": self.id,
            "status": self.status,
            "created_at": self.created_at,
            "stopped_at": self.stopped_at,
            "control": control,
            "arms": arms,
        }


def _rate(num: int, den: int) -> float:
    return num / den if den else 0.0


def check(spec: ExperimentSpec) -> None:
    """Raise ``ValidationError`` naming the field of an invalid experiment."""
    if not _ID.match(spec.id):
        raise ValidationError("id", "1-64 letters, digits, '_', '.' or '-'")
    if not 2 <= len(spec.arms) <= 10:
        raise ValidationError("arms", "an experiment needs 2 to 10 arms")
    names = set()
    total = 0.0
    for i, arm in enumerate(spec.arms):
        if not _ID.match(arm.name):
            raise ValidationError(f"arms[{i}].name", "1-64 letters, digits, '_', '.' or '-'")
        if arm.name in names:
            raise ValidationError(f"arms[{i}].name", f"duplicate arm {arm.name!r}")
        names.add(arm.name)
        if arm.strategy not in STRATEGIES:
            raise ValidationError(
                f"arms[{i}].strategy", f"unknown {arm.strategy!r} (known: {', '.join(STRATEGIES)})"
            )
        if not (math.isfinite(arm.percent) and 0 < arm.percent <= 100):
            raise ValidationError(f"arms[{i}].percent", "must be in (0, 100]")
        total += arm.percent
    if total > 100 + 1e-9:
        raise ValidationError("arms", f"percentages sum to {total:g}, over 100")


class Experiments:
    """The experiments of a shop: at most one running; definitions kept in the shop store."""

    def __init__(self, store=None) -> None:
        self.store = store
        self._lock = threading.Lock()
        self.by_id: dict[str, Experiment] = {}
        if store is not None:
            for key, doc in store.load("experiments"):
                self.apply(key, doc)
            store.subscribe("experiments", self.apply)

    def apply(self, exp_id: str, doc: dict[str, Any] | None) -> None:
        """Take in a stored definition (at start, or another replica's change); the counts of
        an experiment already known are kept."""
        if doc is None:
            return
        with self._lock:
            exp = self.by_id.get(exp_id)
            if exp is None:
                arms = [msgspec.convert(a, Arm) for a in doc["arms"]]
                exp = Experiment.create(doc["id"], arms, doc["created_at"])
                self._share(exp)
                self.by_id[exp.id] = exp
            exp.status, exp.stopped_at = doc["status"], doc.get("stopped_at")

    def _share(self, exp: Experiment) -> None:
        """Counts of persisted experiments go to the store too (shared between replicas in
        scale-out; the experiment from settings is counted per process)."""
        if self.store is not None and exp.id != SETTINGS_EXPERIMENT:
            exp.shared = functools.partial(self.store.totals, exp.id)

    def running(self) -> Experiment | None:
        for exp in self.by_id.values():
            if exp.status == "running":
                return exp
        return None

    def create(self, spec: ExperimentSpec, persist: bool = True) -> Experiment:
        check(spec)  # a malformed spec is a 422 naming the field, whatever else is running
        with self._lock:
            if spec.id in self.by_id:
                raise Conflict(f"id: experiment {spec.id!r} exists")
            current = self.running()
            if current is not None:
                raise Conflict(f"id: experiment {current.id!r} is running; stop it first")
            exp = Experiment.create(spec.id, spec.arms)
            self._share(exp)
            self.by_id[exp.id] = exp
            if persist:
                self._save(exp)
            return exp

    def get(self, exp_id: str) -> Experiment:
        exp = self.by_id.get(exp_id)
        if exp is None:
            raise NotFound(f"experiment_id: unknown experiment {exp_id!r}")
        return exp

    def stop(self, exp_id: str) -> Experiment:
        with self._lock:
            exp = self.get(exp_id)
            if exp.status == "running":
                exp.status, exp.stopped_at = "stopped", time.time()
                self._save(exp)
            return exp

    def _save(self, exp: Experiment) -> None:
        if self.store is None or exp.id == SETTINGS_EXPERIMENT:
            return
        doc = {
            "id": exp.id,
            "arms": [msgspec.to_builtins(a) for a in exp.arms],
            "created_at": exp.created_at,
            "status": exp.status,
            "stopped_at": exp.stopped_at,
        }
        self.store.put_many("experiments", [(exp.id, doc)])

    def record(self, exp_id: str, arm: str, kind: str, first: bool) -> None:
        """Count a served response (``kind="response"``), a click or a purchase for an arm;
        ``first`` says whether it is the response's first of that kind."""
        exp = self.by_id.get(exp_id)
        if exp is None or arm not in exp.counts:
            return
        with self._lock:
            c = exp.counts[arm]
            if kind == "response":
                c.responses += 1
                added = {"responses": 1}
            elif kind == "click":
                c.clicks += 1
                c.clicked += first
                added = {"clicks": 1, "clicked": int(first)}
            elif kind == "purchase":
                c.purchases += 1
                c.converted += first
                added = {"purchases": 1, "converted": int(first)}
            else:
                return
        if exp.shared is not None and self.store is not None:
            self.store.count(exp_id, arm, added)


SETTINGS_EXPERIMENT = "settings"
