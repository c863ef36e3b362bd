"""The campaign deadline is a hard cut-off, end to end: real api, scheduler, bulk sender and
provider-sim, with the simulator and the sender limited to a low rate so a run outlasts its
deadline.

At the deadline the scheduler releases nothing more of the wave (the rest is counted on the
wave), the sender expires what it still holds (reason ``deadline``), the simulator's ledger
holds nothing accepted after the deadline, and the stats add up: sent + expired = audience.
The same across a pause; per zone for a recipient-local campaign (one zone's deadline seconds
away, the others' hours away); ``send_late`` sends after it; a campaign on the geo lane is a 422.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from hexcast.testing import (
    CAMPAIGN_PROCESSES,
    Stack,
    eventually,
    fetch_rows,
    make_settings,
    make_tenant,
    running_stack,
)

pytestmark = pytest.mark.e2e

PROCESSES = CAMPAIGN_PROCESSES
CONSENT = datetime(2026, 1, 1, tzinfo=UTC)
RATE = 10  # the campaigns' max_rate (messages/s): a few hundred recipients outlast seconds
FINAL = {"accepted", "delivered", "failed", "expired", "suppressed", "unknown"}


@pytest.fixture(scope="module")
def stack(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = make_settings(
        broker_url, database_url, provider_rate_per_s=20.0, provider_burst=20.0,
        sim_rate_per_s=20.0, sender_bulk_share=1.0, scheduler_poll_s=0.5, scheduler_lease_s=3.0,
        scheduler_chunk_size=10,  # release paced by the scheduler, not in one chunk
        sender_pause_recheck_s=2.0,  # a paused run's messages are looked at again soon after its resume
    )
    with running_stack(settings, tmp_path_factory.mktemp("logs"), PROCESSES) as running:
        yield running


def _api(stack: Stack, dsn: str) -> tuple[httpx.Client, int]:
    """A client of a new tenant's marketer API, and the tenant's id."""
    tenant = asyncio.run(make_tenant(dsn, prefix="deadline"))
    client = httpx.Client(base_url=stack.api_url, headers={"X-API-Key": tenant.api_key}, timeout=30)
    return client, tenant.id


async def _audience(dsn: str, tenant_id: int, groups: list[tuple[str, str, int]]) -> None:
    """Consenting recipients: ``count`` in ``zone`` with numbers ``prefix``NNNN, per group."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "recipients", columns=["tenant_id", "user_id", "phone", "time_zone", "consent_at"],
            records=[(tenant_id, f"{prefix}-{i}", f"{prefix}{i:04d}", zone, CONSENT)
                     for prefix, zone, count in groups for i in range(count)])
    finally:
        await conn.close()


def _start(stack: Stack, dsn: str, groups: list[tuple[str, str, int]], *, zone: str,
           deadline_in_s: float, **fields: Any) -> tuple[httpx.Client, dict[str, Any], dict[str, Any]]:
    """A new tenant with the audience ``groups`` and a one-shot campaign whose deadline is
    ``deadline_in_s`` from now, as a wall time in ``zone`` (its time zone), started at once;
    (its api client, campaign, run)."""
    api, tenant_id = _api(stack, dsn)
    asyncio.run(_audience(dsn, tenant_id, groups))
    wall = datetime.now(UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None, microsecond=0)
    body = {"name": "Black Friday", "body": "Sale ends tonight", "segment": {"everyone": True},
            "run_at": (wall - timedelta(minutes=1)).isoformat(), "time_zone": zone,
            "deadline": (wall + timedelta(seconds=deadline_in_s)).isoformat(), "max_rate": RATE,
            **fields}
    made = api.post("/v1/campaigns", json=body)
    assert made.status_code == 201, made.text
    campaign = made.json()
    run = api.post(f"/v1/campaigns/{campaign['id']}/run-now")
    assert run.status_code == 201, run.text
    return api, campaign, run.json()


