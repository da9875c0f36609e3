"""Per-category novelty: which categories are tracked, what each gives its detector."""

from __future__ import annotations

import numpy as np

from freshrec.drift.categories import CategoryNewItems


def test_the_busiest_categories_are_tracked_and_fed_in_log_order() -> None:
    rng = np.random.default_rng(0)
    category = rng.choice([1, 2, 3, 4], size=4000, p=[0.5, 0.3, 0.15, 0.05])
    new = rng.random(4000) < 0.1
    fed: dict[str, list[tuple[float, int]]] = {}

    def feed(signal: str, values: np.ndarray, at: np.ndarray) -> None:
        fed.setdefault(signal, []).extend(zip(values.tolist(), at.tolist(), strict=True))

    novelty = CategoryNewItems(tracked=2, half_every=1000)
    for start in range(0, 4000, 700):  # micro-batches that do not line up with the half-lives
        part = slice(start, start + 700)
        counted = np.ones(category[part].shape[0], bool)
        novelty.update(category[part], counted, new[part], feed, start)
    assert set(fed) == {"new_items:category=1", "new_items:category=2"}
    values, at = zip(*fed["new_items:category=1"], strict=True)
    assert list(at) == sorted(at) and all(category[a] == 1 for a in at)
    # every event of the category from where it became tracked (its 1000th counted event on),
    # with its new-item flag: the same whatever the micro-batches were
    ones = np.flatnonzero(category == 1)
    assert list(at) == ones[ones >= 1000].tolist()
    assert list(values) == new[list(at)].astype(float).tolist()


def test_uncounted_and_uncategorised_events_are_ignored() -> None:
    novelty = CategoryNewItems(tracked=1, half_every=2)
    calls = []
    novelty.update(
        np.array([-1, -1, 5]), np.array([True, True, False]), np.ones(3, bool),
        lambda *a: calls.append(a), 0,
    )  # fmt: skip
    assert calls == [] and novelty._counts.sum() == 0
