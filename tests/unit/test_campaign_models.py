"""Campaign schemas, chunk records and previews. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from scheduler.models import CampaignCreate
from scheduler.preview import build_preview
from scheduler.service import Campaign, Fire, ZoneCount, chunk_key, chunk_record
from scheduler.timing import localize
from sender.capacity import LaneCapacity, RouteCapacity
from sender.keys import bulk_key
from sender.models import Lane
from targeting.segments import SegmentDefinition, is_holdout

BASE = {"name": "x", "body": "Hi {first_name}", "segment": {"everyone": True},
        "run_at": "2030-11-26T09:00:00", "time_zone": "America/Chicago"}


def test_aware_times_become_wall_times_in_the_campaign_zone() -> None:
    made = CampaignCreate.model_validate({**BASE, "run_at": "2030-11-26T15:00:00Z",
                                          "deadline": "2030-11-26T23:59:00"})
    assert made.run_at == datetime(2030, 11, 26, 9)  # 15:00Z is 09:00 CST
    assert made.first_instant() == datetime(2030, 11, 26, 15, tzinfo=UTC)


@pytest.mark.parametrize(("change", "needle"), [
    ({"cron": "0 9 * * *"}, "exactly one of cron or run_at"),
    ({"body": None}, "exactly one of template_id or body"),
    ({"body": "Hi {first_name!r}"}, "plain field name"),
    ({"deadline": "2030-11-26T09:00:00"}, "deadline"),
])
def test_campaign_shape_errors(change: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        CampaignCreate.model_validate({**BASE, **change})


@settings(max_examples=60, deadline=None)
@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2040, 1, 1)),
       st.sampled_from(sorted(available_timezones())), st.sampled_from(["fixed", "recipient_local"]))
def test_no_zone_reaches_the_first_start_after_last_start(
    wall: datetime, zone: str, mode: str
) -> None:
    """A one-shot start is refused once it has passed everywhere it applies: no zone (DST
    folds and gaps included) reaches that wall time later than ``last_start``."""
    made = CampaignCreate.model_validate({**BASE, "run_at": wall.isoformat(), "time_zone": zone,
                                          "time_mode": mode})
    zones = [zone] if mode == "fixed" else sorted(available_timezones())
    reached = max(localize(made.first_wall(), ZoneInfo(z)) for z in zones)
    assert reached <= made.last_start()
    if mode == "fixed":
        assert made.last_start() == made.first_instant()


def _campaign() -> Campaign:
    return Campaign(id=3, tenant_id=9, body="Hi {first_name}!", segment=SegmentDefinition(everyone=True),
                    cron=None, run_at=datetime(2030, 11, 26, 9), time_zone="America/Chicago",
                    time_mode="recipient_local", deadline=None, max_rate=None, lane=Lane.BULK,
                    created_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_chunk_record_renders_each_recipient_with_bulk_keys() -> None:
    rows = [{"id": 5, "user_id": "u5", "phone": "+13125550005", "first_name": "Ann"},
            {"id": 6, "user_id": "u6", "phone": "+13125550006", "first_name": None}]
    record = chunk_record(_campaign(), run_id=77, rows=rows, now=datetime(2030, 1, 1, tzinfo=UTC))
    assert [i.body for i in record.items] == ["Hi Ann!", "Hi !"]
    assert [i.message_key for i in record.items] == [bulk_key(campaign_run_id=77, recipient_id=5),
                                                     bulk_key(campaign_run_id=77, recipient_id=6)]
    assert {i.campaign_run_id for i in record.items} == {77}
    assert record.lane is Lane.BULK
    assert chunk_key(77, 1, 0) == chunk_key(77, 1, 0) != chunk_key(77, 1, 1000)


def test_preview_sums_zones_and_costs_segments() -> None:
    c = _campaign()
    wall = datetime(2030, 11, 26, 9)
    zones = [ZoneCount("America/Chicago", 100, 5), ZoneCount("Asia/Kolkata", 50, 2)]
    preview = build_preview(c, Fire(wall, wall.replace(tzinfo=ZoneInfo("Etc/GMT-14")).astimezone(UTC)),
                            zones, capacity=LaneCapacity(Lane.BULK, (RouteCapacity("a", 50.0),)))
    assert (preview.audience, preview.holdout, preview.sendable) == (150, 7, 143)
    assert preview.cost_units == 143 * preview.segments_per_message
    assert preview.capacity_per_s == 50.0
    assert [r.planned_segments for r in preview.routes] == [preview.cost_units]
    assert preview.meets_deadline
    starts = {z.time_zone: z.starts_at for z in preview.zones}
    assert starts["Asia/Kolkata"] == datetime(2030, 11, 26, 3, 30, tzinfo=UTC)
    assert starts["America/Chicago"] == datetime(2030, 11, 26, 15, tzinfo=UTC)


def test_holdout_share_is_close_to_the_percentage() -> None:
    held = sum(is_holdout(campaign_id=1, recipient_id=r, pct=5) for r in range(20_000))
    assert 800 < held < 1200
    assert sum(is_holdout(campaign_id=1, recipient_id=r, pct=0) for r in range(1000)) == 0


def test_openapi_lists_campaign_endpoints_with_the_marketer_scope() -> None:
    from hexcast.api import create_app
    from hexcast.core.settings import load_settings

    spec = create_app(load_settings()).openapi()
    ours = {path: ops for path, ops in spec["paths"].items()
            if path.startswith(("/v1/campaigns", "/v1/templates", "/v1/recipients"))}
    assert {"/v1/campaigns/{campaign_id}/preview", "/v1/campaigns/{campaign_id}/stats",
            "/v1/campaigns/{campaign_id}/pause", "/v1/recipients/import"} <= set(ours)
    for path, ops in ours.items():
        for method, op in ops.items():
            assert {"APIKeyHeader": ["marketer"]} in op.get("security", []), (method, path)
    post = spec["paths"]["/v1/campaigns"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in post["parameters"]}
    assert "text/csv" in spec["paths"]["/v1/recipients/import"]["post"]["requestBody"]["content"]


def test_upcoming_fire_for_previews() -> None:
    from dataclasses import replace

    from scheduler.service import upcoming_fire

    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    one_shot = _campaign()
    fire = upcoming_fire(one_shot, now=now)
    assert fire is not None
    assert fire.scheduled_for == datetime(2030, 11, 26, 9)
    cron = replace(one_shot, cron="0 9 * * *", run_at=None, time_mode="fixed")
    fire = upcoming_fire(cron, now=now)
    assert fire is not None
    assert fire.first_fire_at == datetime(2026, 11, 22, 15, tzinfo=UTC)  # 09:00 CST today
    ended = replace(cron, deadline=datetime(2026, 11, 22, 8))
    assert upcoming_fire(ended, now=now) is None
