"""What the evaluator runs: anything that learns events and recommends, looked up by name.

A ``Recommender`` learns one event at a time (in event-time order) and recommends the top ``k``
item ids for a user, never one in ``exclude``. One that can also score arbitrary items
(``Scorer``) gets a sampled AUC. Adapters are created by name from a registry:

- ``engine``: freshrec's ``Engine`` in memory, fed through ``ingest`` + ``process`` per event and
  asked through ``Engine.recommend`` -- whatever the default recommender is (later, the ensemble);
- every ``freshrec.models.Model`` subclass under its ``name`` (``popularity``, ``covisitation``,
  ``mf`` ...): the model on an ``OnlineState``, learning and scoring with the very code the
  engine's processor runs, found automatically, so a new model needs no change here;
- the baselines of ``freshrec.eval.baselines`` (``pop``, ``itemknn``, ``als-1000`` ...).

``register(name)`` adds a factory; ``create(name, seed=...)`` builds one, or raises
``UnknownModel`` listing the known names.

>>> from freshrec.events import LoggedEvent
>>> rec = create("covisitation")
>>> for t, (user, item) in enumerate([("a", "x"), ("a", "y"), ("b", "x")]):
...     rec.learn(LoggedEvent(0, user, item, float(t)))
>>> rec.recommend("b", 5, exclude={"x"})
['y']
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from freshrec.errors import FreshrecError
from freshrec.events import LoggedEvent
from freshrec.models import Model
from freshrec.models.base import best_positions
from freshrec.settings import Settings
from freshrec.state import OnlineState
from freshrec.state.arrays import member_of


class UnknownModel(FreshrecError):
    """A model name the evaluator does not know (or whose optional dependency is missing)."""


@runtime_checkable
class Recommender(Protocol):
    """The evaluator's view of a recommender."""

    name: str

    def learn(self, event: LoggedEvent) -> None:
        """Learn one event (called in event-time order, after the event was tested)."""

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        """Up to ``k`` item ids, best first, none of them in ``exclude``."""
        ...


@runtime_checkable
class Scorer(Protocol):
    """A recommender that can also score given items (for the sampled AUC)."""

    def score(self, user_id: str, items: Sequence[str]) -> np.ndarray:
        """Scores of ``items`` for ``user_id``; ``-inf`` for an item it cannot recommend."""
        ...


Factory = Callable[..., Recommender]
_REGISTRY: dict[str, Factory] = {}
_MISSING: dict[str, str] = {}  # known names whose optional dependency is not installed


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: make ``factory(seed=..., settings=...)`` available as ``name``."""

    def deco(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        return factory

    return deco


def register_missing(name: str, reason: str) -> None:
    """Record that ``name`` exists but cannot be built here (e.g. an extra is not installed)."""
    _MISSING.setdefault(name, reason)


def _load_plugins() -> None:
    """Import the baselines and every ``freshrec.models`` module, registering their models."""
    importlib.import_module("freshrec.eval.baselines")
    import freshrec.models as models_pkg

    for info in pkgutil.iter_modules(models_pkg.__path__):
        try:
            module = importlib.import_module(f"freshrec.models.{info.name}")
        except ImportError as exc:  # an optional dependency of that model
            register_missing(info.name, str(exc))
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Model)
                and not inspect.isabstract(cls)
                and cls.__module__ == (module.__name__)
            ):
                _REGISTRY.setdefault(cls.name, _model_factory(cls))


def _model_factory(cls: type[Model]) -> Factory:
    def factory(seed: int = 0, settings: Settings | None = None, **params: Any) -> Recommender:
        if "seed" in inspect.signature(cls).parameters:
            params.setdefault("seed", seed)
        try:
            model = cls(**params)
        except TypeError as exc:  # e.g. a model that needs other models to be built
            raise UnknownModel(
                f"model {cls.name!r} cannot be built from defaults ({exc}); "
                "register a factory for it with freshrec.eval.register"
            ) from None
        return ModelAdapter(model, settings)

    return factory


def known_models() -> list[str]:
    """Names ``create`` accepts, sorted."""
    _load_plugins()
    return sorted(_REGISTRY)


def create(name: str, seed: int = 0, settings: Settings | None = None) -> Recommender:
    """Build the recommender registered as ``name``."""
    _load_plugins()
    factory = _REGISTRY.get(name)
    if factory is None:
        if name in _MISSING:
            raise UnknownModel(f"model {name!r} is not available here: {_MISSING[name]}")
        raise UnknownModel(f"unknown model {name!r} (known: {', '.join(known_models())})")
    rec = factory(seed=seed, settings=settings)
    rec.name = name
    return rec


def check_names(names: Iterable[str]) -> None:
    """Raise ``UnknownModel`` for the first name ``create`` would not accept."""
    known = set(known_models())
    for name in names:
        if name not in known:
            if name in _MISSING:
                raise UnknownModel(f"model {name!r} is not available here: {_MISSING[name]}")
            raise UnknownModel(f"unknown model {name!r} (known: {', '.join(sorted(known))})")


def create_many(names: Iterable[str], seed: int = 0) -> list[Recommender]:
    """Check every name first, so a typo fails before a long run starts."""
    names = list(names)
    check_names(names)
    return [create(name, seed) for name in names]


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest finite ``scores``, best first; ties go to the lower index,
    also at the cut (every model and baseline breaks ties the same way, so none is favoured
    by which of several equal scores a partition happened to keep)."""
    return best_positions(np.asarray(scores), k)


