"""Input schemas reject bad input with messages naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from hexcast.core.errors import ConfigError
from hexcast.core.settings import load_settings
from sender.models import DeliveryBatch, DeliveryEvent, Lane, MessageState, SendBatch, delivery_records
from streams.models import VisitBatchIn, VisitIn
from targeting.models import PromotionCreate, RecipientCreate, StoreCreate

NOW = datetime.now(UTC)


def _visit(**over: object) -> dict[str, object]:
    return {"event_id": "e1", "user_id": "u1", "lat": 41.0, "lng": -87.0, "ts": NOW.isoformat(),
            **over}


@pytest.mark.parametrize(
    ("field", "value"),
    [("lat", 91), ("lat", -90.5), ("lng", 181), ("accuracy_m", 0), ("event_id", ""),
     ("ts", "2026-01-01T00:00:00"), ("ts", (NOW + timedelta(hours=1)).isoformat())],
)
def test_visit_rejects_out_of_range(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        VisitIn.model_validate(_visit(**{field: value}))
    assert info.value.errors()[0]["loc"] == (field,)


def test_visit_rejects_unknown_fields_and_oversize_batches() -> None:
    with pytest.raises(ValidationError, match="extra"):
        VisitIn.model_validate(_visit(speed=3))
    with pytest.raises(ValidationError, match="1000"):
        VisitBatchIn.model_validate({"events": [_visit(event_id=str(i)) for i in range(1001)]})


def test_recipient_phone_and_zone_validated() -> None:
    ok = RecipientCreate(user_id="u", phone="+1 312 200 0001", time_zone="America/Chicago")
    assert ok.phone == "+13122000001"
    with pytest.raises(ValidationError, match="E.164"):
        RecipientCreate(user_id="u", phone="not a phone")
    with pytest.raises(ValidationError, match="time zone"):
        RecipientCreate(user_id="u", phone="+13122000001", time_zone="Mars/Olympus")


def test_store_and_promotion_rules() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        StoreCreate(name="s", lat=1, lng=1, time_zone="Nowhere",
                    geofence={"type": "circle", "radius_m": 100})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="valid_until is before valid_from"):
        PromotionCreate(store_id=1, name="p", body="b", valid_from="2026-12-02",  # type: ignore[arg-type]
                        valid_until="2026-12-01")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="lowercase path"):
        PromotionCreate(store_id=1, name="p", body="b", interests=["Electronics!!"])
    with pytest.raises(ValidationError):
        PromotionCreate(store_id=1, name="p", body="")


def test_send_batch_caps_chunk_size() -> None:
    item = {"message_key": "geo-12345678", "tenant_id": 1, "phone": "+13122000001", "body": "x"}
    with pytest.raises(ValidationError):
        SendBatch.model_validate({"lane": "bulk", "items": [item] * 1001, "created_at": NOW})
    assert SendBatch.decode(SendBatch.model_validate(
        {"lane": "geo", "items": [item], "created_at": NOW}).encode()).items[0].phone == "+13122000001"


def test_bad_settings_fail_fast_with_the_variable_name() -> None:
    with pytest.raises(ConfigError, match="HEXCAST_BROKER_URL"):
        load_settings(broker_url="http://nope")
    with pytest.raises(ConfigError, match="HEXCAST_API_PORT"):
        load_settings(api_port=70000)


def test_delivery_records_batch_per_tenant_and_round_trip() -> None:
    """A chunk's events become one record per tenant (at most 1,000 events each), not one
    record per message; decoding gives the events back in order."""
    events = [DeliveryEvent(message_key=f"bulk-{n:06d}", tenant_id=1 + n % 2, lane=Lane.BULK,
                            state=MessageState.ACCEPTED, at=NOW) for n in range(2_500)]
    records = delivery_records(events)
    assert [(key, len(DeliveryBatch.decode(value).events)) for key, value in records] == [
        ("1", 1000), ("1", 250), ("2", 1000), ("2", 250)]
    decoded = [e for _, value in records for e in DeliveryBatch.decode(value).events]
    assert sorted(decoded, key=lambda e: e.message_key) == events
    assert delivery_records([]) == []
    with pytest.raises(ValidationError):
        DeliveryBatch(events=[])
