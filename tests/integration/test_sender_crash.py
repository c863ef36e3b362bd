"""No duplicate across crashes: kill -9 a sender between provider acceptance and the commit.

The sender's test-only fault hook (``sender_fault_kill_after_calls``) SIGKILLs the worker right
after a provider call was accepted and before the acceptance is committed, leaving rows in
``sending`` that the provider has in its ledger. A restarted sender reconciles them on start.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from hexcast.testing import eventually
from sender.models import Lane
from tests.integration.senderkit import ledger, providers_json, sender_world, sim_stats

pytestmark = pytest.mark.e2e

TOTAL = 300


@pytest.mark.parametrize(
    ("mode", "lookup"), [("batch", True), ("single", True), ("single", False)],
    ids=["batch-mid-batch", "single-with-lookup", "single-without-lookup"],
)
def test_kill_between_acceptance_and_commit_sends_each_once(
    broker_url: str, tmp_path: Path, mode: str, lookup: bool
) -> None:
    with sender_world(broker_url, tmp_path, sim_mode=mode, sim_lookup=lookup,
                      sender_reconcile_grace_s=0.5, sender_sweep_interval_s=1.0) as world:
        sim = world.sim("provider-sim")
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "acct", "url": sim, "token": "sim-token", "mode": mode, "lookup": lookup,
             "rate_per_s": 250.0},
        )})
        # One actor and one slice per chunk, so the kill leaves exactly the killed call's rows
        # in `sending` (with more, rows claimed by another actor or slice and not yet sent
        # would be in `sending` too: still safe, resent after lookup or left unknown, but not
        # this test's exact accounting).
        doomed = world.sender("sender-doomed", sender_fault_kill_after_calls=2,
                              sender_bulk_concurrency=1, sender_bulk_parts=1)
        world.publish(TOTAL, run_id=1, lane=Lane.BULK)
        eventually(lambda: not doomed.alive or None, timeout=60)

        states = world.states()
        in_flight = states.get("sending", 0)
        assert in_flight > 0, states  # the kill happened after acceptance, before the commit
        assert len(ledger(sim)) == states.get("accepted", 0) + in_flight  # the rest never left

        survivor = world.sender("sender-restarted")
        done = eventually(lambda: _finished(world.states()), timeout=90)
        refs = Counter(item["client_ref"] for item in ledger(sim))
        assert all(n == 1 for n in refs.values())
        assert sim_stats(sim)["duplicates_rejected"] == 0  # nothing was even offered twice
        if lookup:
            assert done == {"accepted": TOTAL}
            assert len(refs) == TOTAL
        else:  # the provider cannot be asked: in-flight rows stay unknown, never resent
            assert done == {"accepted": TOTAL - in_flight, "unknown": in_flight}
            assert len(refs) == TOTAL
        print(f"\n{mode} lookup={lookup}: {in_flight} in flight at the kill -> {done}")
        assert "reconciled" in world.log(survivor) or not lookup


def _finished(states: dict[str, int]) -> dict[str, int] | None:
    pending = states.get("queued", 0) + states.get("sending", 0)
    return None if pending or not states else {k: v for k, v in states.items() if v}
