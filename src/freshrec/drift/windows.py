"""Time-window members: fast-decay twins of the slow models, configured as ensemble members.

``ensemble_fast_members`` maps a model kind to a half-life in event-time seconds; each entry adds a
member named ``<kind>_fast`` -- the same class as the slow member, with the short half-life -- whose
prior is its slow twin's. The ensemble mixes them like any other member (its weights follow live
hit rates); the drift policy shifts weight towards them after a change.

>>> from freshrec.settings import Settings
>>> s = Settings(ensemble_fast_members={"popularity": 600.0})
>>> [(m.name, m.half_life_seconds) for m in fast_members(s)]
[('popularity_fast', 600.0)]
>>> fast_priors(s)["popularity_fast"] == s.ensemble_priors["popularity"]
True
"""

from __future__ import annotations

from freshrec.models import CoVisitation, DecayedPopularity, Model
from freshrec.settings import Settings

KINDS = ("popularity", "covisitation")
SUFFIX = "_fast"


def fast_members(settings: Settings) -> list[Model]:
    """The fast-decay members ``settings.ensemble_fast_members`` asks for, in a fixed order."""
    members: list[Model] = []
    for kind in KINDS:
        half_life = settings.ensemble_fast_members.get(kind)
        if half_life is None:
            continue
        model: Model
        if kind == "popularity":
            model = DecayedPopularity(half_life)
        else:
            model = CoVisitation(
                settings.covis_neighbours,
                settings.covis_backward_weight,
                half_life,
                row_exponent=settings.covis_row_exponent,
                source_exponent=settings.covis_source_exponent,
            )
        model.name = kind + SUFFIX
        members.append(model)
    return members


def fast_priors(settings: Settings) -> dict[str, float]:
    """Ensemble priors with each fast member's defaulting to its slow twin's."""
    priors = dict(settings.ensemble_priors)
    for kind in settings.ensemble_fast_members:
        priors.setdefault(kind + SUFFIX, settings.ensemble_priors.get(kind, 1.0))
    return priors
