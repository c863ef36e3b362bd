"""A tenant's own window and caps through the real sender (read from ``tenants`` by the bulk
worker): a narrower window defers what the default tenant sends now; cap_per_day=1 holds the
second marketing message of the day, while the default caps let it go.

The number is picked at run time among zones around the globe: one whose local time is well
inside the legal window now, so that a tenant window of 08:00-08:05 is surely closed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest

from hexcast.testing import eventually, make_tenant
from sender.keys import bulk_key
from sender.quiet import zones_for
from tests.integration.senderkit import SenderWorld, ledger, providers_json, sender_world

pytestmark = pytest.mark.e2e

CANDIDATES = ["+13125550100", "+12125550100", "+12135550100", "+18085550100", "+442071234567",
              "+81312345678", "+61291234567", "+919876543210"]


def _awake(now: datetime) -> str:
    """A number with one zone whose local time is between 08:15 and 20:45 now."""
    def ok(phone: str) -> bool:
        zones = zones_for(phone)
        return len(zones) == 1 and time(8, 15) <= now.astimezone(zones[0]).time() <= time(20, 45)

    awake = [p for p in CANDIDATES if ok(p)]
    assert awake, "some zone is always well inside its day"
    return awake[0]


def _tenant(world: SenderWorld, prefix: str, sql: str, *args: object) -> int:
    tenant = asyncio.run(make_tenant(world.settings.database_url, prefix=prefix))
    world.scalar(f"UPDATE tenants SET {sql} WHERE id = $1", tenant.id, *args)
    return tenant.id


def _publish_as(world: SenderWorld, tenant_id: int, phones: dict[int, str], run_id: int) -> None:
    default = world.tenant_id
    world.tenant_id = tenant_id
    try:
        world.publish_to(phones, run_id=run_id)
    finally:
        world.tenant_id = default


def _state(world: SenderWorld, run_id: int, n: int) -> str | None:
    return (world.message(bulk_key(campaign_run_id=run_id, recipient_id=n)) or {}).get("state")


def test_tenant_window_and_caps_hold_what_the_defaults_send(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path, sender_quiet_hours=True) as world:
        sim = world.sim("provider-sim")
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "acct", "url": sim, "token": "sim-token"})})
        phone = _awake(datetime.now(UTC))
        narrow = _tenant(world, "narrow", "quiet_start = $2, quiet_end = $3", time(8), time(8, 5))
        capped = _tenant(world, "capped", "cap_per_day = $2", 1)
        world.sender("sender-bulk")  # after the settings: its cache starts empty anyway

        world.publish_to({1: phone, 2: phone}, run_id=21)  # the default tenant: caps of 3
        _publish_as(world, narrow, {1: phone}, run_id=22)
        _publish_as(world, capped, {1: phone, 2: phone}, run_id=23)

        eventually(lambda: all(_state(world, 21, n) == "accepted" for n in (1, 2)) or None,
                   timeout=60)
        held = eventually(lambda: _held(world, 22, 1), timeout=60)
        assert str(held["reason"]).startswith("quiet hours (tenant window 08:00-08:05) until ")
        assert held["not_before"] > datetime.now(UTC)

        eventually(lambda: {_state(world, 23, n) for n in (1, 2)} == {"accepted", "deferred"}
                   or None, timeout=60)
        capped_row = next(r for n in (1, 2)
                          if (r := world.message(bulk_key(campaign_run_id=23, recipient_id=n)))
                          and r["state"] == "deferred")
        assert str(capped_row["reason"]).startswith("recipient cap until ")
        sent = ledger(sim)
        assert [i["to"] for i in sent] == [phone] * 3  # two of the default tenant, one capped


def _held(world: SenderWorld, run_id: int, n: int) -> dict[str, Any] | None:
    row = world.message(bulk_key(campaign_run_id=run_id, recipient_id=n))
    return row if row is not None and row["state"] == "deferred" else None
