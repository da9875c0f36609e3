"""One typed settings object: flags, then ``FRESHREC_*`` environment variables, then defaults.

>>> s = Settings(popularity_half_life_seconds=60)
>>> s.popularity_half_life_seconds, s.type_weight_vector()[:2]
(60.0, [1.0, 2.0])
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pydantic
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from freshrec.events import EVENT_TYPES

DEFAULT_TYPE_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "favorite": 3.0,
    "add_to_cart": 4.0,
    "remove_from_cart": 0.0,
    "purchase": 8.0,
    "impression": 0.0,
    "rating": 2.0,
}


class Settings(BaseSettings):
    """Every tunable of an engine and its server, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="FRESHREC_", extra="forbid")

    data_dir: Path | None = Field(
        None, description="Where the log and snapshots live; None = memory."
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port the HTTP server binds.")

    max_body_bytes: int = Field(1_048_576, gt=0, description="Largest accepted request body.")
    max_batch_events: int = Field(10_000, gt=0, description="Most events in one POST.")
    dedup_max_ids: int = Field(10_000_000, gt=0, description="event_ids remembered (per window).")
    dedup_window_seconds: float = Field(7 * 86_400.0, gt=0, description="Age of the dedup window.")

    session_gap_seconds: float = Field(1800.0, gt=0, description="Inactivity that ends a session.")
    recent_items: int = Field(20, ge=1, le=256, description="Recent items kept per user.")
    session_window: int = Field(
        10, ge=1, le=64, description="Earlier session items paired per event."
    )
    type_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_TYPE_WEIGHTS),
        description="Weight of each event type in the models.",
    )

    popularity_half_life_seconds: float = Field(
        3 * 86_400.0, gt=0, description="Event-time half-life of popularity."
    )
    covis_half_life_seconds: float = Field(
        60 * 86_400.0, gt=0, description="Event-time half-life of co-visitation."
    )
    covis_neighbours: int = Field(256, ge=1, le=1024, description="Partners kept per item.")
    covis_backward_weight: float = Field(0.5, ge=0, description="Weight of 'j then r' links.")
    covis_row_exponent: float = Field(
        0.75,
        ge=0,
        le=1,
        description="A partner's weight is divided by its row's total to this power (1: rows "
        "sum to 1; lower: a busy item's partners count for more).",
    )
    covis_distance_exponent: float = Field(
        0.5,
        ge=0,
        description="A link between two items of a session weighs their distance in it "
        "(1 = next to each other) to minus this.",
    )
    covis_source_exponent: float = Field(
        1.0,
        ge=0,
        description="The user's recent item at position p (0 = latest) weighs (1 + p) to minus "
        "this when co-visitation gathers candidates.",
    )
    mf_factors: int = Field(64, ge=1, le=1024, description="Latent factors of the online MF.")
    mf_learning_rate: float = Field(0.08, gt=0, le=1, description="SGD step of the online MF.")
    mf_regularization: float = Field(0.01, ge=0, le=1, description="L2 penalty of the online MF.")
    mf_loss: Literal["bpr", "isgd", "isgd_neg"] = Field("bpr", description="Online MF loss.")
    mf_negatives: int = Field(4, ge=0, le=64, description="Sampled negatives per positive event.")
    mf_negative_oversampling: int = Field(
        2,
        ge=1,
        le=16,
        description="The online MF draws this many times mf_negatives items per positive event "
        "and learns from the mf_negatives it scores highest (1: every draw, plain sampling).",
    )
    mf_recent_mix: float = Field(
        0.7, ge=0, le=1, description="Share of the recent-items fold-in in the user vector."
    )
    mf_seed: int = Field(0, ge=0, description="Seed of the online MF (initial factors, negatives).")
    ranker_factors: int = Field(8, ge=1, le=256, description="Factors of the context FM ranker.")
    ranker_hash_bits: int = Field(18, ge=10, le=26, description="log2 of the FM's hashed rows.")
    ranker_learning_rate: float = Field(0.05, gt=0, le=1, description="SGD step of the ranker.")
    ranker_regularization: float = Field(1e-5, ge=0, le=1, description="L2 penalty of the ranker.")
    ranker_negatives: int = Field(2, ge=1, le=64, description="Sampled negatives per positive.")
    ranker_hour_buckets: int = Field(8, ge=1, le=24, description="Time-of-day buckets.")
    ranker_seed: int = Field(0, ge=0, description="Seed of the ranker.")
    category_window: int = Field(
        8, ge=0, le=64, description="Recent categories kept per user (ranker recency feature)."
    )
    trusted_country_header: str | None = Field(
        None, description="Request header trusted for the shopper's country (e.g. CF-IPCountry)."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Shop origins whose pages may call the API (browser SDK), e.g. "
        '["https://shop.example"]; ["*"] = any; empty = none.',
    )
    exclude_recent: int = Field(
        0, ge=0, le=256, description="The user's latest items never recommended (0 = none)."
    )
    ensemble_priors: dict[str, float] = Field(
        default_factory=lambda: {"popularity": 0.05, "covisitation": 1.0, "mf": 0.5, "ranker": 0.5},
        description="Prior weight of each ensemble member (before live quality).",
    )
    ensemble_eta: float = Field(10.0, ge=0, description="How sharply weights follow hit rates.")
    ensemble_min_weight: float = Field(0.02, ge=0, lt=1, description="Floor of a member's weight.")
    ensemble_temperature: float = Field(
        2.0, gt=0, description="Softmax temperature of logit members (MF, ranker) in the blend."
    )
    live_eval_k: int = Field(10, ge=1, le=1000, description="Top-k of live hit-rate tests.")
    live_eval_every: int = Field(1000, ge=1, description="Test one event in this many (by offset).")
    live_eval_window: int = Field(200, ge=1, description="Tests in the hit-rate window.")

    blas_threads: int = Field(
        1, ge=0, le=256, description="BLAS threads for scoring (0 = the library's default)."
    )
    processor_batch_events: int = Field(
        5_000, gt=0, description="Events per processor micro-batch."
    )
    processor_idle_seconds: float = Field(
        0.01, gt=0, description="Processor poll interval when idle."
    )
    snapshot_every_events: int = Field(
        1_000_000, gt=0, description="Snapshot after this many events."
    )
    snapshot_every_seconds: float = Field(60.0, gt=0, description="... or after this long.")
    snapshots_kept: int = Field(2, ge=1, description="Snapshots kept on disk.")
    snapshot_in_background: bool = Field(
        True,
        description="Periodic snapshots written by a forked child (copy-on-write, Linux): the "
        "processor goes on at once instead of waiting for the write.",
    )

    # -- scale-out mode (Redis): freshrec serve --redis-url / freshrec worker ------------------
    redis_url: str | None = Field(
        None, description="Redis of a scale-out deployment (redis://host:6379/0); None = embedded."
    )
    redis_prefix: str = Field("freshrec:", min_length=1, description="Prefix of every Redis key.")
    redis_partitions: int = Field(
        4, ge=1, le=1024, description="Streams the log is split into by user hash (fixed)."
    )
    redis_timeout_seconds: float = Field(
        1.0, gt=0, description="Redis socket timeout: an outage becomes a 503 this fast."
    )
    redis_read_timeout_seconds: float = Field(
        0.05,
        gt=0,
        description=(
            "Scale-out: a recommendation waits this long for the user's record; after one"
            " such read times out, none is tried for redis_read_pause_seconds (the user is"
            " served as a newcomer)."
        ),
    )
    redis_read_pause_seconds: float = Field(
        1.0, ge=0, description="How long recommendations skip Redis after a read failed."
    )
    worker_lease_seconds: float = Field(
        3.0, gt=0, description="A worker's partition lease; a dead worker's pass on after it."
    )
    worker_read_chunks: int = Field(
        32, ge=1, description="Stream entries (appended batches) a worker reads at once."
    )
    worker_trim_seconds: float = Field(
        10.0, gt=0, description="How often workers trim what every reader has done with."
    )
    scaleout_publish_seconds: float = Field(
        1.0, gt=0, description="How often workers publish item-side model snapshots."
    )
    scaleout_snapshot_seconds: float = Field(
        10.0, gt=0, description="How often workers save a partition's full snapshot (takeover)."
    )
    scaleout_context_publish_seconds: float = Field(
        10.0,
        gt=0,
        description="How often workers publish a partition's cold-start table (context "
        "and profile popularity, trending) for the replicas.",
    )
    serving_poll_seconds: float = Field(
        0.25, gt=0, description="How often replicas look for newer model snapshots."
    )
    archive: bool = Field(
        True, description="Workers append processed events to Parquet under data_dir/archive."
    )
    archive_flush_rows: int = Field(
        50_000, gt=0, description="Rows buffered before a Parquet file is written."
    )
    archive_flush_seconds: float = Field(5.0, gt=0, description="... or after this long.")
    archive_queue_chunks: int = Field(
        1024, gt=0, description="Chunks waiting for the archive writer (bounds its memory)."
    )
    # -- serving a shop (issue 6): catalogue, filters, cold start, cache, fallback, A/B tests --
    max_catalogue_batch: int = Field(10_000, gt=0, description="Most items in one POST /v1/items.")
    filter_unavailable: bool = Field(
        True, description="Shop rule: never recommend items the catalogue marks unavailable."
    )
    exclude_purchased: bool = Field(
        True, description="Leave out what the user bought unless a request says otherwise."
    )
    excluded_categories: list[str] = Field(
        default_factory=list, description="Shop rule: categories never recommended."
    )
    max_per_category: int = Field(
        0, ge=0, le=1000, description="Default diversity: most items per category (0 = no limit)."
    )
    new_item_slots: int = Field(
        1, ge=0, le=100, description="Places in a list for new catalogue items (content-based)."
    )
    context_popularity_half_life_seconds: float = Field(
        86_400.0, gt=0, description="Event-time half-life of per-context popularity."
    )
    trending_half_life_seconds: float = Field(
        3_600.0, gt=0, description="Event-time half-life of 'trending now'."
    )
    context_popularity_max_keys: int = Field(
        128, ge=1, le=4096, description="Context and profile keys counted (cold start)."
    )
    recommend_budget_ms: float = Field(
        20.0, gt=0, description="Time budget of a model's ranking; then popular items instead."
    )
    recommend_workers: int = Field(
        2, ge=1, le=64, description="Threads that rank under the budget while the engine is busy."
    )
    cache_max_entries: int = Field(
        100_000, ge=0, description="Cached responses (per user and context; 0 = no cache)."
    )
    cache_ttl_seconds: float = Field(
        30.0, gt=0, description="Age after which a cached response is recomputed anyway."
    )
    feedback_max_responses: int = Field(
        200_000, ge=1, description="Recent responses remembered for click attribution."
    )
    grpc_port: int | None = Field(
        None, ge=0, le=65535, description="Port of the gRPC API on the same host; None = off."
    )
    experiment_arms: dict[str, float] = Field(
        default_factory=dict,
        description="A/B test from settings: strategy -> percent of users (e.g. ensemble: 50).",
    )
    # -- drift and model lifecycle (freshrec.drift, freshrec.registry) ------------------------
    ensemble_fast_members: dict[str, float] = Field(
        default_factory=lambda: {"popularity": 3600.0},
        description="Fast-decay ensemble members: model kind (popularity, covisitation) -> "
        "event-time half-life in seconds; each adds a member '<kind>_fast'.",
    )
    ensemble_recent_members: dict[str, float] = Field(
        default_factory=dict,
        description="Event-window ensemble members: model kind (popularity, covisitation) -> "
        "half-life in events learned (not seconds); each adds a member '<kind>_recent'.",
    )
    drift_detection: bool = Field(True, description="Run the drift detectors on live signals.")
    drift_recalibrate: bool = Field(True, description="Act on a detection (else only record it).")
    drift_adwin_delta: float = Field(
        0.0005, gt=0, lt=1, description="ADWIN sensitivity (smaller = fewer, later alarms)."
    )
    drift_ph_threshold: float = Field(
        15.0, gt=0, description="Page-Hinkley threshold, in standard deviations of the signal."
    )
    drift_ph_delta: float = Field(
        0.5, ge=0, description="Page-Hinkley tolerated change, in standard deviations."
    )
    drift_chunk_events: int = Field(
        500, ge=10, description="Events per chunk of the stream-level drift signals."
    )
    drift_top_n: int = Field(100, ge=1, description="Popular items of the popularity_hit signal.")
    drift_ctr_block: int = Field(200, ge=1, description="Served lists per CTR value.")
    drift_forget: float = Field(
        0.25, gt=0, le=1, description="On drift: scale decayed models' stored weights (1 = off)."
    )
    drift_keep_events: int = Field(
        10_000,
        ge=0,
        description="On drift: scale them further if need be, so that what they learned before "
        "weighs at most this many events (0 = no cap).",
    )
    drift_shrink_users: float = Field(
        0.5, ge=0, le=1, description="On drift: scale MF user factors (0 = reset, 1 = off)."
    )
    drift_history_weight: float = Field(
        0.0,
        ge=0,
        le=1,
        description="On drift (not a catalogue change): weight of a user's items from before it "
        "as co-visitation sources, until the next detection (0 = ignore them, 1 = off).",
    )
    drift_boost: float = Field(
        4.0, ge=1, description="On drift: multiply fast members' priors (1 = off)."
    )
    drift_boost_events: int = Field(50_000, ge=1, description="Events a prior boost lasts.")
    drift_cooldown_events: int = Field(
        20_000, ge=0, description="Events after an action during which detections only record."
    )
    drift_events_kept: int = Field(1000, ge=1, description="Drift events listed by the API.")
    alert_hit_rate_min: float = Field(
        0.0, ge=0, le=1, description="Alert when the ensemble's live hit rate falls below this."
    )
    alert_ctr_min: float = Field(
        0.0, ge=0, le=1, description="Alert when the CTR of served lists falls below this."
    )
    alert_webhook_url: str | None = Field(
        None, description="POST every alert as JSON to this URL (None = no webhook)."
    )
    registry_gate_events: int = Field(
        20_000, ge=0, description="Held-back events a candidate version is tested on (0 = no gate)."
    )
    registry_gate_every: int = Field(
        100, ge=1, description="Test one held-back event in this many (gate and watch)."
    )
    registry_gate_tolerance: float = Field(
        0.02, ge=0, le=1, description="A candidate's hit rate may be this much below the current."
    )
    registry_gate_min_tests: int = Field(
        30, ge=1, description="Tests a gate or watch needs before it may reject or roll back."
    )
    registry_watch_events: int = Field(
        20_000, ge=0, description="Events the live hit rate is watched after a promotion (0 = off)."
    )
    registry_rollback_drop: float = Field(
        0.1, ge=0, le=1, description="Automatic rollback when the watched hit rate falls this much."
    )
    registry_confidence: float = Field(
        0.95,
        ge=0,
        lt=1,
        description=(
            "Confidence a gate needs that a candidate is worse by more than the tolerance (a"
            " watch: that the hit rate fell by more than the drop) before it rejects (rolls"
            " back); 0.5 or less: the measured difference alone."
        ),
    )
    registry_keep_promoted: int = Field(
        3, ge=2, description="Promoted versions kept as rollback targets (never pruned)."
    )
    # scale-out serving of a shop (catalogue, profiles, experiments shared through Redis)
    shop_poll_seconds: float = Field(
        0.2,
        gt=0,
        le=1.0,
        description="How often replicas take in other replicas' catalogue/profile changes.",
    )
    feedback_response_ttl_seconds: float = Field(
        3_600.0,
        gt=0,
        description="How long a response stays attributable by every replica (scale-out; "
        "kept in Redis, about 300 bytes each).",
    )

    @field_validator("type_weights")
    @classmethod
    def _known_types(cls, value: dict[str, float]) -> dict[str, float]:
        for name, weight in value.items():
            if name not in EVENT_TYPES:
                raise ValueError(f"unknown event type {name!r} (known: {', '.join(EVENT_TYPES)})")
            if not weight >= 0:
                raise ValueError(f"weight of {name!r} must be >= 0")
        return {**DEFAULT_TYPE_WEIGHTS, **value}

    @field_validator("ensemble_fast_members", "ensemble_recent_members")
    @classmethod
    def _fast_kinds(cls, value: dict[str, float]) -> dict[str, float]:
        for kind, half_life in value.items():
            if kind not in ("popularity", "covisitation"):
                raise ValueError(f"unknown fast member {kind!r} (known: popularity, covisitation)")
            if not half_life > 0:
                raise ValueError(f"half-life of {kind!r} must be > 0")
        return value

    @model_validator(mode="after")
    def _window_fits(self) -> Settings:
        if self.session_window > self.recent_items:
            raise ValueError("session_window must not exceed recent_items")
        return self

    def type_weight_vector(self) -> list[float]:
        """Weights indexed by event-type code."""
        return [self.type_weights[name] for name in EVENT_TYPES]


