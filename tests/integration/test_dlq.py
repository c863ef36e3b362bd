"""Attempt limit → failed + dead letter; `hexcast dlq list|show|replay` re-checks before sending."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest

from hexcast.testing import eventually
from sender.keys import bulk_key
from tests.integration.senderkit import SenderWorld, ledger, providers_json, sender_world

pytestmark = pytest.mark.e2e


def _opt_out(world: SenderWorld, phone: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(world.settings.database_url)
        try:
            await conn.execute("INSERT INTO opt_outs (tenant_id, phone, source) VALUES ($1, $2, 'test')",
                               world.tenant_id, phone)
        finally:
            await conn.close()

    asyncio.run(run())


def _depth(world: SenderWorld, letters: int) -> None:
    """The sender's DLQ depth gauge (refreshed every few seconds) comes to ``letters``."""
    eventually(lambda: world.scrape("sender-bulk").value("hexcast_dlq_depth") == letters or None,
               timeout=30)


def test_dead_letters_are_listed_and_replayed_with_checks(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path, provider_max_attempts=2,
                      sender_breaker_failures=50) as world:
        sim = world.sim("provider-sim", sim_mode="single")
        httpx.post(f"{sim}/control", json={"fail_rate": 1.0}).raise_for_status()
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "flaky", "url": sim, "token": "sim-token", "mode": "single"})})
        world.sender("sender-bulk")
        world.publish(3, run_id=21)
        keys = [bulk_key(campaign_run_id=21, recipient_id=n) for n in range(3)]
        eventually(lambda: all((world.message(k) or {}).get("state") == "failed" for k in keys)
                   or None, timeout=60)
        listing = eventually(lambda: world.cli("dlq", "list").strip() or None, timeout=30)
        assert "gave up after 2 attempts" in listing
        offset = listing.split("\t", 1)[0]
        assert '"source_topic"' in world.cli("dlq", "show", offset)
        letters = len(listing.strip().splitlines())
        assert world.scrape("sender-bulk").value("hexcast_dlq_letters_total", lane="bulk",
                                                 reason="gave_up") == letters
        _depth(world, letters)

        _opt_out(world, "+13120000001")  # STOP recorded while the letter waited
        httpx.post(f"{sim}/control", json={"fail_rate": 0.0}).raise_for_status()
        assert "replayed: 3" in world.cli("dlq", "replay", offset, "--reason", "ok", "--yes")
        _depth(world, letters - 1)  # that letter was replayed
        eventually(lambda: world.states() == {"accepted": 2, "suppressed": 1} or None, timeout=60)
        assert sorted(i["to"] for i in ledger(sim)) == ["+13120000000", "+13120000002"]
        assert (world.message(keys[1]) or {})["reason"] == "opted out"
