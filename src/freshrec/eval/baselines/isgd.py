"""ISGD alone (Vinagre et al., 2014): freshrec's online MF with ``loss="isgd"``.

Registered as ``isgd`` when ``freshrec.models.mf.OnlineMF`` exists; the model runs through the
same ``ModelAdapter`` as every freshrec model. Hyperparameters are the paper's: 10 factors,
learning rate 0.05, regularisation 0.01, no negatives.
"""

from __future__ import annotations

from typing import Any

from freshrec.eval.adapters import ModelAdapter, register, register_missing

try:
    from freshrec.models.mf import OnlineMF
except ImportError:  # pragma: no cover - depends on the version of freshrec
    OnlineMF = None


def make_isgd(seed: int = 0, settings: Any = None) -> ModelAdapter:
    """ISGD as published (Vinagre et al. 2014); the MF model's defaults otherwise."""
    model = OnlineMF(  # type: ignore[misc]
        factors=10, learning_rate=0.05, regularization=0.01, loss="isgd", negatives=0, seed=seed
    )
    return ModelAdapter(model, settings)


if OnlineMF is None:
    register_missing("isgd", "freshrec.models.mf.OnlineMF is not available")
else:
    register("isgd")(make_isgd)

__all__ = ["make_isgd"]
