"""Redis goes away mid-run: sending pauses (fail closed) and resumes; nothing lost or doubled."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from hexcast.devstack.procs import free_port
from hexcast.testing import eventually
from tests.integration.senderkit import ledger, providers_json, sender_world

pytestmark = pytest.mark.e2e

TOTAL = 1000  # the outage comes after 300: what is left shows the resume


def _redis(port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--bind", "127.0.0.1"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    eventually(lambda: b"Ready to accept" in log.read_bytes() or None, timeout=10)
    return proc


def test_sending_pauses_while_redis_is_down(broker_url: str, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "redis.log"
    redis = _redis(port, log)
    try:
        with sender_world(broker_url, tmp_path) as world:
            sim = world.sim("provider-sim")
            world.settings = world.settings.model_copy(update={
                "redis_url": f"redis://127.0.0.1:{port}/0",
                "sender_providers": providers_json(
                    {"name": "acct", "url": sim, "token": "sim-token", "rate_per_s": 200.0}),
            })
            sender = world.sender("sender-bulk")
            world.publish(TOTAL, run_id=41)
            eventually(lambda: len(ledger(sim)) >= 300 or None, timeout=60)

            redis.kill()
            redis.wait()
            time.sleep(1.0)  # calls already granted may still land
            during = len(ledger(sim))
            time.sleep(3.0)
            assert len(ledger(sim)) == during  # paused: no rate-limit grant, no call
            assert during < TOTAL
            assert "sending_paused" in world.log(sender)

            redis = _redis(port, log)
            eventually(lambda: world.states().get("accepted", 0) == TOTAL or None, timeout=90)
            refs = Counter(i["client_ref"] for i in ledger(sim))
            assert len(refs) == TOTAL
            assert set(refs.values()) == {1}
            print(f"\nredis outage: {during} sent before, {TOTAL - during} after it came back")
    finally:
        redis.kill()
        redis.wait()
