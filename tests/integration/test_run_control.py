"""Campaign run control read by the sender before each provider call: cancel, pause, pacing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hexcast.core.cache import Keys, connect_redis
from hexcast.core.control import RunControl, RunState
from hexcast.testing import eventually
from sender.keys import bulk_key
from tests.integration.senderkit import SenderWorld, ledger, providers_json, sender_world

pytestmark = pytest.mark.e2e


def _control(world: SenderWorld, run_id: int, state: RunState, rate: float | None = None) -> None:
    async def run() -> None:
        client = connect_redis(world.settings.redis_url)
        try:
            control = RunControl(client, Keys(world.settings.redis_prefix))
            await control.set_state(run_id, state)
            await control.set_rate(run_id, rate)
        finally:
            await client.aclose()

    asyncio.run(run())


def test_cancelled_paused_and_paced_runs(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path) as world:
        sim = world.sim("provider-sim")
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "acct", "url": sim, "token": "sim-token", "rate_per_s": 5000.0})})
        world.sender("sender-bulk")
        _control(world, 31, RunState.CANCELLED)
        _control(world, 32, RunState.PAUSED)
        _control(world, 33, RunState.RUNNING, rate=50.0)
        world.publish(20, run_id=31, first=0)
        world.publish(20, run_id=32, first=100)
        world.publish(200, run_id=33, first=200)

        cancelled = bulk_key(campaign_run_id=31, recipient_id=0)
        paused = bulk_key(campaign_run_id=32, recipient_id=100)
        eventually(lambda: (world.message(cancelled) or {}).get("reason") == "campaign cancelled"
                   or None, timeout=60)
        eventually(lambda: (world.message(paused) or {}).get("state") == "deferred" or None)
        eventually(lambda: world.states().get("accepted", 0) == 200 or None, timeout=60)
        paced = [datetime.fromisoformat(i["accepted_at"]) for i in ledger(sim)]
        spread = (max(paced) - min(paced)).total_seconds()
        print(f"\npaced run: 200 messages over {spread:.1f}s at a pace of 50/s (burst 50)")
        # The pace held: the burst, then 50/s (a second of slack for the first grant landing
        # after the bucket started). The account alone (5,000/s) would send all 200 at once.
        assert len(paced) <= 50 + 50 * (spread + 1)
        assert world.states() == {"accepted": 200, "suppressed": 20, "deferred": 20}

        _control(world, 32, RunState.RUNNING)  # resumed: released messages now go out
        assert world.release(datetime.now(UTC) + timedelta(minutes=5)) == 20
        eventually(lambda: world.states().get("accepted", 0) == 220 or None, timeout=60)
        assert len({i["client_ref"] for i in ledger(sim)}) == len(ledger(sim)) == 220

        # Per-recipient caps: an Oklahoma number gets at most 3 a day (and per 24 h).
        world.publish_to({n: "+14055550199" for n in range(400, 404)}, run_id=34)
        eventually(lambda: world.states().get("deferred", 0) == 1 or None, timeout=60)
        eventually(lambda: world.states().get("accepted", 0) == 223 or None, timeout=60)
        capped = [world.message(bulk_key(campaign_run_id=34, recipient_id=n)) for n in range(400, 404)]
        assert sorted(str((c or {}).get("state")) for c in capped) == ["accepted"] * 3 + ["deferred"]
        assert any(str((c or {}).get("reason")).startswith("recipient cap until") for c in capped)
