"""The chaos invariants over a tiny real scope: a provider simulator's ledger filled through its
own API as a sender fills it, message rows and a campaign run in PostgreSQL, ``send.dlq``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from hexcast.chaos.invariants import Scope, check_invariants
from hexcast.core.settings import Settings
from hexcast.testing import make_tenant
from hexcast.testing.simulator import running_sim
from providersim import SimConfig

PHONES = ("+447937200001", "+447937200002")


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with running_sim(SimConfig()) as url:
        yield url


def _post(sim_url: str, *rows: tuple[str, str]) -> None:
    """Send (key, phone) as the sender does: the message key as the client reference."""
    messages = [{"client_ref": key, "to": phone, "body": "Spring sale"} for key, phone in rows]
    response = httpx.post(f"{sim_url}/v1/batches", json={"messages": messages},
                          headers={"Authorization": "Bearer sim-token"}, timeout=10)
    assert response.status_code == 200, response.text


async def _run(conn: asyncpg.Connection, tenant_id: int, released: int) -> int:
    campaign = await conn.fetchval(
        "INSERT INTO campaigns (tenant_id, name, body, segment, run_at, time_zone, time_mode)"
        " VALUES ($1, 'chaos', 'Spring sale', '{}', now(), 'UTC', 'fixed') RETURNING id", tenant_id)
    run: int = await conn.fetchval(
        "INSERT INTO campaign_runs (campaign_id, tenant_id, scheduled_for, first_fire_at,"
        " released_at) VALUES ($1, $2, now(), now(), now()) RETURNING id", campaign, tenant_id)
    await conn.execute("INSERT INTO campaign_waves (run_id, fire_at, state, released)"
                       " VALUES ($1, now(), 'done', $2)", run, released)
    return run


async def _message(conn: asyncpg.Connection, tenant_id: int, key: str, phone: str, *,
                   run: int | None, state: str = "delivered", age_s: float = 0) -> None:
    await conn.execute(
        "INSERT INTO messages (message_key, client_ref, tenant_id, lane, phone, body,"
        " campaign_run_id, state, provider, updated_at) VALUES ($1, $1, $2, $3, $4,"
        " 'Spring sale', $5, $6::message_state, 'sim', now() - make_interval(secs => $7))",
        key, tenant_id, "bulk" if run else "otp", phone, run, state, age_s)


async def test_a_clean_scope_holds_and_a_duplicate_and_a_stuck_send_break_it(
    settings: Settings, database_url: str, sim_url: str,
) -> None:
    started = datetime.now(UTC)
    tenant = await make_tenant(database_url, prefix="chaos")
    conn = await asyncpg.connect(database_url)
    try:
        run = await _run(conn, tenant.id, released=2)
        keys = [f"chaos-{tenant.id}-{n}" for n in range(4)]
        for key, phone in zip(keys, PHONES, strict=False):
            await _message(conn, tenant.id, key, phone, run=run)
        await asyncio.to_thread(_post, sim_url, (keys[0], PHONES[0]), (keys[1], PHONES[1]))
        await conn.execute("INSERT INTO opt_outs (tenant_id, phone, source) VALUES ($1, $2, 'reply')",
                           tenant.id, PHONES[1])  # a STOP after its send: no violation
        scope = Scope(database_url=database_url, sim_url=sim_url, tenant_ids=(tenant.id,),
                      run_ids=(run,), accepted_visits=(), started_at=started)
        clean = await check_invariants(settings, scope)
        assert clean.ok, clean.markdown()
        assert set(clean.checked) >= {"once_per_campaign", "audience_adds_up", "rate_limits",
                                      "nothing_stuck_sending", "dead_letters_have_reasons"}

        await _message(conn, tenant.id, keys[2], PHONES[0], run=run)  # the same recipient again
        await _message(conn, tenant.id, keys[3], PHONES[1], run=None, state="sending", age_s=600)
        await asyncio.to_thread(_post, sim_url, (keys[2], PHONES[0]))
        broken = await check_invariants(settings, scope)
    finally:
        await conn.close()
    found = {v.invariant: v for v in broken.violations}
    assert set(found) == {"once_per_campaign", "audience_adds_up", "nothing_stuck_sending"}
    assert found["once_per_campaign"].examples == (f"run {run} {PHONES[0]}",)
    assert found["nothing_stuck_sending"].examples == (keys[3],)
