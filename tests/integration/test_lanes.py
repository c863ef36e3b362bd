"""Lane isolation: OTPs keep flowing while a bulk backlog sends at the provider limit.

100,000 bulk recipients are queued on send.bulk; the bulk lane sends at its capped share of
the account while OTPs are posted at 5/s. The test ends once every OTP is in the ledger (the
backlog would take minutes to drain; it is not what is tested). The 5M version is a benchmark.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from sender.models import Lane
from tests.integration.senderkit import ledger, providers_json, sender_world
from tests.integration.stack import eventually

pytestmark = pytest.mark.e2e

BULK = 100_000
OTPS = 30


def _otp(api: httpx.Client, n: int) -> tuple[str, float]:
    response = api.post("/v1/messages/otp", headers={"Idempotency-Key": f"login-{n}"},
                        json={"phone": f"+1415555{n:04d}", "body": f"Your code is {n:06d}"})
    assert response.status_code == 202, response.text
    return response.json()["message_key"], time.time()


def test_otps_arrive_while_bulk_backlog_saturates_the_provider(
    broker_url: str, tmp_path: Path
) -> None:
    with sender_world(broker_url, tmp_path, sim_rate_per_s=1000.0) as world:
        sim = world.sim("provider-sim")
        world.settings = world.settings.model_copy(update={
            "sender_providers": providers_json(
                {"name": "acct", "url": sim, "token": "sim-token", "rate_per_s": 1000.0}),
            "sender_bulk_share": 0.7,
        })
        api = httpx.Client(base_url=world.api(), headers={"X-API-Key": world.api_key}, timeout=10)
        world.sender("sender-bulk", Lane.BULK)
        world.sender("sender-otp", Lane.OTP)
        warm, _ = _otp(api, 9999)  # the otp worker has joined its group once this arrives
        eventually(lambda: any(i["client_ref"] == warm for i in ledger(sim)) or None, timeout=60)

        world.publish(BULK, run_id=3)
        eventually(lambda: len(ledger(sim)) > 1000 or None, timeout=60)  # bulk is flowing
        posted = {}
        for n in range(OTPS):
            key, at = _otp(api, n)
            posted[key] = at
            time.sleep(0.2)  # 5 OTPs a second

        def otps_in() -> list[dict[str, object]] | None:
            items = ledger(sim)
            seen = [i for i in items if i["client_ref"] in posted]
            return items if len(seen) == OTPS else None

        items = eventually(otps_in, timeout=60)
        bulk_sent = sum(1 for i in items if str(i["client_ref"]).startswith("blk-"))
        assert bulk_sent < BULK  # every OTP arrived before the bulk backlog drained
        latencies = sorted(
            datetime.fromisoformat(str(i["accepted_at"])).timestamp() - posted[str(i["client_ref"])]
            for i in items if i["client_ref"] in posted
        )
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"\nOTP latency with {BULK - bulk_sent} bulk still queued: "
              f"p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
        refs = [i["client_ref"] for i in ledger(sim)]
        assert len(refs) == len(set(refs))  # nothing sent twice
        assert sum(1 for r in refs if r in posted) == OTPS
