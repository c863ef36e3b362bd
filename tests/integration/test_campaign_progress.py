"""Live progress of campaign runs end to end: api, scheduler, a bulk sender and provider-sim
limited to 30 messages/s (the sender's budget too).

- A run that cannot meet its deadline (900 recipients, 20 s, ``send_late``) raises
  ``campaign.at_risk`` once for its zone, ``GET …/runs`` shows its zone projected after the
  deadline, the scheduler's ``hexcast_campaign_projected_late_seconds`` says how late, and
  ``hexcast campaign status --watch`` (a real CLI process) exits when the run is finished.
- A run that can meet its deadline never raises it, ends ``finished`` with its counts, and
  ``campaign.finished`` is written once.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from hexcast.testing import (
    CAMPAIGN_PROCESSES,
    Stack,
    TenantRef,
    eventually,
    fetch_rows,
    make_settings,
    make_tenant,
    running_stack,
)
from tests.integration.webhookkit import add_endpoint

pytestmark = pytest.mark.e2e

PROCESSES = CAMPAIGN_PROCESSES
RATE = 30.0
CONSENT = datetime(2026, 1, 1, tzinfo=UTC)
EVENTS = ["campaign.finished", "campaign.at_risk"]


@pytest.fixture(scope="module")
def stack(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = make_settings(
        broker_url, database_url, provider_rate_per_s=RATE, provider_burst=RATE,
        sim_rate_per_s=RATE, sender_bulk_share=1.0, scheduler_poll_s=0.5,
        campaign_receipt_wait_s=30.0,
    )
    with running_stack(settings, tmp_path_factory.mktemp("logs"), PROCESSES) as running:
        yield running


async def _tenant(dsn: str, n: int, prefix: str, phones: str) -> TenantRef:
    """A tenant subscribed to the campaign events, with ``n`` consenting recipients (their
    numbers start with ``phones``)."""
    conn = await asyncpg.connect(dsn)
    try:
        tenant = await make_tenant(conn, prefix=prefix)
        await add_endpoint(conn, tenant_id=tenant.id, url="http://127.0.0.1:9/", types=EVENTS)
        await conn.copy_records_to_table(
            "recipients", columns=["tenant_id", "user_id", "phone", "time_zone", "consent_at"],
            records=[(tenant.id, f"u{i}", f"{phones}{i:06d}", "UTC", CONSENT)
                     for i in range(n)])
        return tenant
    finally:
        await conn.close()


async def _events(dsn: str, tenant_id: int) -> list[tuple[str, dict[str, Any]]]:
    rows = await fetch_rows(dsn, "SELECT type, payload::text AS payload FROM webhook_outbox"
                            " WHERE tenant_id = $1 ORDER BY id", tenant_id)
    return [(r["type"], json.loads(r["payload"])["data"]) for r in rows]


def _start_now(api: httpx.Client, deadline_s: float, on_deadline: str) -> dict[str, Any]:
    """A one-shot campaign starting now (UTC), its deadline ``deadline_s`` later."""
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    answer = api.post("/v1/campaigns", json={
        "name": "progress", "body": "Hi, 20% off today", "segment": {"everyone": True},
        "run_at": now.isoformat(), "deadline": (now + timedelta(seconds=deadline_s)).isoformat(),
        "time_zone": "UTC", "on_deadline": on_deadline})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _run(api: httpx.Client, campaign_id: int) -> dict[str, Any] | None:
    runs = api.get(f"/v1/campaigns/{campaign_id}/runs").json()
    return runs[-1] if runs else None


def _finished(api: httpx.Client, campaign_id: int) -> dict[str, Any] | None:
    run = _run(api, campaign_id)
    return run if run is not None and run["finished_at"] is not None else None


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _at_risk_wave(api: httpx.Client, campaign_id: int) -> dict[str, Any] | None:
    run = _run(api, campaign_id)
    return next((w for w in run["waves"] if w["at_risk"]), None) if run else None


def _late(stack: Stack, tenant_id: int, campaign_id: int) -> dict[Any, float] | None:
    """The scheduler's projected lateness of the campaign's zones, once one is late."""
    found = stack.scrape("scheduler").select("hexcast_campaign_projected_late_seconds",
                                             tenant=str(tenant_id), campaign=str(campaign_id))
    return found if any(v > 0 for v in found.values()) else None


def _watch(stack: Stack, campaign_id: int) -> subprocess.Popen[str]:
    env = {**stack.settings.to_env(), "HEXCAST_LOG_LEVEL": "warning", "NO_COLOR": "1",
           "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "hexcast", "campaign", "status",
                             str(campaign_id), "--watch", "0.5"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_run_that_cannot_meet_its_deadline_is_at_risk_once(stack: Stack) -> None:
    dsn = stack.settings.database_url
    tenant = asyncio.run(_tenant(dsn, 450, "atrisk", "+13125"))  # 15 s at RATE
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": tenant.api_key},
                      timeout=30) as api:
        campaign = _start_now(api, deadline_s=10, on_deadline="send_late")
        eventually(lambda: _run(api, campaign["id"]), timeout=30)
        watch = _watch(stack, campaign["id"])
        wave = eventually(lambda: _at_risk_wave(api, campaign["id"]), timeout=60)
        assert _at(wave["projected_finish_at"]) > _at(wave["deadline_at"])
        assert wave["remaining"] > 0
        assert wave["measured_rate_per_s"] > 0
        late = eventually(lambda: _late(stack, tenant.id, campaign["id"]), timeout=30)
        assert list(late) == [(("campaign", str(campaign["id"])), ("tenant", str(tenant.id)),
                               ("zone", "UTC"))]
        run = eventually(lambda: _finished(api, campaign["id"]), timeout=120)
        out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    assert f"run {run['id']}" in out
    assert run["state"] == "finished"
    assert run["counts"] == {"delivered": 450}
    assert run["waves"][0]["at_risk_at"] is not None
    events = asyncio.run(_events(dsn, tenant.id))
    assert [(t, d["campaign_run_id"]) for t, d in events] == [
        ("campaign.at_risk", run["id"]), ("campaign.finished", run["id"])]
    at_risk = events[0][1]
    assert at_risk["remaining"] > 0
    assert _at(at_risk["projected_finish_at"]) > _at(at_risk["deadline_at"])


def test_a_run_that_meets_its_deadline_finishes_once_and_is_never_at_risk(stack: Stack) -> None:
    dsn = stack.settings.database_url
    tenant = asyncio.run(_tenant(dsn, 60, "ontime", "+13126"))
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": tenant.api_key},
                      timeout=30) as api:
        campaign = _start_now(api, deadline_s=600, on_deadline="expire")
        run = eventually(lambda: _finished(api, campaign["id"]), timeout=90)
        stats = api.get(f"/v1/campaigns/{campaign['id']}/stats").json()["runs"][0]
    assert run["state"] == "finished"
    assert run["counts"] == stats["states"] == {"delivered": 60}
    assert [w["at_risk_at"] for w in run["waves"]] == [None]
    events = asyncio.run(_events(dsn, tenant.id))
    assert [t for t, _ in events] == ["campaign.finished"]
    assert events[0][1]["counts"] == {"delivered": 60}
    assert events[0][1]["released"] == 60
