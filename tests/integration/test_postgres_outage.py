"""PostgreSQL goes away mid-campaign: every process fails closed and resumes by itself.

A paced bulk campaign runs on a PostgreSQL server of the test's own; the server is stopped
while it runs. Sending stops (no provider call without a ``sending`` row), the api answers 503
with Retry-After, no process exits; the server comes back and the run finishes by itself with
every recipient in the provider's ledger once and a message row for each.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hexcast.devstack.localinfra import ThrowawayPostgres
from hexcast.testing import (
    CAMPAIGN_PROCESSES,
    Stack,
    eventually,
    fetch_rows,
    make_settings,
    make_tenant,
    running_stack,
    throwaway_database_sync,
)

pytestmark = pytest.mark.e2e

TOTAL = 2000
RATE = 160  # messages/s: a 13 s run, stopped after the first few hundred
PREFIX = "+4477024"
PROCESSES = {**CAMPAIGN_PROCESSES, "webhooks": ["webhooks"]}
FINAL = {"accepted", "delivered", "failed", "expired", "suppressed"}


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres(tmp_path / "state")
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)


def _states(dsn: str) -> dict[str, int]:
    rows = asyncio.run(fetch_rows(dsn, "SELECT state, count(*) AS n FROM messages GROUP BY state"))
    return {r["state"]: r["n"] for r in rows}


def _refused(api: httpx.Client) -> httpx.Response | None:
    response = api.get("/v1/campaigns")
    return response if response.status_code == 503 else None


def test_processes_fail_closed_and_resume_when_postgres_returns(
    broker_url: str, postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    with throwaway_database_sync(server=postgres.dsn) as dsn:
        settings = make_settings(
            broker_url, dsn, scheduler_poll_s=0.5, sender_bulk_share=1.0,
            sender_reconcile_grace_s=5.0, sender_sweep_interval_s=2.0, api_retry_after_s=7)
        phones = [f"{PREFIX}{i:05d}" for i in range(TOTAL)]
        tenant = asyncio.run(make_tenant(dsn, prefix="pgdown", consenting=phones))
        with running_stack(settings, tmp_path / "logs", PROCESSES) as stack, \
                httpx.Client(base_url=stack.api_url, headers={"X-API-Key": tenant.api_key},
                             timeout=30) as api:
            made = api.post("/v1/campaigns", json={
                "name": "Outage", "body": "20% off today", "segment": {"everyone": True},
                "run_at": "2030-11-26T09:00:00", "time_zone": "Europe/London", "max_rate": RATE})
            assert made.status_code == 201, made.text
            assert api.post(f"/v1/campaigns/{made.json()['id']}/run-now").status_code == 201
            eventually(lambda: len(stack.ledger()) >= 300 or None, timeout=60)

            postgres.crash()  # pg_ctl stop -m immediate: sessions cut mid-statement
            refused = eventually(lambda: _refused(api), timeout=10)
            assert refused.headers["Retry-After"] == "7"
            assert refused.json()["error"] == "DatabaseUnavailable"
            assert httpx.get(f"{stack.api_url}/ready").status_code == 503
            time.sleep(1.5)  # calls journaled before the stop may still land
            during = len(stack.ledger())
            time.sleep(2.5)
            assert len(stack.ledger()) == during < TOTAL  # no row, no call
            _alive(stack)

            postgres.start()
            eventually(lambda: len(stack.ledger()) >= TOTAL or None, timeout=60)
            eventually(lambda: set(_states(dsn)) <= FINAL or None, timeout=30)
            _exactly_once(stack, dsn)
            assert httpx.get(f"{stack.api_url}/ready").status_code == 200
            _alive(stack)
            print(f"\npostgres outage: {during} sent before, {TOTAL - during} after it came back")
            for name in ("sender-bulk", "scheduler"):
                assert "paused" in stack.children[name].tail(200_000), stack.logs()


def _exactly_once(stack: Stack, dsn: str) -> None:
    """Every call in the ledger has a message row, each recipient once; all rows final."""
    refs = Counter(i["client_ref"] for i in stack.ledger() if i["to"].startswith(PREFIX))
    assert len(refs) == TOTAL
    assert set(refs.values()) == {1}
    rows = asyncio.run(fetch_rows(dsn, "SELECT message_key FROM messages"))
    assert set(refs) <= {r["message_key"] for r in rows}  # no call without its row
    assert len(rows) == TOTAL  # final states (checked before) add up to the audience


def _alive(stack: Stack) -> None:
    dead = [name for name, child in stack.children.items() if not child.alive]
    assert not dead, f"exited: {dead}\n{stack.logs()}"
