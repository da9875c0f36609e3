"""The shop's catalogue: category, price, brand, availability and free attributes per item.

Items have their own dense index here (``ids``), because an item can be in the catalogue before
any shopper has touched it (and then the models know nothing of it). The link to the online
state's item index (``OnlineState.items``, what models and candidates use) is one int32 array,
``state_to_c``, extended when the state learns new items (``sync``: O(new items), never a pass
over the catalogue). Every recommendation path asks ``allowed(indices)`` -- a vectorised gather
-- so an item marked unavailable is left out from the moment ``upsert`` returns.

Category and price set here win over those seen in events' context; items without a catalogue
entry keep what events said (``OnlineState.item_category`` / ``item_price``).

>>> from freshrec.state import IdMap
>>> state_items = IdMap(["a", "b"])
>>> cat = Catalogue(state_items)
>>> bad = cat.upsert([Item("b", category="shoes", price=10.0, available=False), Item("new")])
>>> cat.sync(); cat.allowed(np.array([0, 1])).tolist()
[True, False]
>>> [cat.ids.key(int(c)) for c in cat.fresh()]  # in the catalogue, never seen in events
['new']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Annotated

import msgspec
import numba
import numpy as np

from freshrec.events.schema import Id
from freshrec.features.context import category_id
from freshrec.state.arrays import grow
from freshrec.state.ids import IdMap
from freshrec.state.shopstore import ShopStore

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Attribute = str | int | float | bool
Price = Annotated[float, msgspec.Meta(ge=0)]


class Item(msgspec.Struct, forbid_unknown_fields=True):
    """One catalogue entry (the body of ``PUT /v1/items/{id}``, one element of a bulk upsert)."""

    item_id: Id
    category: Text | None = None
    price: Price | None = None
    brand: Text | None = None
    available: bool = True
    attributes: Annotated[dict[Text, Attribute], msgspec.Meta(max_length=64)] = msgspec.field(
        default_factory=dict
    )
    updated_at: float | None = None


class Catalogue:
    """Items with metadata, and the vectorised masks every recommendation path applies."""

    def __init__(
        self, state_items: IdMap | Callable[[], IdMap], store: ShopStore | None = None
    ) -> None:
        # the state's id map, or a function returning it (a snapshot restore replaces the map)
        self._items_of = state_items if callable(state_items) else (lambda: state_items)
        self._map: IdMap | None = None
        self.store = store
        self.ids = IdMap()
        self.records: list[Item | None] = []  # None: deleted
        self.c_category = np.zeros(0, dtype=np.int32)
        self.c_brand = np.zeros(0, dtype=np.int32)
        self.c_price = np.zeros(0, dtype=np.float64)
        self.c_available = np.zeros(0, dtype=np.bool_)
        self.c_state = np.zeros(0, dtype=np.int32)  # state item index, -1 never seen in events
        self.state_to_c = np.zeros(0, dtype=np.int32)  # catalogue index per state item, -1 none
        self._synced = 0
        self._relinks = 0  # state maps replaced (restored snapshots): the links' generation
        self.version = 0  # bumped on every change (caches compare it)
        self._live = 0  # items in the catalogue (deleted ones aside)
        self._fresh = np.zeros(0, dtype=np.int32)
        self._fresh_key: tuple[int, int, int] | None = None
        self._by_category: dict[int, np.ndarray] = {}  # category -> state indices (in_category)
        self._by_category_key: tuple[int, int, int] | None = None
        self.unavailable = 0
        if store is not None:
            self._load(store)
            store.subscribe("items", self.apply)

    def __len__(self) -> int:
        return self._live

    @property
    def state_items(self) -> IdMap:
        items = self._items_of()
        if items is not self._map:  # a new map (restored snapshot): link everything again
            self._map = items
            self._synced = 0
            self._relinks += 1
            self.state_to_c = np.zeros(0, dtype=np.int32)
            self.c_state[:] = -1
        return items

    def _load(self, store: ShopStore) -> None:
        items, deleted = [], []
        for key, doc in store.load("items"):
            if doc.get("deleted"):
                deleted.append(key)
            else:
                items.append(msgspec.convert(doc, Item))
        self.upsert(items, persist=False)
        for key in deleted:
            self.delete(key, persist=False)

    def apply(self, item_id: str, doc: object) -> None:
        """Take in a change another replica stored (``doc`` None or deleted: gone)."""
        if doc is None or (isinstance(doc, dict) and doc.get("deleted")):
            if self.get(item_id) is not None:
                self.delete(item_id, persist=False)
        else:
            self.upsert([msgspec.convert(doc, Item)], persist=False)

    # -- writes --------------------------------------------------------------------------------
    def upsert(self, items: Sequence[Item], persist: bool = True) -> None:
        """Insert or replace ``items`` (validated ``Item`` structs)."""
        if not items:
            return
        now = time.time()
        for item in items:
            if item.updated_at is None:
                item.updated_at = now
        c = self.ids.indices([it.item_id for it in items])
        n = len(self.ids)
        self.c_category = grow(self.c_category, n, fill=-1)
        self.c_brand = grow(self.c_brand, n, fill=-1)
        self.c_price = grow(self.c_price, n, fill=np.nan)
        self.c_available = grow(self.c_available, n, fill=False)
        self.c_state = grow(self.c_state, n, fill=-1)
        self.records.extend([None] * (n - len(self.records)))
        for k, item in zip(c.tolist(), items, strict=True):
            self._live += self.records[k] is None
            self.records[k] = item
        self.c_category[c] = [
            -1 if it.category is None else category_id(it.category) for it in items
        ]
        self.c_brand[c] = [-1 if it.brand is None else category_id(it.brand) for it in items]
        self.c_price[c] = [np.nan if it.price is None else it.price for it in items]
        self.c_available[c] = [it.available for it in items]
        s = self.state_items.indices([it.item_id for it in items], add=False)
        seen = (s >= 0) & (s < self._synced)
        self.c_state[c[seen]] = s[seen]
        self.state_to_c[s[seen]] = c[seen]
        self._changed()
        if persist and self.store is not None:
            self.store.put_many("items", ((it.item_id, it) for it in items))

    def delete(self, item_id: str, persist: bool = True) -> bool:
        """Remove ``item_id``: never recommended again until it is put back. Returns whether
        the item was known (in the catalogue or seen in events)."""
        c = self.ids.get(item_id)
        known = (c is not None and self.records[c] is not None) or item_id in self.state_items
        if c is None:  # an item only known from events: remember that it is gone
            self.upsert([Item(item_id, available=False)], persist=False)
            c = self.ids.get(item_id)
        assert c is not None
        if self.records[c] is not None:
            self._live -= 1
        self.records[c] = None
        self.c_available[c] = False
        self._changed()
        if persist and self.store is not None:
            self.store.put_many("items", [(item_id, {"deleted": True})])
        return known

    def _changed(self) -> None:
        self.version += 1
        n = len(self.records)
        self.unavailable = int(n - np.count_nonzero(self.c_available[:n]))

    # -- reads ---------------------------------------------------------------------------------
    def get(self, item_id: str) -> Item | None:
        c = self.ids.get(item_id)
        return None if c is None else self.records[c]

    def sync(self) -> None:
        """Link the state's items learned since the last call to their catalogue entries."""
        n = len(self.state_items)
        if n <= self._synced:
            return
        keys = self.state_items.keys()[self._synced : n]
        c = self.ids.indices(keys, add=False)
        state_to_c = grow(self.state_to_c, n, fill=-1)
        state_to_c[self._synced : n] = c
        known = c >= 0
        self.c_state[c[known]] = np.arange(self._synced, n, dtype=np.int32)[known]
        self.state_to_c = state_to_c
        self._synced = n

    @property
    def synced(self) -> int:
        """How many of the state's items ``sync`` has linked to their catalogue entries."""
        return self._synced

    def _cat_index(self, items: np.ndarray) -> np.ndarray:
        """Catalogue index of each state item index (-1: none)."""
        return _gather(self.state_to_c[: self._synced], items, -1)

    def allowed(self, items: np.ndarray) -> np.ndarray:
        """Whether each state item index may be recommended (not unavailable, not deleted)."""
        if self.unavailable == 0:  # nothing is hidden: skip the gathers
            return np.ones(items.shape[0], dtype=np.bool_)
        c = self._cat_index(items)
        return (c < 0) | _gather(self.c_available, c, False)

    def categories(self, items: np.ndarray, state_category: np.ndarray) -> np.ndarray:
        """Category id of each state item: the catalogue's, else the one events gave (-1)."""
        return _categories(
            np.asarray(items), self.state_to_c[: self._synced], self.c_category, state_category
        )

    def prices(self, items: np.ndarray, state_price: np.ndarray) -> np.ndarray:
        """Price of each state item: the catalogue's, else the events' (NaN when unknown)."""
        return _prices(
            np.asarray(items), self.state_to_c[: self._synced], self.c_price, state_price
        )

    def brands(self, items: np.ndarray) -> np.ndarray:
        c = self._cat_index(items)
        return np.where(c >= 0, _gather(self.c_brand, c, -1), -1)

    def in_category(self, category: int) -> np.ndarray:
        """State indices of the catalogue's items in ``category`` (seen in events), read-only;
        each category's list is kept until the catalogue or the state's items change (a
        filtered request would otherwise compare every catalogue entry's category)."""
        key = (self.version, self._synced, self._relinks)
        if self._by_category_key != key:
            self._by_category, self._by_category_key = {}, key
        found = self._by_category.get(category)
        if found is None:
            n = len(self.records)
            s = self.c_state[(self.c_category[:n] == category).nonzero()[0]]
            found = self._by_category[category] = s[s >= 0]
            found.flags.writeable = False
        return found

    def fresh(self) -> np.ndarray:
        """Catalogue indices of available items no event has touched yet (cold items);
        recomputed only after the catalogue or the state's items changed."""
        key = (self.version, self._synced, self._relinks)
        if self._fresh_key != key:
            n = len(self.records)
            found = np.flatnonzero(self.c_available[:n] & (self.c_state[:n] < 0))
            self._fresh, self._fresh_key = found.astype(np.int32), key
        return self._fresh


