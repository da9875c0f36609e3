"""Context enrichment: device, country, local time, price and category as small ids."""

from freshrec.features.context import (
    DEVICES,
    WEEKDAYS,
    Context,
    ContextColumns,
    country_code,
    enrich,
    enrich_many,
)

__all__ = [
    "DEVICES",
    "WEEKDAYS",
    "Context",
    "ContextColumns",
    "country_code",
    "enrich",
    "enrich_many",
]
