"""Scale-out mode: the log and online state in Redis, stateless serving replicas
(``ClusterEngine``) and any number of workers (``Worker``) sharing the partitions."""

from freshrec.scaleout.cluster import ClusterEngine
from freshrec.scaleout.worker import Worker

__all__ = ["ClusterEngine", "Worker"]
