"""Incremental recommenders behind one small interface (``Model``)."""

from freshrec.models.base import Model, ModelError, UserView
from freshrec.models.covisitation import CoVisitation
from freshrec.models.decay import ForwardDecay
from freshrec.models.mf import OnlineMF
from freshrec.models.popularity import DecayedPopularity
from freshrec.models.ranker import ContextRanker

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
