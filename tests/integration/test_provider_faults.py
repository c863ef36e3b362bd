"""Provider faults and limits: 429 with Retry-After, a 5xx storm with breaker and failover,
an account's requests/s, routing by tenant, and a timeout (ambiguous: reconciled, not resent)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from hexcast.testing import eventually
from tests.integration.senderkit import ledger, providers_json, sender_world, sim_stats

pytestmark = pytest.mark.e2e


def _done(world_states: dict[str, int], total: int) -> bool | None:
    return world_states.get("accepted", 0) == total or None


def test_429_retry_after_is_honoured_and_nothing_is_lost(broker_url: str, tmp_path: Path) -> None:
    total = 3000
    with sender_world(broker_url, tmp_path, sim_rate_per_s=300.0, sim_retry_after_s=2) as world:
        sim = world.sim("provider-sim")
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "busy", "url": sim, "token": "sim-token", "rate_per_s": 1000.0},
        )})
        world.sender("sender-bulk")
        started = time.monotonic()
        world.publish(total, run_id=7)
        eventually(lambda: _done(world.states(), total), timeout=120)
        elapsed = time.monotonic() - started
        stats = sim_stats(sim)
        refs = Counter(item["client_ref"] for item in ledger(sim))
        print(f"\n429 test: {stats['rate_limited']} x 429, {stats['requests']} requests, "
              f"{total} in {elapsed:.1f}s ({total / elapsed:.0f}/s; sim allows 300/s + 1000 burst)")
        assert stats["rate_limited"] > 0  # the sim really pushed back
        assert stats["requests_while_limited"] == 0  # and nobody called during Retry-After
        assert len(refs) == total
        assert set(refs.values()) == {1}
        assert stats["duplicates_rejected"] == 0
        assert world.states() == {"accepted": total}
        metrics = world.scrape("sender-bulk")
        assert metrics.value("hexcast_provider_throttled_total",
                             provider="busy") == stats["rate_limited"]
        assert metrics.value("hexcast_segments_total", lane="bulk", provider="busy") == total


def test_5xx_storm_opens_breaker_fails_over_and_recovers(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path, sender_breaker_failures=3,
                      sender_breaker_open_s=2.0) as world:
        sim_a = world.sim("provider-sim-a", sim_mode="single")
        sim_b = world.sim("provider-sim-b")
        httpx.post(f"{sim_a}/control", json={"fail_rate": 1.0}).raise_for_status()
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "a", "url": sim_a, "token": "sim-token", "mode": "single", "weight": 1000,
             "rate_per_s": 2000.0},
            {"name": "b", "url": sim_b, "token": "sim-token", "weight": 1, "rate_per_s": 2000.0},
        )})
        sender = world.sender("sender-bulk")
        world.publish(4000, run_id=9)  # four records: each first tries A, the primary
        eventually(lambda: _done(world.states(), 4000), timeout=120)
        assert ledger(sim_a) == []
        assert sim_stats(sim_a)["injected_failures"] >= 3
        assert len({i["client_ref"] for i in ledger(sim_b)}) == 4000
        log = world.log(sender)
        assert "to_state=open" in log or '"to_state": "open"' in log

        httpx.post(f"{sim_a}/control", json={"fail_rate": 0.0}).raise_for_status()
        time.sleep(2.5)  # past the open period: the next call is a trial
        world.publish(1000, run_id=9, first=4000)
        eventually(lambda: _done(world.states(), 5000), timeout=120)
        a_refs = Counter(i["client_ref"] for i in ledger(sim_a))
        b_refs = Counter(i["client_ref"] for i in ledger(sim_b))
        assert a_refs  # the breaker closed again and the primary took traffic back
        assert not set(a_refs) & set(b_refs)
        assert set(a_refs.values()) | set(b_refs.values()) == {1}
        assert len(a_refs) + len(b_refs) == 5000
        # The sender's gauge follows its breaker's transitions: closed again, and only that.
        states = world.scrape("sender-bulk")
        assert [states.value("hexcast_breaker_state", provider="a", state=s)
                for s in ("closed", "open", "half_open")] == [1, 0, 0]
        print(f"\n5xx storm: A took {len(a_refs)}, B took {len(b_refs)} of 5000")


def test_requests_per_second_and_tenant_routing(broker_url: str, tmp_path: Path) -> None:
    """A Twilio-like account limited to 40 requests/s (segments are plentiful): the sender
    holds the request rate; an account routed to another tenant gets none of this traffic."""
    total, rps = 200, 40.0
    with sender_world(broker_url, tmp_path, sim_rate_per_s=10_000.0) as world:
        sim = world.sim("provider-sim", sim_mode="single")
        theirs = world.sim("provider-sim-theirs")
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "ours", "url": sim, "token": "sim-token", "mode": "single",
             "rate_per_s": 10_000.0, "requests_per_s": rps, "tenants": [world.tenant_id]},
            {"name": "theirs", "url": theirs, "token": "sim-token", "weight": 1000,
             "rate_per_s": 10_000.0, "tenants": [world.tenant_id + 1]},
        )})
        world.sender("sender-bulk")
        world.publish(total, run_id=11)
        eventually(lambda: _done(world.states(), total), timeout=90)
        items = ledger(sim)
        at = sorted(datetime.fromisoformat(str(i["accepted_at"])).timestamp() for i in items)
        span = at[-1] - at[0]
        requests = sim_stats(sim)["requests"]
        print(f"\n{requests} requests over {span:.1f}s at a limit of {rps:.0f}/s (burst {rps:.0f})")
        # The burst, then the rate (one more second of slack: the ledger's first acceptance
        # lands a little after the first grant). Unlimited, all 200 go within a fraction of one.
        assert requests <= rps + rps * (span + 1)
        assert len({i["client_ref"] for i in items}) == len(items) == total
        assert ledger(theirs) == []
        assert sim_stats(theirs)["requests"] == 0


def test_timeout_is_reconciled_not_resent_and_traffic_fails_over(
    broker_url: str, tmp_path: Path
) -> None:
    """A answers after our timeout (having accepted): its rows are ambiguous, stay `sending`
    and are reconciled by lookup, never resent; its breaker opens and the next chunk goes to
    B."""
    with sender_world(broker_url, tmp_path, provider_timeout_s=0.5, sender_breaker_failures=1,
                      sender_breaker_open_s=60.0, sender_reconcile_grace_s=1.0,
                      sender_sweep_interval_s=1.0) as world:
        sim_a = world.sim("provider-sim-a")
        sim_b = world.sim("provider-sim-b")
        httpx.post(f"{sim_a}/control", json={"latency_ms": 1500}).raise_for_status()
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "a", "url": sim_a, "token": "sim-token", "weight": 1000},
            {"name": "b", "url": sim_b, "token": "sim-token", "weight": 1},
        )})
        world.sender("sender-bulk", sender_bulk_concurrency=1)
        world.publish(50, run_id=13)
        eventually(lambda: len(ledger(sim_a)) == 50 or None, timeout=60)  # A took them...
        eventually(lambda: world.states().get("sending") == 50 or None, timeout=30)  # ...late
        world.publish(50, run_id=13, first=100)
        eventually(lambda: len(ledger(sim_b)) == 50 or None, timeout=60)  # breaker open: B
        # B's ledger fills before our acceptance of its last call commits: wait for that.
        eventually(lambda: world.states().get("accepted") == 50 or None, timeout=30)
        assert world.states().get("sending") == 50  # A's rows: not resent while unresolved

        httpx.post(f"{sim_a}/control", json={"latency_ms": 0}).raise_for_status()
        eventually(lambda: _done(world.states(), 100), timeout=60)  # the sweep's lookups
        a_refs = Counter(i["client_ref"] for i in ledger(sim_a))
        b_refs = Counter(i["client_ref"] for i in ledger(sim_b))
        assert len(a_refs) == len(b_refs) == 50
        assert not set(a_refs) & set(b_refs)
        assert set(a_refs.values()) | set(b_refs.values()) == {1}
        assert sim_stats(sim_a)["duplicates_rejected"] == sim_stats(sim_b)["duplicates_rejected"] == 0


@pytest.mark.parametrize("mode", ["batch", "single"])
def test_unreadable_answer_is_reconciled_not_resent(
    broker_url: str, tmp_path: Path, mode: str
) -> None:
    """The provider takes the messages, then answers 200 with a cut-off body: the sender
    cannot tell what it did, so it asks by reference (ambiguous), accepts what the provider
    has and sends nothing twice."""
    with sender_world(broker_url, tmp_path, sender_breaker_failures=10_000) as world:
        sim = world.sim("provider-sim", sim_mode=mode)
        httpx.post(f"{sim}/control", json={"garble_rate": 1.0}).raise_for_status()
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "garbling", "url": sim, "token": "sim-token", "mode": mode,
             "rate_per_s": 5000.0},
        )})
        sender = world.sender("sender-bulk")
        world.publish(300, run_id=21)
        eventually(lambda: _done(world.states(), 300), timeout=120)
        stats = sim_stats(sim)
        refs = Counter(item["client_ref"] for item in ledger(sim))
        assert stats["garbled_answers"] >= 1
        assert len(refs) == 300
        assert set(refs.values()) == {1}
        assert stats["duplicates_rejected"] == 0  # nothing was posted a second time
        assert world.states() == {"accepted": 300}
        assert "unreadable answer" in world.log(sender)
