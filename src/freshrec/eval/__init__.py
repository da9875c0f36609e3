"""Prequential (test-then-learn) evaluation of freshrec and baselines on data files.

``freshrec evaluate`` wires these parts: ``datasets`` (read a file into events), ``protocol`` and
``session`` (which events are tested and how), ``adapters`` (models by name) and ``baselines``,
``metrics``, ``runner`` (one evaluation end to end), ``report`` and ``plot``.
"""

from freshrec.eval.adapters import Recommender, Scorer, UnknownModel, create, known_models, register
from freshrec.eval.datasets import DataSpec
from freshrec.eval.runner import evaluate

__all__ = [
    "DataSpec",
    "Recommender",
    "Scorer",
    "UnknownModel",
    "create",
    "evaluate",
    "known_models",
    "register",
]