def describe_errors(exc: pydantic.ValidationError) -> str:
    """``port (FRESHREC_PORT): Input should be ... (got 70000)``, one per problem."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        name = str(err["loc"][0]) if err["loc"] else ""
        where = f" (FRESHREC_{name.upper()})" if name else ""
        shown = "input" in err and err["type"] != "extra_forbidden"
        got = f" (got {err['input']!r})" if shown else ""
        parts.append(f"{field}{where}: {err['msg']}{got}")
    return "; ".join(parts)


# FRESHREC_* variables of the project's own tools, not settings: the Redis the tests and the
# benchmarks use
NOT_SETTINGS = frozenset({"FRESHREC_TEST_REDIS_URL", "FRESHREC_BENCH_REDIS_URL"})


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``FRESHREC_*`` variables that are no setting, each with the closest setting if any
    (a typo is otherwise silently ignored).

    >>> unknown_variables({"FRESHREC_PROT": "9000", "FRESHREC_PORT": "1", "HOME": "/",
    ...                    "FRESHREC_TEST_REDIS_URL": "redis://localhost"})
    ['FRESHREC_PROT (did you mean FRESHREC_PORT?)']
    """
    known = {f"FRESHREC_{name.upper()}" for name in Settings.model_fields} | NOT_SETTINGS
    out = []
    for key in sorted(environ):
        if key.startswith("FRESHREC_") and key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            out.append(key + (f" (did you mean {close[0]}?)" if close else ""))
    return out
