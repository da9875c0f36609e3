"""Detectors on synthetic streams with a change at a known index."""

from __future__ import annotations

import numpy as np
import pytest

from freshrec.drift import Adwin, PageHinkley


def _alarms(detector, stream) -> list[int]:
    return [i for i, x in enumerate(stream) if detector.update(float(x))]


@pytest.mark.parametrize("scale", [0.01, 0.05, 0.2])
def test_page_hinkley_threshold_follows_the_signals_spread(scale: float) -> None:
    # the same shift of 3 standard deviations is found whatever the signal's scale ...
    rng = np.random.default_rng(1)
    stream = np.concatenate([rng.normal(1.0, scale, 500), rng.normal(1.0 - 3 * scale, scale, 200)])
    alarms = _alarms(PageHinkley(direction="down"), stream)
    assert alarms and 500 <= alarms[0] < 520
    # ... and a stationary stream of that scale raises no alarm
    assert _alarms(PageHinkley(direction="down"), rng.normal(1.0, scale, 50_000)) == []


def test_page_hinkley_direction() -> None:
    rng = np.random.default_rng(2)
    up = np.concatenate([rng.normal(0.0, 1.0, 300), rng.normal(4.0, 1.0, 100)])
    assert _alarms(PageHinkley(direction="down"), up) == []
    assert _alarms(PageHinkley(direction="up"), up)[0] >= 300


def test_adwin_on_a_bernoulli_hit_stream() -> None:
    rng = np.random.default_rng(3)
    hits = np.concatenate([rng.random(3000) < 0.5, rng.random(1500) < 0.2])
    det = Adwin(delta=0.001)
    alarms = _alarms(det, hits)
    assert alarms and 3000 <= alarms[0] < 3300
    assert _alarms(Adwin(delta=0.001), rng.random(50_000) < 0.5) == []


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Adwin(delta=0)
    with pytest.raises(ValueError):
        PageHinkley(direction="sideways")  # type: ignore[arg-type]


def test_adwin_counts_only_changes_in_its_direction() -> None:
    rng = np.random.default_rng(4)
    falling = np.concatenate([rng.random(3000) < 0.6, rng.random(1500) < 0.2])
    assert _alarms(Adwin(0.001, direction="up"), falling) == []
    assert _alarms(Adwin(0.001, direction="down"), falling)[0] >= 3000


def _rates(rng: np.random.Generator) -> tuple[np.ndarray, int]:  # a chunk-level signal
    return np.concatenate([rng.normal(1.0, 0.05, 500), rng.normal(0.9, 0.05, 300)]), 503


def _hits(rng: np.random.Generator) -> tuple[np.ndarray, int]:  # a 0/1 hit signal
    stream = np.concatenate([rng.random(2500) < 0.5, rng.random(1000) < 0.2]).astype(float)
    return stream, 2560


@pytest.mark.parametrize(
    ("make", "signal"),
    [(lambda: PageHinkley(direction="down"), _rates), (lambda: Adwin(0.001, "down"), _hits)],
    ids=["page_hinkley", "adwin"],
)
def test_a_detector_replayed_from_its_inputs_goes_on_as_the_original(make, signal) -> None:
    """What a snapshot keeps of a detector (its inputs since the last reset) rebuilds it: cut
    just after a change began, the copy alarms where the original does."""
    stream, cut = signal(np.random.default_rng(4))
    original, copy = make(), make()
    assert _alarms(original, stream[:cut]) == []
    copy.replay(original.inputs())
    assert copy.inputs().tolist() == original.inputs().tolist()
    later = stream[cut:]
    first = _alarms(original, later)
    assert first and first == _alarms(copy, later)


def test_a_page_hinkley_alarm_clears_what_a_snapshot_keeps() -> None:
    det = PageHinkley(direction="down")
    rng = np.random.default_rng(5)
    stream = np.concatenate([rng.normal(1.0, 0.05, 300), rng.normal(0.7, 0.05, 50)])
    alarms = _alarms(det, stream)
    assert alarms and det.inputs().shape[0] == len(stream) - alarms[-1] - 1
