"""Build the drift monitor, its recalibration policy and alerts from ``Settings``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from freshrec.drift.alerts import Alerts
from freshrec.drift.monitor import DriftMonitor
from freshrec.drift.policy import Forgetful, Recalibration
from freshrec.models import DecayedPopularity, OnlineMF
from freshrec.models.ensemble import Ensemble
from freshrec.settings import Settings

if TYPE_CHECKING:
    from freshrec.engine.quality import LiveQuality


def build_alerts(settings: Settings) -> Alerts:
    thresholds = {}
    if settings.alert_hit_rate_min > 0:
        thresholds["hit_rate:ensemble"] = settings.alert_hit_rate_min
    if settings.alert_ctr_min > 0:
        thresholds["ctr"] = settings.alert_ctr_min
    return Alerts(thresholds, settings.alert_webhook_url)


def build_monitor(
    settings: Settings,
    quality: LiveQuality,
    popularity: DecayedPopularity,
    decayed: Sequence[Forgetful],
    mf: OnlineMF | None,
    ensemble: Ensemble,
    fast: Sequence[str],
    alerts: Alerts,
) -> DriftMonitor:
    """The monitor the engine's processor runs (its policy only if ``drift_recalibrate``).
    With ``drift_detection`` off it runs no detector and never acts, but still hands the live
    hit rates and CTR to the alerts' thresholds."""
    policy = None
    if settings.drift_detection and settings.drift_recalibrate:
        policy = Recalibration(
            decayed,
            mf,
            ensemble,
            fast,
            forget=settings.drift_forget,
            shrink_users=settings.drift_shrink_users,
            boost=settings.drift_boost,
            boost_events=settings.drift_boost_events,
            cooldown_events=settings.drift_cooldown_events,
            history=settings.drift_history_weight,
            keep_events=settings.drift_keep_events,
        )
    window = quality.window

    def on_signal(signal: str, value: float, at_event: int, at_time: float) -> None:
        if signal.startswith("hit_rate:"):  # alerts look at the window's rate, once it is full
            if quality.tests >= window:
                rate = quality.hit_rates()[signal.removeprefix("hit_rate:")]
                alerts.check(signal, rate, at_event, at_time)
        else:
            alerts.check(signal, value, at_event, at_time)

    return DriftMonitor(
        quality,
        popularity,
        policy,
        adwin_delta=settings.drift_adwin_delta,
        ph_threshold=settings.drift_ph_threshold,
        ph_delta=settings.drift_ph_delta,
        chunk_events=settings.drift_chunk_events,
        top_n=settings.drift_top_n,
        ctr_block=settings.drift_ctr_block,
        max_events=settings.drift_events_kept,
        on_drift=alerts.drift,
        on_signal=on_signal,
        detect=settings.drift_detection,
    )
