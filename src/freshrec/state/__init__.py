"""Online state: id maps, each user's recent items and session, purchases, counters."""

from freshrec.state.batch import Batch
from freshrec.state.ids import IdMap
from freshrec.state.online import OnlineState, UserView

__all__ = ["Batch", "IdMap", "OnlineState", "UserView"]
