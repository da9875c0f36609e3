"""``FilterSet.mask`` (one compiled pass) against the catalogue's reads, one filter at a time."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from freshrec.engine.filters import Filters, FilterSet
from freshrec.engine.recommender import _first_passing
from freshrec.features.context import category_id
from freshrec.state import IdMap
from freshrec.state.catalogue import Catalogue, Item


def _reference(fs: FilterSet, items: np.ndarray) -> np.ndarray:
    """The filters written with the catalogue's public reads, one filter at a time."""
    f, cat, state = fs.filters, fs.catalogue, fs.state
    ok = cat.allowed(items) if f.available_only else np.ones(items.shape[0], bool)
    cats = cat.categories(items, state.item_category)
    if fs.category is not None:
        ok &= cats == fs.category
    ok &= ~np.isin(cats, fs.banned)
    prices = cat.prices(items, state.item_price)
    if f.min_price is not None:
        ok &= prices >= f.min_price
    if f.max_price is not None:
        ok &= prices <= f.max_price
    return ok


@pytest.mark.parametrize("seed", range(6))
def test_mask_equals_the_catalogue_lookups(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_state = 300
    ids = IdMap([f"i{i}" for i in range(n_state)])
    catalogue = Catalogue(ids)
    listed = rng.choice(n_state + 50, 200, replace=False)  # some never seen in events
    catalogue.upsert(
        [
            Item(
                f"i{i}",
                category=None if rng.random() < 0.2 else f"c{rng.integers(4)}",
                price=None if rng.random() < 0.2 else float(rng.integers(1, 100)),
                available=bool(rng.random() < 0.8),
            )
            for i in listed.tolist()
        ],
        persist=False,
    )
    catalogue.sync()
    state = SimpleNamespace(  # what events said: a category and a price for some items
        item_category=np.where(rng.random(n_state) < 0.5, rng.integers(0, 4, n_state), -1).astype(
            np.int32
        ),
        item_price=np.where(rng.random(n_state) < 0.5, rng.uniform(0, 120, n_state), -1.0),
    )
    state.item_category = np.array(
        [category_id(f"c{c}") if c >= 0 else -1 for c in state.item_category], dtype=np.int32
    )
    items = np.concatenate([rng.integers(0, n_state, 400), [n_state + 5, n_state + 60]])
    mixed = 0  # filter sets that both keep and drop some items: the test has teeth
    for filters in (
        Filters(),
        Filters(available_only=False),
        Filters(category="c1"),
        Filters(category="c2", min_price=10, max_price=60),
        Filters(min_price=30),
        Filters(max_price=20, excluded_categories=("c0", "c3")),
        Filters(category="c9"),  # no such category
    ):
        fs = FilterSet(filters, state, catalogue)  # type: ignore[arg-type]
        got = fs.mask(items)
        np.testing.assert_array_equal(got, _reference(fs, items), err_msg=str(filters))
        mixed += bool(0 < got.sum() < items.shape[0])
        for n in (1, 3, 40, 150, 500):  # the fill masks a growing chunk at a time
            np.testing.assert_array_equal(_first_passing(fs, items, n), items[got][:n])
    assert mixed >= 5
