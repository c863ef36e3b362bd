"""A tenant's dry run through the real sender, and the parity report against a planted legacy
log: nothing reaches the provider, every decision is recorded, and the report's counts and
reasons are exact (some recipients opted out in hexcast, some in quiet hours, one never in
hexcast's audience, one only in hexcast's)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from hexcast.testing import eventually
from sender.quiet import is_allowed, window_for, zones_for
from tests.integration.senderkit import SenderWorld, ledger, providers_json, sender_world

pytestmark = pytest.mark.e2e

CANDIDATES = ["+13125550100", "+12125550100", "+12135550100", "+18085550100", "+14055550100",
              "+442071234567", "+81312345678", "+61291234567"]


def _numbers(now: datetime) -> tuple[list[str], list[str]]:
    """Ten numbers whose local time allows sending now, and two in quiet hours (picked at run
    time: which zones are asleep depends on when the test runs)."""
    def ok(phone: str) -> bool:
        return is_allowed(now, zones_for(phone), window_for(phone))

    awake = next(p for p in CANDIDATES if ok(p))
    asleep = next(p for p in CANDIDATES if not ok(p))
    return [awake[:-1] + str(n) for n in range(10)], [asleep[:-1] + str(n) for n in range(2)]


def _sql(world: SenderWorld, query: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(world.settings.database_url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def test_a_dry_run_sends_nothing_and_the_parity_report_is_exact(
    broker_url: str, tmp_path: Path,
) -> None:
    with sender_world(broker_url, tmp_path, sender_quiet_hours=True) as world:
        sim = world.sim("provider-sim")
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "live", "url": sim, "token": "sim-token"})})
        [tenant] = [r["name"] for r in _sql(world, "SELECT name FROM tenants WHERE id = $1",
                                            world.tenant_id)]
        assert world.cli("send-mode", "set", tenant, "dry_run", "--reason", "pilot").strip() \
            == f"{tenant}: dry_run"
        world.sender("sender-bulk")
        now = datetime.now(UTC)
        awake, asleep = _numbers(now)
        opted = awake[6:8]
        world.consent(awake[:8] + asleep)
        _sql(world, "INSERT INTO opt_outs (tenant_id, phone, source) SELECT $1, unnest($2::text[]),"
             " 'reply'", world.tenant_id, opted)
        world.publish_to(dict(enumerate(awake[:8] + asleep)), run_id=21, consent=False)
        assert eventually(lambda: world.states() == {"accepted": 6, "suppressed": 2,
                                                     "deferred": 2} or None, timeout=90)
        assert ledger(sim) == []  # a dry run sends nothing
        routes = {r["provider"] for r in _sql(world, "SELECT DISTINCT provider FROM messages"
                                                     " WHERE state = 'accepted'")}
        assert routes == {"dryrun"}

        legacy = tmp_path / "legacy.csv"
        at = (now - timedelta(minutes=5)).isoformat()
        rows = [*awake[:5], *opted, *asleep, awake[9]]  # awake[5]: hexcast only; [9]: legacy only
        legacy.write_text("phone,time,status\n" + "".join(f"{p},{at},delivered\n" for p in rows)
                          + f"{awake[8]},{at},skipped\n")
        report = world.cli("parity", "report", "--tenant", tenant, "--legacy", str(legacy))
        assert report.splitlines() == [
            "both sent: 5", "legacy only: 5", "  deferred: quiet hours: 2",
            "  no message: 1", "  suppressed: opted out: 2", "hexcast only: 1"]

        assert world.cli("send-mode", "set", tenant, "live", "--reason", "cutover").strip() \
            == f"{tenant}: live"
        audit = _sql(world, "SELECT send_mode, reason FROM send_mode_changes WHERE tenant_id = $1"
                            " ORDER BY id", world.tenant_id)
        assert [(r["send_mode"], r["reason"]) for r in audit] == [
            ("dry_run", "pilot"), ("live", "cutover")]