class EngineAdapter:
    """freshrec's ``Engine`` in memory: ingest + process per event, ``Engine.recommend``."""

    def __init__(self, seed: int = 0, settings: Settings | None = None) -> None:
        from freshrec.engine import Engine

        self.name = "engine"
        self.engine = Engine(settings or Settings())

    def learn(self, event: LoggedEvent) -> None:
        body = event.to_dict()
        body.pop("event_id", None)  # de-duplication is not under test
        result = self.engine.ingest(body)
        if result.errors:
            raise FreshrecError(f"engine rejected an event: {result.errors[0][1]}")
        self.engine.process()

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        # the request happens "now" in event time: the latest event learned, not the wall clock
        context = {"timestamp": self.engine.state.max_ts}
        recs = self.engine.recommend(user_id, k=k, exclude=exclude, context=context)
        return [r.item_id for r in recs]

    def close(self) -> None:
        self.engine.close()


class ModelAdapter:
    """One ``freshrec.models.Model`` on an ``OnlineState``: the processor's code, per event."""

    def __init__(self, model: Model, settings: Settings | None = None) -> None:
        s = settings or Settings()
        self.name = model.name
        self.model = model
        self.state = OnlineState(
            s.recent_items, s.session_window, s.session_gap_seconds, s.type_weight_vector()
        )

    def learn(self, event: LoggedEvent) -> None:
        self.model.learn(self.state.advance([event]))

    def _excluded(self, exclude: set[str]) -> np.ndarray:
        return self.state.items.lookup(list(exclude)) if exclude else np.zeros(0, np.int32)

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        user = self.state.view(user_id)
        excluded = self._excluded(exclude)
        top_k = getattr(self.model, "top_k", None)
        if top_k is not None:
            items = top_k(user, k, excluded)[0]
        else:
            candidates = self.model.candidates(user, k + excluded.shape[0])
            if excluded.size:
                candidates = candidates[~member_of(candidates, excluded)]
            scores = np.asarray(self.model.score(user, candidates), dtype=np.float64)
            items = candidates[top_indices(scores, k)]
        keys = self.state.items.keys()
        return [keys[i] for i in items.tolist()]

    def score(self, user_id: str, items: Sequence[str]) -> np.ndarray:
        index = self.state.items.indices(list(items), add=False)
        out = np.full(index.shape[0], -np.inf)
        known = index >= 0
        if known.any():
            out[known] = self.model.score(self.state.view(user_id), index[known])
        return out


register("engine")(EngineAdapter)


__all__ = [
    "EngineAdapter",
    "ModelAdapter",
    "Recommender",
    "Scorer",
    "UnknownModel",
    "check_names",
    "create",
    "create_many",
    "known_models",
    "register",
    "top_indices",
]