def _ledger(stack: Stack, prefix: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = httpx.get(f"{stack.sim_url}/ledger", params={"after": len(items), "limit": 10_000},
                         timeout=30).json()
        items.extend(page["items"])
        if len(items) >= page["total"]:
            return [i for i in items if i["to"].startswith(prefix)]


def _accepted_at(items: list[dict[str, Any]]) -> list[datetime]:
    return [datetime.fromisoformat(i["accepted_at"]) for i in items]


def _run(api: httpx.Client, campaign_id: int) -> dict[str, Any]:
    runs: list[dict[str, Any]] = api.get(f"/v1/campaigns/{campaign_id}/runs").json()
    return runs[-1]


def _settled(api: httpx.Client, campaign_id: int) -> dict[str, Any] | None:
    """The run's stats once every wave is done and every message is in a final state."""
    if _run(api, campaign_id)["released_at"] is None:
        return None
    stats: dict[str, Any] = api.get(f"/v1/campaigns/{campaign_id}/stats").json()["runs"][-1]
    return stats if set(stats["states"]) <= FINAL else None


def _adds_up(stats: dict[str, Any], audience: int) -> None:
    """Every recipient in exactly one outcome, every expiry for the deadline."""
    assert stats["audience"] == audience
    assert stats["released"] + stats["cut_at_deadline"] == audience
    assert sum(stats["states"].values()) == stats["released"]
    assert stats["failed"] == 0  # the simulator fails nothing here
    assert stats["sent"] + stats["expired"] + sum(stats["suppressed_by_reason"].values()) == audience
    assert stats["expired"] == stats["states"].get("expired", 0) + stats["cut_at_deadline"]
    assert stats["expired_by_reason"] == ({"deadline": stats["expired"]} if stats["expired"] else {})


def test_the_deadline_cuts_a_run_mid_way(stack: Stack, database_url: str) -> None:
    """Released in chunks of 10 at 10/s, 300 recipients need 30 s; the deadline is 8 s away."""
    api, campaign, run = _start(stack, database_url, [("+4478001", "America/Chicago", 300)],
                                zone="America/Chicago", deadline_in_s=8)
    with closing(api):
        deadline = datetime.fromisoformat(campaign["deadline"])
        assert campaign["on_deadline"] == "expire"
        assert datetime.fromisoformat(run["waves"][0]["deadline_at"]) == deadline
        stats = eventually(lambda: _settled(api, campaign["id"]), timeout=90)
        wave = _run(api, campaign["id"])["waves"][0]
        assert (wave["state"], wave["expired"]) == ("done", stats["cut_at_deadline"])
        assert 0 < wave["released"] < 300  # releases stopped at the deadline
        assert wave["expired"] > 0
        assert stats["states"].get("expired", 0) > 0  # what the sender held expired
        _adds_up(stats, 300)
        accepted = _accepted_at(_ledger(stack, "+4478001"))
        assert len(accepted) == stats["sent"] > 0
        assert max(accepted) < deadline  # nothing reached the provider after it


def test_a_run_paused_across_its_deadline_expires_the_rest_on_resume(
    stack: Stack, database_url: str
) -> None:
    api, campaign, _ = _start(stack, database_url, [("+4478002", "Europe/London", 300)],
                              zone="Europe/London", deadline_in_s=5)
    with closing(api):
        deadline = datetime.fromisoformat(campaign["deadline"])
        eventually(lambda: len(_ledger(stack, "+4478002")) >= 5 or None, timeout=30)
        assert api.post(f"/v1/campaigns/{campaign['id']}/pause").json()["state"] == "paused"
        eventually(lambda: datetime.now(UTC) > deadline + timedelta(seconds=1) or None, timeout=30)
        paused = _run(api, campaign["id"])
        assert (paused["state"], paused["released_at"]) == ("paused", None)
        assert api.post(f"/v1/campaigns/{campaign['id']}/resume").json()["state"] == "active"
        stats = eventually(lambda: _settled(api, campaign["id"]), timeout=90)
        assert stats["cut_at_deadline"] > 0  # the remainder expired on resume
        _adds_up(stats, 300)
        accepted = _accepted_at(_ledger(stack, "+4478002"))
        assert len(accepted) == stats["sent"] > 0
        assert max(accepted) < deadline


ZONES = {"America/New_York": 100, "America/Chicago": 10, "America/Los_Angeles": 10,
         "Pacific/Honolulu": 10}


def test_each_zone_is_cut_at_its_own_deadline(stack: Stack, database_url: str) -> None:
    """The deadline wall time is 5 s away in New York, an hour or more in the other zones: New
    York (100 recipients at 10/s) is cut, the others send everything. Run-now fires every
    zone at once; the waves are released one after another, earliest deadline first."""
    prefixes = {zone: f"+44780030{n}" for n, zone in enumerate(ZONES)}
    groups = [(prefixes[z], z, n) for z, n in ZONES.items()]
    api, campaign, run = _start(stack, database_url, groups, zone="America/New_York",
                                deadline_in_s=5, time_mode="recipient_local")
    with closing(api):
        wall = datetime.fromisoformat(campaign["deadline_local"])
        deadlines = {w["time_zone"]: datetime.fromisoformat(w["deadline_at"]) for w in run["waves"]}
        assert deadlines == {z: wall.replace(tzinfo=ZoneInfo(z)) for z in ZONES}
        stats = eventually(lambda: _settled(api, campaign["id"]), timeout=90)
        _adds_up(stats, sum(ZONES.values()))
        waves = {w["time_zone"]: w for w in _run(api, campaign["id"])["waves"]}
        ny = _accepted_at(_ledger(stack, prefixes["America/New_York"]))
        assert len(ny) < ZONES["America/New_York"]
        assert all(t < deadlines["America/New_York"] for t in ny)
        for zone in list(ZONES)[1:]:
            assert (waves[zone]["released"], waves[zone]["expired"]) == (ZONES[zone], 0)
            assert len(_ledger(stack, prefixes[zone])) == ZONES[zone]  # sent, before its deadline
        assert stats["sent"] == len(ny) + sum(list(ZONES.values())[1:])
        released = asyncio.run(_release_spans(database_url, run["id"]))
        assert [z for z, _, _ in released] == sorted(ZONES, key=lambda z: deadlines[z])
        for (_, _, ended), (_, started, _) in zip(released, released[1:], strict=False):
            assert started >= ended


async def _release_spans(dsn: str, run_id: int) -> list[tuple[str, datetime, datetime]]:
    """Each wave's zone, start and end of release, in the order they started."""
    rows = await fetch_rows(dsn, "SELECT time_zone, started_at, finished_at FROM campaign_waves"
                            " WHERE run_id = $1 ORDER BY started_at", run_id)
    return [(r["time_zone"], r["started_at"], r["finished_at"]) for r in rows]


def test_send_late_sends_after_the_deadline(stack: Stack, database_url: str) -> None:
    """60 recipients at 10/s need 6 s; the deadline is 4 s away; all 60 are sent."""
    api, campaign, _ = _start(stack, database_url, [("+4478004", "America/Denver", 60)],
                              zone="America/Denver", deadline_in_s=4, on_deadline="send_late")
    with closing(api):
        assert campaign["on_deadline"] == "send_late"
        deadline = datetime.fromisoformat(campaign["deadline"])
        stats = eventually(lambda: _settled(api, campaign["id"]), timeout=60)
        accepted = _accepted_at(_ledger(stack, "+4478004"))
        assert len(accepted) == stats["sent"] == 60
        assert max(accepted) > deadline
        assert (stats["expired"], stats["cut_at_deadline"]) == (0, 0)


def test_campaigns_are_bulk_only(stack: Stack, database_url: str) -> None:
    api, _ = _api(stack, database_url)
    with closing(api):
        body = {"name": "x", "body": "Hi", "segment": {"everyone": True},
                "run_at": "2030-11-26T09:00:00", "time_zone": "America/Chicago"}
        for lane in ("geo", "otp", "transactional"):
            refused = api.post("/v1/campaigns", json={**body, "lane": lane})
            assert refused.status_code == 422, refused.text
            assert [e["loc"] for e in refused.json()["detail"]] == [["body", "lane"]], refused.text
        bad = api.post("/v1/campaigns", json={**body, "on_deadline": "later"})
        assert bad.status_code == 422
        assert "on_deadline" in bad.text
        made = api.post("/v1/campaigns", json=body).json()
        assert (made["lane"], made["on_deadline"]) == ("bulk", "expire")