# -- one item's catalogue facts, compiled: the rules every vectorised read and the request
# filters (``freshrec.engine.filters``) share --------------------------------------------------
@numba.njit(cache=True, nogil=True)
def catalogue_index(i, state_to_c):  # pragma: no cover - compiled
    """Catalogue index of state item ``i`` (-1: not in the catalogue, or not linked yet)."""
    return state_to_c[i] if 0 <= i < state_to_c.shape[0] else -1


@numba.njit(cache=True, nogil=True)
def category_of(i, c, c_category, state_category):  # pragma: no cover - compiled
    """Category of state item ``i`` (catalogue index ``c``): the catalogue's, else the one
    events gave, else -1."""
    cat = c_category[c] if 0 <= c < c_category.shape[0] else -1
    if cat < 0:
        cat = state_category[i] if 0 <= i < state_category.shape[0] else -1
    return cat


@numba.njit(cache=True, nogil=True)
def price_of(i, c, c_price, state_price):  # pragma: no cover - compiled
    """Price of state item ``i`` (catalogue index ``c``): the catalogue's, else the events'
    (negative there: unknown), else NaN."""
    price = c_price[c] if 0 <= c < c_price.shape[0] else np.nan
    if np.isnan(price):
        raw = state_price[i] if 0 <= i < state_price.shape[0] else -1.0
        price = raw if raw >= 0 else np.nan
    return price


@numba.njit(cache=True, nogil=True)
def _categories(items, state_to_c, c_category, state_category):  # pragma: no cover - compiled
    out = np.empty(items.shape[0], dtype=np.int32)
    for j in range(items.shape[0]):
        i = items[j]
        out[j] = category_of(i, catalogue_index(i, state_to_c), c_category, state_category)
    return out


@numba.njit(cache=True, nogil=True)
def _prices(items, state_to_c, c_price, state_price):  # pragma: no cover - compiled
    out = np.empty(items.shape[0], dtype=np.float64)
    for j in range(items.shape[0]):
        i = items[j]
        out[j] = price_of(i, catalogue_index(i, state_to_c), c_price, state_price)
    return out


def _gather(array: np.ndarray, index: np.ndarray, fill: float | int) -> np.ndarray:
    """``array[index]`` with ``fill`` where ``index`` is negative or past the end."""
    n = array.shape[0]
    if n == 0 or index.size == 0:
        return np.full(index.shape[0], fill, dtype=array.dtype)
    lo, hi = index.min(), index.max()
    if lo >= 0 and hi < n:  # the common case: every index is in range
        return array[index]
    ok = (index >= 0) & (index < n)
    return np.where(ok, array[np.clip(index, 0, n - 1)], fill)
