"""Shop simulator: a seeded catalogue and shoppers that emit events, and a driver that sends them.

Demo traffic for ``freshrec demo``, and load and behaviour tests.
"""

from freshrec.sim.catalogue import Catalogue
from freshrec.sim.shop import ShopSimulator
from freshrec.sim.shoppers import Shoppers
from freshrec.sim.traffic import TrafficDriver

__all__ = ["Catalogue", "ShopSimulator", "Shoppers", "TrafficDriver"]
