"""Wiring: log + state + models + processor + recommender behind ``Engine``."""

from freshrec.engine.engine import Engine
from freshrec.engine.ingest import IngestResult
from freshrec.engine.recommender import Recommendation

__all__ = ["Engine", "IngestResult", "Recommendation"]
