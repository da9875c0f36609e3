"""Turn the ensemble's ranking into recommendations: exclusions, ids and reasons.

``recommend`` is the ranking the live-quality tests measure. ``serve`` is what a shop gets: the
same ensemble ranking (or cold start for a user with no history, or a strategy an A/B test
chose), then the request's filters and the shop's rules (``freshrec.engine.filters``), at most
``max_per_category`` per category, a shortfall filled with popular items that pass the filters,
and up to ``new_item_slots`` new catalogue items no one has touched yet
(``freshrec.engine.coldstart``). ``fallback`` answers without the engine lock from the last
popular list, when the models fail or run out of time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import accumulate

import msgspec
import numpy as np

from freshrec.engine.coldstart import ColdStart
from freshrec.engine.filters import Filters, FilterSet, diversify
from freshrec.errors import ValidationError
from freshrec.features import Context
from freshrec.features.context import category_id
from freshrec.models import CoVisitation, DecayedPopularity
from freshrec.models.ensemble import Ensemble
from freshrec.state import OnlineState, UserView
from freshrec.state.arrays import member_of, sorted_unique
from freshrec.state.catalogue import Catalogue

STRATEGIES = ("ensemble", "popular", "cold_start")
_POPULAR = {"type": "popular"}
_DEEP = 2_000  # popular items looked through to fill a list under a price range


class Recommendation(msgspec.Struct, frozen=True, gc=False):
    """One recommended item: its id, blended score and why it is shown.

    Responses live on in the response cache; their parts hold only strings and numbers (no
    cycle is possible), so they are kept out of the cyclic garbage collector's sight
    (``gc=False``): hundreds of thousands of them would make each full collection a pause."""

    item_id: str
    score: float
    reason: dict[str, str]


class Served(msgspec.Struct, gc=False):
    """What ``serve`` found: the items, the strategy that ranked them, whether it was cold
    start (no history), and a fallback reason (None when the strategy answered). Untracked
    by the garbage collector, as ``Recommendation``: the items are a tuple, not a list."""

    items: tuple[Recommendation, ...]
    strategy: str
    cold_start: bool = False
    fallback: str | None = None


class Recommender:
    """Ranks with the ensemble, leaves out purchased and excluded items, explains each item."""

    def __init__(
        self,
        state: OnlineState,
        ensemble: Ensemble,
        covisitation: CoVisitation,
        exclude_recent: int = 0,
        catalogue: Catalogue | None = None,
        coldstart: ColdStart | None = None,
        popularity: DecayedPopularity | None = None,
        new_item_slots: int = 1,
    ) -> None:
        self.state = state
        self.ensemble = ensemble
        self.covisitation = covisitation
        self.exclude_recent = exclude_recent
        self.catalogue = catalogue if catalogue is not None else Catalogue(state.items)
        self.coldstart = coldstart
        self.popularity = popularity
        self.new_item_slots = new_item_slots
        self._popular = np.zeros(0, dtype=np.int32)  # last popular list, for ``fallback``

    def excluded(self, user: UserView, exclude: Iterable[str] = ()) -> np.ndarray:
        """Item indices never to recommend to ``user``: purchased ones, the latest
        ``exclude_recent`` items (what they are looking at now) and ``exclude``."""
        bought = np.fromiter(user.purchased, dtype=np.int32, count=len(user.purchased))
        parts = [bought, user.recent_items[: self.exclude_recent]]
        extra = list(exclude)
        if extra:
            parts.append(self.state.items.lookup(extra))
        return np.concatenate(parts)

    def recommend(
        self, user_id: str, k: int, exclude: Iterable[str] = (), context: Context | None = None
    ) -> list[Recommendation]:
        user = self.state.view(user_id, context=context)
        ranked = self.ensemble.rank(user, k, self.excluded(user, exclude))
        if ranked.items.size == 0:
            return []
        keys = self.state.items.keys()
        reasons = self._explain(user, ranked, np.arange(ranked.items.shape[0]), keys)
        return [
            Recommendation(keys[i], float(s), r)
            for i, s, r in zip(ranked.items.tolist(), ranked.scores.tolist(), reasons, strict=True)
        ]

    # -- what a shop is served -----------------------------------------------------------------
    def serve(
        self,
        user_id: str,
        k: int,
        filters: Filters,
        context: Context | None = None,
        strategy: str = "ensemble",
        profile_keys: Sequence[str] = (),
    ) -> Served:
        """Top-``k`` items for ``user_id`` through ``filters``, ranked by ``strategy``."""
        if strategy not in STRATEGIES:
            raise ValidationError("strategy", f"unknown {strategy!r} (known: {STRATEGIES})")
        self.catalogue.sync()
        fs = FilterSet(filters, self.state, self.catalogue)
        user = self.state.view(user_id, context=context)
        excluded = self._excluded(user, filters)
        # members propose 100 candidates each anyway: ranking 100 of them costs little more
        fetch = max(k, 100) if filters.restricts_items else k * 3 + 20
        cold = user.recent_items.size == 0
        if self.popularity is not None:
            self._popular = self.popularity.top(500).copy()
        rows: list[tuple[np.ndarray, np.ndarray, list[dict[str, str]] | None]] = []
        ranked = None
        if strategy == "popular" or (self.coldstart is None and cold):
            strategy_used = "popular"
        elif strategy == "cold_start" or (cold and profile_keys):
            strategy_used = "cold_start"
            found = self.coldstart.rank(  # type: ignore[union-attr]
                self.coldstart.keys_for(context, profile_keys),  # type: ignore[union-attr]
                fetch,
                excluded,
                fs.mask,
            )
            rows.append((found.items, found.scores, found.reasons))
        else:
            strategy_used = "ensemble"
            ranked = self.ensemble.rank(user, fetch, excluded)
            keep = fs.mask(ranked.items)
            ranked.items, ranked.scores, ranked.parts = (
                ranked.items[keep],
                ranked.scores[keep],
                ranked.parts[keep],
            )
            rows.append((ranked.items, ranked.scores, None))
        have = sum(r[0].shape[0] for r in rows)
        if have < k * (2 if filters.max_per_category else 1):  # diversity drops some
            rows.append(self._fill(fs, excluded, rows, fetch))
        items = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int32)
        scores = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0)
        at = np.arange(items.shape[0])  # where each item listed is in the rows, one after another
        if filters.max_per_category > 0 and items.size:
            cats = self.catalogue.categories(items, self.state.item_category)
            at = diversify(cats, filters.max_per_category).nonzero()[0]
            items, scores = items[at], scores[at]
        items, scores, at = items[:k], scores[:k], at[:k]
        reasons: list[dict[str, str]] = [_POPULAR] * items.shape[0]
        keys = self.state.items.keys()
        if len(rows) == 1:  # the usual: every item from the one row, at its place there
            source, position = None, at
        else:
            bounds = np.fromiter(accumulate((r[0].shape[0] for r in rows), initial=0), np.intp)
            source = bounds.searchsorted(at, side="right") - 1  # the row each item came from
            position = at - bounds[source]  # and its place there
        for j, (_, _, given) in enumerate(rows):
            at = np.arange(items.shape[0]) if source is None else (source == j).nonzero()[0]
            if at.size == 0:
                continue
            if given is not None:
                for a in at.tolist():
                    reasons[a] = given[position[a]]
            elif ranked is not None:
                for a, reason in zip(
                    at.tolist(), self._explain(user, ranked, position[at], keys), strict=True
                ):
                    reasons[a] = reason
        if cold and self.coldstart is not None:  # say what made it popular, when we know
            plain = [a for a, r in enumerate(reasons) if r["type"] == "popular"]
            if plain:
                labels = self.coldstart.label(
                    items[plain], self.coldstart.keys_for(context, profile_keys)
                )
                for a, label in zip(plain, labels, strict=True):
                    reasons[a] = label
        out = [
            Recommendation(keys[i], float(sc), r)
            for i, sc, r in zip(items.tolist(), scores.tolist(), reasons, strict=True)
        ]
        if not cold or filters.category is not None:
            out = self._with_new_items(out, items, user, fs, k)
        return Served(tuple(out), strategy_used, cold_start=cold)

    def check_known(self, ids: Sequence[str], field: str = "exclude") -> None:
        """Raise ``ValidationError`` naming ``field`` if any of ``ids`` is an unknown item."""
        if not ids:
            return
        known_state, known_catalogue = self.state.items, self.catalogue.ids
        unknown = [i for i in ids if i not in known_state and i not in known_catalogue]
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:5])
            more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
            raise ValidationError(field, f"unknown item ids {shown}{more}")

    def _excluded(self, user: UserView, filters: Filters) -> np.ndarray:
        parts = [user.recent_items[: self.exclude_recent]]
        if filters.exclude_purchased:
            bought = user.purchased
            parts.append(np.fromiter(bought, dtype=np.int32, count=len(bought)))
        if filters.exclude_viewed:
            parts.append(user.recent_items)
        if filters.exclude:
            parts.append(self.state.items.lookup(list(filters.exclude)))
        return np.concatenate(parts).astype(np.int32)

    def _fill(self, fs: FilterSet, excluded: np.ndarray, rows: list, n: int):
        """Popular items that pass the filters and are not already listed (a shortfall).

        The pool is the popular head; with a category filter, that category's items (one
        vectorised comparison over the catalogue and the state, not a mask of every item);
        with a price range the head gets deeper, and only if that is not enough, every item."""
        taken = np.concatenate([excluded, *[r[0] for r in rows]])
        raw = self.popularity.raw_scores() if self.popularity is not None else np.zeros(0)
        if fs.category is not None:
            pool = sorted_unique(
                np.concatenate(
                    [
                        self.catalogue.in_category(fs.category),
                        (
                            self.state.item_category[: len(self.state.items)] == fs.category
                        ).nonzero()[0],
                    ]
                )
            ).astype(np.int32)
            pool = pool[pool < raw.shape[0]]
            # most popular first; the pool is ascending, so a stable sort breaks ties by index
            pool = pool[(-raw[pool]).argsort(kind="stable")]
        else:
            pool = self._popular
            if fs.filters.restricts_items and self.popularity is not None:
                pool = self.popularity.top(_DEEP)
        pool = _first_passing(fs, pool[~member_of(pool, taken)], n)
        if pool.shape[0] < n and fs.filters.restricts_items and fs.category is None:
            everything = np.arange(raw.shape[0], dtype=np.int32)  # rare: scan every item
            everything = everything[fs.mask(everything) & (raw > 0)]
            everything = everything[~np.isin(everything, taken)]
            pool = everything[np.lexsort((everything, -raw[everything]))][:n]
        top = self.popularity.highest() if self.popularity is not None else 0.0
        scores = raw[pool] / top if top > 0 else np.zeros(pool.shape[0])
        return pool, scores, [_POPULAR] * pool.shape[0]

    def _explain(
        self, user: UserView, ranked, rows: np.ndarray, keys: list[str]
    ) -> list[dict[str, str]]:
        """Reasons of ranked rows ``rows``: the member that contributed most explains each."""
        reasons: list[dict[str, str]] = [_POPULAR] * rows.shape[0]
        led: dict[int, list[int]] = {}  # member -> the rows it leads (a handful: no mask each)
        for r, m in enumerate(ranked.parts[rows].argmax(axis=1).tolist()):
            led.setdefault(m, []).append(r)
        members = self.ensemble.members
        for m, mine in led.items():
            explained = members[m].explain(user, ranked.items[rows[mine]])
            for r, reason in zip(mine, explained, strict=True):
                reasons[r] = _named(reason, keys)
        return reasons

    def _with_new_items(
        self, out: list[Recommendation], shown: np.ndarray, user: UserView, fs: FilterSet, k: int
    ) -> list[Recommendation]:
        """Give up to ``new_item_slots`` of the last places to new items like the user's
        (``shown``: the state items of ``out``). A new item counts against
        ``max_per_category`` like any other: it is not taken if the list it would end up in
        already holds that many of its category."""
        if self.coldstart is None or self.new_item_slots <= 0 or k < 2:
            return out
        if self.catalogue.fresh().size == 0:  # no new item waiting to be seen
            return out
        slots = min(self.new_item_slots, k // 2)
        recent = user.recent_items
        if fs.category is not None:
            categories = np.asarray([fs.category], dtype=np.int32)
            brands = np.asarray([-1], dtype=np.int32)
            sources = np.asarray([-1], dtype=np.int32)
        else:
            categories = self.catalogue.categories(recent, self.state.item_category)
            brands = self.catalogue.brands(recent)
            sources = recent
        shown_ids = {r.item_id for r in out}
        excluded_ids = set(fs.filters.exclude)
        cap = fs.filters.max_per_category
        wanted = slots + len(excluded_ids) + (3 * slots if cap > 0 else 0)  # some may not fit
        fresh, src = self.coldstart.new_items(
            categories, brands, sources, wanted, accept=fs.mask_fresh
        )
        keys = self.state.items.keys()
        shown_categories = (
            self.catalogue.categories(shown, self.state.item_category) if cap > 0 else None
        )
        picks, pick_categories = [], []
        for c, s in zip(fresh.tolist(), src.tolist(), strict=True):
            item_id = self.catalogue.ids.key(c)
            if item_id in shown_ids or item_id in excluded_ids:
                continue
            if shown_categories is not None:
                category = int(self.catalogue.c_category[c])
                kept = max(0, min(len(out), k - len(picks) - 1))  # of ``out``, if this is taken
                same = int((shown_categories[:kept] == category).sum())
                if category >= 0 and same + pick_categories.count(category) >= cap:
                    continue
                pick_categories.append(category)
            source = int(sources[s])
            reason = {"type": "new_arrival"}
            if source >= 0:
                reason = {"type": "new_like_what_you_viewed", "item_id": keys[source]}
            picks.append(Recommendation(item_id, 0.0, reason))
            if len(picks) == slots:
                break
        if not picks:
            return out
        return out[: max(0, min(len(out), k - len(picks)))] + picks

    def fallback(self, user_id: str, k: int, filters: Filters) -> list[Recommendation]:
        """Popular items through ``filters`` without the engine lock (models failed or were
        too slow): the popular list of the last request, with the same exclusions (purchases,
        recent items with ``exclude_viewed``, ``exclude``), filters and diversity as a ranked
        answer. Read while the processor may write: a set or ring changed under the read
        only loses that exclusion, never the answer."""
        pool = self._popular
        u = self.state.users.get(user_id)
        if u is not None and filters.exclude_purchased:
            try:
                bought = np.fromiter(self.state.purchased.get(u, ()), dtype=np.int32)
            except RuntimeError:  # the processor changed the set while we read it
                bought = np.zeros(0, dtype=np.int32)
            pool = pool[~member_of(pool, bought)]
        if u is not None and filters.exclude_viewed:
            try:
                viewed = self.state.view(user_id).recent_items
            except (IndexError, ValueError, RuntimeError):  # the user's ring grew meanwhile
                viewed = np.zeros(0, dtype=np.int32)
            pool = pool[~member_of(pool, viewed)]
        if filters.exclude:
            pool = pool[~member_of(pool, self.state.items.lookup(list(filters.exclude)))]
        pool = pool[FilterSet(filters, self.state, self.catalogue).mask(pool)]
        if filters.max_per_category > 0 and pool.size:
            cats = self.catalogue.categories(pool, self.state.item_category)
            pool = pool[diversify(cats, filters.max_per_category)]
        pool = pool[:k]
        keys = self.state.items.keys()
        return [Recommendation(keys[i], 0.0, _POPULAR) for i in pool.tolist()]

    def similar_by_content(
        self, item_id: str, k: int, banned: Sequence[str] = ()
    ) -> list[Recommendation] | None:
        """Items like a catalogue item no event has touched (no co-visitation yet): the most
        popular available items of its category, then other new ones of it; None if the
        catalogue does not know the item, nothing if its category is ``banned``."""
        record = self.catalogue.get(item_id)
        if record is None:
            return None
        if record.category is None or record.category in banned:
            return []
        self.catalogue.sync()
        category = category_id(record.category)
        pool = self.catalogue.in_category(category)
        pool = pool[self.catalogue.allowed(pool)]
        raw = self.popularity.raw_scores() if self.popularity is not None else np.zeros(0)
        pool = pool[pool < raw.shape[0]]
        pool = pool[np.lexsort((pool, -raw[pool]))][:k]
        top = self.popularity.highest() if self.popularity is not None else 0.0
        keys = self.state.items.keys()
        reason = {"type": "same_category", "item_id": item_id}
        out = [
            Recommendation(keys[i], float(raw[i] / top) if top > 0 else 0.0, reason)
            for i in pool.tolist()
        ]
        fresh = self.catalogue.fresh()
        fresh = fresh[self.catalogue.c_category[fresh] == category]
        for c in fresh[::-1].tolist():  # newest first
            if len(out) >= k:
                break
            other = self.catalogue.ids.key(c)
            if other != item_id:
                out.append(Recommendation(other, 0.0, reason))
        return out

    def top_k(self, user: UserView, k: int, exclude: np.ndarray) -> np.ndarray:
        """The ensemble's top-``k`` item indices (for live quality tests)."""
        return self.ensemble.rank(user, k, exclude).items

    def similar(self, item: int, k: int, banned: Sequence[str] = ()) -> list[Recommendation]:
        """Co-visited items of ``item`` that the catalogue allows (available, not deleted),
        none of a ``banned`` category (the shop's ``excluded_categories``)."""
        self.catalogue.sync()
        items, scores = self.covisitation.similar(item, 2 * k + 10)
        keep = self.catalogue.allowed(items)
        if banned:  # the shop rule, as every list's filters apply it
            rule = Filters(excluded_categories=tuple(banned))
            keep &= FilterSet(rule, self.state, self.catalogue).mask(items)
        items, scores = items[keep][:k], scores[keep][:k]
        keys = self.state.items.keys()
        source = keys[item]
        return [
            Recommendation(keys[i], float(s), {"type": "also_viewed", "item_id": source})
            for i, s in zip(items.tolist(), scores.tolist(), strict=True)
        ]


