from __future__ import annotations

import json
import time

import pytest

from freshrec.errors import BadRequest, PayloadTooLarge
from freshrec.events import EVENT_TYPES, EventType, EventValidator

NOW = 1_700_000_000.0


@pytest.fixture
def validator() -> EventValidator:
    return EventValidator(now=lambda: NOW)


def ok(**overrides: object) -> dict[str, object]:
    return {"type": "view", "user_id": "u1", "item_id": "i1", **overrides}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (ok(type="teleport"), "type"),
        ({"type": "view", "item_id": "i1"}, "user_id"),
        (ok(user_id=""), "user_id"),
        (ok(item_id=""), "item_id"),
        ({"type": "view", "user_id": "u"}, "item_id"),
        (ok(user_id="x" * 257), "user_id"),
        (ok(item_id="x" * 300), "item_id"),
        (ok(user_id=42), "user_id"),
        (ok(item_id=["a"]), "item_id"),
        (ok(timestamp=NOW + 2 * 86_400), "timestamp"),
        (ok(timestamp="2030-13-01T00:00:00Z"), "timestamp"),
        (ok(timestamp="2023-01-01T00:00:00"), "timestamp"),
        (ok(timestamp=-5), "timestamp"),
        (ok(context={f"k{i}": i for i in range(65)}), "context"),
        (ok(event_id="e" * 257), "event_id"),
        (ok(userId="u1"), "userId"),
        (ok(value="high"), "value"),
    ],
)
def test_each_rejection_names_the_field(validator: EventValidator, event: dict, field: str) -> None:
    batch = validator.validate_many([event])
    assert batch.events == []
    ((index, reason),) = batch.errors
    assert index == 0
    assert reason.startswith(f"{field}:"), reason


def test_valid_events_are_normalised(validator: EventValidator) -> None:
    batch = validator.validate_many(
        [
            ok(timestamp="2023-11-14T22:13:20Z", context={"device": "mobile"}, event_id="e1"),
            ok(type="purchase", timestamp=NOW - 5, value=19.9),
            ok(),
        ]
    )
    assert batch.errors == []
    first, second, third = batch.events
    assert first.ts == pytest.approx(NOW) and first.type == EventType.view
    assert first.context == {"device": "mobile"} and first.event_id == "e1"
    assert second.type == EventType.purchase and second.value == 19.9
    assert third.ts == NOW  # no timestamp = server time


def test_limits_are_inclusive(validator: EventValidator) -> None:
    batch = validator.validate_many(
        [ok(user_id="x" * 256, timestamp=NOW + 86_400, context={f"k{i}": i for i in range(64)})]
    )
    assert batch.errors == [] and len(batch.events) == 1


def test_every_event_type_is_accepted(validator: EventValidator) -> None:
    batch = validator.validate_many([ok(type=t) for t in EVENT_TYPES])
    assert batch.errors == [] and [e.type for e in batch.events] == list(range(len(EVENT_TYPES)))


def test_json_batch_keeps_valid_events_and_lists_invalid(validator: EventValidator) -> None:
    body = json.dumps({"events": [ok(), ok(type="nope"), ok(item_id=7), ok(item_id="i2")]})
    batch = validator.validate_json(body.encode(), max_batch=10)
    assert [e.item_id for e in batch.events] == ["i1", "i2"]
    assert [i for i, _ in batch.errors] == [1, 2]


def test_json_single_event(validator: EventValidator) -> None:
    batch = validator.validate_json(json.dumps(ok()).encode(), max_batch=10)
    assert len(batch.events) == 1 and batch.errors == []


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (b"{not json", BadRequest, "not valid JSON"),
        (b"[1, 2]", BadRequest, "body: expected an event object"),
        (b'{"events": 5}', BadRequest, "events"),
        (b'{"events": []}', BadRequest, "empty"),
        (b'{"events": [], "extra": 1}', BadRequest, "extra"),
    ],
)
def test_bad_bodies(validator: EventValidator, body: bytes, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        validator.validate_json(body, max_batch=10)


def test_batch_over_the_limit(validator: EventValidator) -> None:
    body = json.dumps({"events": [ok()] * 11}).encode()
    with pytest.raises(PayloadTooLarge, match="over the limit of 10"):
        validator.validate_json(body, max_batch=10)


def test_real_clock_default() -> None:
    (event,) = EventValidator().validate_many([ok()]).events
    assert abs(event.ts - time.time()) < 60
