"""freshrec: a real-time recommendation engine for e-commerce."""

from freshrec.engine import Engine, IngestResult, Recommendation
from freshrec.errors import FreshrecError, ValidationError
from freshrec.events import Event
from freshrec.settings import Settings

__all__ = [
    "Engine",
    "Event",
    "FreshrecError",
    "IngestResult",
    "Recommendation",
    "Settings",
    "ValidationError",
]
__version__ = "0.1.0"