def _first_passing(fs: FilterSet, pool: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` items of ``pool`` that pass the filters, in order. The pool is masked a
    growing chunk at a time, so a long pool (a category's items, the popular head) whose first
    items suffice is not masked to its end: each item masked is a few random reads into the
    catalogue's arrays."""
    if pool.shape[0] <= 2 * n:
        return pool[fs.mask(pool)][:n]
    found, have, start, size = [], 0, 0, max(2 * n, 16)
    while start < pool.shape[0] and have < n:
        part = pool[start : start + size]
        part = part[fs.mask(part)]
        found.append(part)
        have += part.shape[0]
        start, size = start + size, size * 2
    return np.concatenate(found)[:n]


def _named(reason: dict[str, int | str], keys: list[str]) -> dict[str, str]:
    """A model's reason with item indices replaced by item ids (``item`` -> ``item_id``)."""
    if len(reason) == 1 and type(reason.get("type")) is str:
        return reason  # type: ignore[return-value]  # the usual without an item: as it is
    if len(reason) == 2 and "item" in reason and type(reason.get("type")) is str:
        return {"type": reason["type"], "item_id": keys[int(reason["item"])]}  # the usual
    out = {k: str(v) for k, v in reason.items() if k != "item"}
    if "item" in reason:
        out["item_id"] = keys[int(reason["item"])]
    return out
