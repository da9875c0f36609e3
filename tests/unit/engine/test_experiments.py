"""A/B assignment and statistics with known answers."""

from __future__ import annotations

import math

import pytest

from freshrec.engine.experiments import Arm, Experiment, two_proportion_p, wilson


def test_wilson_interval_known_values() -> None:
    # Newcombe (1998), table I: 81/263 -> 0.2553 .. 0.3662
    lo, hi = wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)
    assert wilson(0, 0) == (0.0, 1.0)


def test_two_proportion_test() -> None:
    p = two_proportion_p(120, 1000, 80, 1000)
    z = (0.12 - 0.08) / math.sqrt(0.1 * 0.9 * (2 / 1000))
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert two_proportion_p(0, 0, 1, 2) is None


def test_assignment_is_stable_proportional_and_independent_per_experiment() -> None:
    a = Experiment.create("a", [Arm("x", "ensemble", 20), Arm("y", "popular", 30)])
    b = Experiment.create("b", [Arm("x", "ensemble", 50), Arm("y", "popular", 50)])
    users = [f"user-{n}" for n in range(20_000)]
    arms_a = [a.arm_of(u) for u in users]
    share = {
        name: sum(1 for x in arms_a if x is not None and x.name == name) / len(users)
        for name in ("x", "y")
    }
    assert share["x"] == pytest.approx(0.20, abs=0.015)
    assert share["y"] == pytest.approx(0.30, abs=0.015)
    assert sum(x is None for x in arms_a) / len(users) == pytest.approx(0.5, abs=0.015)
    assert [a.arm_of(u) for u in users[:100]] == arms_a[:100]  # stable
    in_x = [u for u, x in zip(users, arms_a, strict=True) if x is not None and x.name == "x"]
    b_share = sum(b.arm_of(u).name == "x" for u in in_x) / len(in_x)  # type: ignore[union-attr]
    assert b_share == pytest.approx(0.5, abs=0.04)  # b splits a's arm x evenly: independent
