"""The catalogue's masks against the online state's item indices."""

from __future__ import annotations

import numpy as np

from freshrec.features.context import category_id
from freshrec.state import IdMap
from freshrec.state.catalogue import Catalogue, Item
from freshrec.state.shopstore import ShopStore


def test_masks_follow_the_state_as_it_learns_items() -> None:
    items = IdMap(["a", "b"])
    cat = Catalogue(items)
    cat.upsert([Item("c", category="x", price=3.0, available=False), Item("a", brand="z")])
    cat.sync()
    assert cat.allowed(np.array([0, 1, 5])).tolist() == [True, True, True]
    items.indices(["c", "d"])  # the processor learns c and d
    cat.sync()
    assert cat.allowed(np.array([0, 1, 2, 3])).tolist() == [True, True, False, True]
    state_cat = np.array([category_id("y"), -1, -1, category_id("y")], dtype=np.int32)
    assert cat.categories(np.array([0, 2, 3]), state_cat).tolist() == [
        category_id("y"),
        category_id("x"),  # the catalogue's category wins over the events'
        category_id("y"),
    ]
    prices = cat.prices(np.array([0, 2, 3]), np.array([-1.0, -1.0, 9.0, 4.0]))
    assert np.isnan(prices[0]) and prices[1:].tolist() == [3.0, 4.0]
    assert cat.brands(np.array([0, 1])).tolist() == [category_id("z"), -1]


def test_a_restored_state_map_relinks_everything() -> None:
    holder = {"items": IdMap(["a", "b"])}
    cat = Catalogue(lambda: holder["items"])
    cat.upsert([Item("b", available=False)])
    cat.sync()
    assert cat.allowed(np.array([0, 1])).tolist() == [True, False]
    holder["items"] = IdMap(["b", "a"])  # e.g. a snapshot restored another order
    cat.sync()
    assert cat.allowed(np.array([0, 1])).tolist() == [False, True]


def test_persisted_upserts_and_deletes(tmp_path) -> None:
    store = ShopStore(tmp_path / "shop.db")
    cat = Catalogue(IdMap(["old"]), store)
    cat.upsert([Item("a", category="x"), Item("b")])
    cat.delete("a")
    cat.delete("old")  # known only from events
    store.close()
    store = ShopStore(tmp_path / "shop.db")
    again = Catalogue(IdMap(["old"]), store)
    again.sync()
    assert again.get("a") is None and again.get("b") is not None and len(again) == 1
    assert again.allowed(np.array([0])).tolist() == [False]
    assert [again.ids.key(int(c)) for c in again.fresh()] == ["b"]
    store.close()


def test_category_lists_follow_upserts_new_links_and_restored_maps() -> None:
    """``in_category`` keeps each category's list between requests, and never a stale one:
    after an upsert, after the state learns an item, after a snapshot restores another map."""
    holder = {"items": IdMap(["a", "b"])}
    cat = Catalogue(lambda: holder["items"])
    x = category_id("x")
    cat.upsert([Item("a", category="x"), Item("b", category="y"), Item("c", category="x")])
    cat.sync()
    first = cat.in_category(x)
    assert first.tolist() == [0] and cat.in_category(x) is first  # kept
    assert not first.flags.writeable
    holder["items"].indices(["c"])  # the processor learns c
    cat.sync()
    assert cat.in_category(x).tolist() == [0, 2]
    cat.upsert([Item("a", category="y")])
    assert cat.in_category(x).tolist() == [2]
    holder["items"] = IdMap(["c", "b", "a"])  # a restored snapshot: same length, other order
    cat.sync()
    assert cat.in_category(x).tolist() == [0]
    assert sorted(cat.in_category(category_id("y")).tolist()) == [1, 2]


def test_new_items_follow_a_restored_map_of_the_same_length() -> None:
    holder = {"items": IdMap(["a", "b"])}
    cat = Catalogue(lambda: holder["items"])
    cat.upsert([Item("a"), Item("b"), Item("c")])
    cat.sync()
    assert [cat.ids.key(int(c)) for c in cat.fresh()] == ["c"]
    holder["items"] = IdMap(["c", "b"])  # restored: c seen in events, a not
    cat.sync()
    assert [cat.ids.key(int(c)) for c in cat.fresh()] == ["a"]
