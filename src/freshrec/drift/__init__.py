"""Concept drift: detectors on live signals, the recalibration policy, the record, alerts."""

from freshrec.drift.alerts import Alerts
from freshrec.drift.detectors import Adwin, Detector, PageHinkley
from freshrec.drift.events import DriftEvent, DriftRecord
from freshrec.drift.monitor import DriftMonitor
from freshrec.drift.policy import Recalibration
from freshrec.drift.windows import fast_members, fast_priors

__all__ = [
    "Adwin",
    "Alerts",
    "Detector",
    "DriftEvent",
    "DriftMonitor",
    "DriftRecord",
    "PageHinkley",
    "Recalibration",
    "fast_members",
    "fast_priors",
]
