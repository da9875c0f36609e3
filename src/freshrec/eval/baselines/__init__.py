"""Baselines of the prequential evaluator, each an adapter registered under its name.

User protocol: ``pop``, ``pop-decayed``, ``itemknn``, ``isgd`` (freshrec's MF with
``loss="isgd"``, when that model exists), ``als-1000``, ``als-10000``, ``als-1000-recalc``,
``als-10000-recalc`` (with the ``eval`` extra). Session protocol: ``pop``, ``successor``,
``sknn``, ``vsknn``. Every baseline runs in either protocol.
"""

from freshrec.eval.baselines import als, isgd, itemknn, popularity, sknn, successor

__all__ = ["als", "isgd", "itemknn", "popularity", "sknn", "successor"]
