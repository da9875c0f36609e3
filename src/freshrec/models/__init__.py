"""Incremental recommenders behind one small interface (``Model``)."""

from freshrec.models.base import Model, ModelError, UserView
from freshrec.models.covisitation import CoVisitation
from freshrec.models.decay import ForwardDecay
from freshrec.models.mf import OnlineMF
from freshrec.models.ranker import ContextRanker
from freshrec.models.popularity import DecayedPopularity

__all__ = [
    "CoVisitation",
    "ContextRanker",
    "DecayedPopularity",
    "ForwardDecay",
    "Model",
    "ModelError",
    "OnlineMF",
    "UserView",
]
