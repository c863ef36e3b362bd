"""A paced campaign fills provider batches: the scheduler cuts its chunks to whole pacing
windows (rate × 1 s) and the sender sends a window a call, so a run capped at 800 messages/s on a batch
route makes about one provider call a second, not one per few messages (19,415 calls for
100,000 recipients before). Counted by the provider simulator, which counts every request.

The issue's scenario is 100,000 recipients at 800/s (125 s); this runs 8,000 (10 s) against
the same bound, calls <= recipients / 800 x 1.1. The account's burst is a second of its rate (as
in a routes file): a window never exceeds what the account itself may take at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from hexcast.testing import (
    CAMPAIGN_PROCESSES,
    Stack,
    TenantRef,
    eventually,
    make_settings,
    make_tenant,
    running_stack,
)

pytestmark = pytest.mark.e2e

PROCESSES = CAMPAIGN_PROCESSES
AUDIENCE = 8_000
RATE = 800.0
PREFIX = "+4477009"


async def _audience(dsn: str, tenant_id: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "recipients", columns=["tenant_id", "user_id", "phone", "time_zone", "consent_at"],
            records=[(tenant_id, f"u{i}", f"{PREFIX}{i:07d}", "America/Chicago",
                      datetime(2026, 1, 1, tzinfo=UTC)) for i in range(AUDIENCE)])
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def world(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Stack, TenantRef]]:
    tenant = asyncio.run(make_tenant(database_url, prefix="batching"))
    asyncio.run(_audience(database_url, tenant.id))
    settings = make_settings(broker_url, database_url, provider_rate_per_s=5000.0, provider_burst=5000.0,
                             sim_rate_per_s=100_000.0, scheduler_poll_s=0.5)
    with running_stack(settings, tmp_path_factory.mktemp("batching"), PROCESSES) as stack:
        yield stack, tenant


def test_a_paced_run_sends_a_window_a_call(world: tuple[Stack, TenantRef]) -> None:
    stack, tenant = world
    sim = httpx.Client(base_url=stack.sim_url, timeout=30)
    before = sim.get("/ledger/stats").json()["requests"]
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": tenant.api_key},
                      timeout=30) as api:
        made = api.post("/v1/campaigns", json={
            "name": "Cyber Monday", "body": "Cyber Monday: 20% off all day. Reply STOP to opt out.",
            "segment": {"everyone": True}, "run_at": "2030-12-02T09:00:00",
            "time_zone": "America/Chicago", "max_rate": RATE})
        assert made.status_code == 201, made.text
        run = api.post(f"/v1/campaigns/{made.json()['id']}/run-now")
        assert run.status_code == 201, run.text
        assert run.json()["rate_per_s"] == pytest.approx(RATE)

    def sent() -> int | None:
        n: int = sim.get("/ledger/stats").json()["total"]
        return n if n >= AUDIENCE else None

    eventually(sent, timeout=180)
    calls = sim.get("/ledger/stats").json()["requests"] - before
    print(f"{AUDIENCE} recipients at {RATE:.0f}/s in {calls} provider calls")
    assert calls <= AUDIENCE / RATE * 1.1
