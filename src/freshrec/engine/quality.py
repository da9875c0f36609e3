"""Live quality: test-then-learn on live traffic.

Before a micro-batch is learned, every ``every``-th event of the log (by offset, so the choice
is the same live and on replay) whose user and item are already known is tested: was the item in
each model's top-``k`` for that user, as the models stood before the event? Only discoveries are
tested: an event on one of the user's recent items (a shopper coming back to a product) is not,
and the recent items are left out of each top-``k``, so the rates measure what the weights are
for -- finding the next new item -- rather than rewarding a model for echoing the history. Hits
go into a
sliding window per model; the window's hit rate is the model's live quality, exported as a
Prometheus gauge and fed to the ensemble's weights (and, later, the drift detectors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from freshrec.events import LoggedEvent
from freshrec.features import enrich
from freshrec.models import Model
from freshrec.models.ensemble import Ensemble
from freshrec.state import OnlineState, UserView
from freshrec.state.arrays import member_of

TopK = Callable[[UserView, int, np.ndarray], np.ndarray]


class LiveQuality:
    """Sliding-window hit rates of named top-k functions on sampled live events."""

    name = "quality"

    def __init__(
        self,
        state: OnlineState,
        rankers: Mapping[str, TopK],
        excluded: Callable[[UserView], np.ndarray],
        k: int = 10,
        window: int = 500,
        every: int = 100,
        on_update: Callable[[dict[str, float]], object] | None = None,
    ) -> None:
        if k < 1 or window < 1 or every < 1:
            raise ValueError("k, window and every must be >= 1")
        self.state = state
        self.excluded = excluded
        self.rankers = dict(rankers)
        self.names = list(rankers)
        self.on_update = on_update
        self.k = k
        self.window = window
        self.every = every
        self._hits = np.zeros((len(self.names), window), dtype=np.bool_)
        self.tests = 0  # total tests so far; the window holds the last min(tests, window)

    def due(self, first_offset: int, n: int) -> np.ndarray:
        """Positions in a batch starting at log offset ``first_offset`` that are sampled."""
        start = (-first_offset) % self.every
        return np.arange(start, n, self.every)

    def observe(self, event: LoggedEvent, offset: int) -> None:
        """Test one event (the models have learned everything before it), report the rates."""
        if self.test(event) and self.on_update is not None:
            self.on_update(self.hit_rates())

    def test(self, event: LoggedEvent) -> bool:
        """Record whether each ranker had ``event``'s item in its top-k; False if untestable."""
        state = self.state
        if state.weights_of([event])[0] <= 0:
            return False
        item = state.items.get(event.item_id)
        if item is None or event.user_id not in state.users:
            return False
        user = state.view(event.user_id, context=enrich(event.context, event.ts))
        exclude = np.concatenate([self.excluded(user), user.recent_items])
        if item in exclude:
            return False
        slot = self.tests % self.window
        for row, name in enumerate(self.names):
            self._hits[row, slot] = bool(np.any(self.rankers[name](user, self.k, exclude) == item))
        self.tests += 1
        return True

    def hit_rates(self) -> dict[str, float]:
        n = min(self.tests, self.window)
        if n == 0:
            return dict.fromkeys(self.names, 0.0)
        rates = self._hits[:, :n].mean(axis=1)
        return {name: float(r) for name, r in zip(self.names, rates, strict=True)}

    def discordant(self, a: str, b: str) -> tuple[int, int, int]:
        """Over the window's tests: how many there are, how many ``a`` hit and ``b`` missed,
        and how many the other way round (a paired comparison of the two)."""
        n = min(self.tests, self.window)
        ha, hb = self._hits[self.names.index(a), :n], self._hits[self.names.index(b), :n]
        return n, int((ha & ~hb).sum()), int((hb & ~ha).sum())

    def last_hits(self) -> dict[str, bool]:
        """Each ranker's hit (True) or miss in the latest test (empty before any test)."""
        if self.tests == 0:
            return {}
        slot = (self.tests - 1) % self.window
        return {name: bool(self._hits[row, slot]) for row, name in enumerate(self.names)}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"hits": self._hits.copy(), "tests": np.asarray([self.tests])}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        hits = arrays["hits"]
        if hits.shape == self._hits.shape:
            self._hits = hits.astype(np.bool_, copy=True)
            self.tests = int(arrays["tests"][0])
            if self.on_update is not None and self.tests:
                self.on_update(self.hit_rates())


def model_top_k(model: Model, ensemble: Ensemble) -> TopK:
    """A model's own top-k (its ``candidates``), leaving out ``exclude``; a model that proposes
    no candidates (a re-ranker) orders the ensemble's candidates by its own scores."""

    def top(user: UserView, k: int, exclude: np.ndarray) -> np.ndarray:
        try:
            items = model.candidates(user, k + exclude.shape[0])
        except NotImplementedError:
            items = ensemble.candidates(user, k + exclude.shape[0])
            items = items[np.argsort(-model.score(user, items), kind="stable")]
        if exclude.size:
            items = items[~member_of(items, exclude)]
        return items[:k]

    return top
