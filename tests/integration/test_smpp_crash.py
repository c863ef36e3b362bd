"""kill -9 of the bulk sender mid-campaign on an SMPP route, as tests/integration/
test_sender_crash.py does on HTTP: the test-only fault hook (``sender_fault_kill_after_calls``)
SIGKILLs the sender right after a call's submits were answered and before their acceptance is
committed, leaving those rows ``sending`` while the SMSC has them. SMPP cannot look a message up
by our reference, so the restarted sender leaves them ``unknown`` (asking no ``query_sm``),
never sends them again, and sends the rest once; ``hexcast unknown list/resolve`` settles them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from hexcast.testing import eventually
from sender.models import Lane
from tests.integration.senderkit import ledger, sender_world

pytestmark = pytest.mark.e2e

TOTAL = 300


def test_kill_mid_smpp_campaign_leaves_the_cut_call_unknown_and_sends_each_once(
    broker_url: str, tmp_path: Path,
) -> None:
    with sender_world(broker_url, tmp_path, sender_reconcile_grace_s=0.5,
                      sender_sweep_interval_s=1.0) as world:
        sim, route = world.smsc("smsc", sim_dlr_delay_s=0.1)
        world.settings = world.settings.model_copy(update={"sender_providers": json.dumps(
            [{**route, "rate_per_s": 250.0, "smpp": {"window": 10}}])})
        # One actor and one slice per chunk: the kill leaves exactly the killed call's rows
        # in `sending` (see test_sender_crash.py).
        doomed = world.sender("sender-doomed", sender_fault_kill_after_calls=2,
                              sender_bulk_concurrency=1, sender_bulk_parts=1)
        world.publish(TOTAL, run_id=1, lane=Lane.BULK)
        eventually(lambda: not doomed.alive or None, timeout=60)

        at_kill = Counter(world.states())
        in_flight = at_kill["sending"]
        assert in_flight > 0, at_kill  # killed after the SMSC answered, before the commit
        assert len(ledger(sim)) == at_kill["accepted"] + at_kill["delivered"] + in_flight

        world.sender("sender-restarted")
        done = eventually(lambda: _settled(world.states()), timeout=120)
        assert done == {"delivered": TOTAL - in_flight, "unknown": in_flight}, world.states()
        sent = Counter(item["to"] for item in ledger(sim))
        assert (len(sent), set(sent.values())) == (TOTAL, {1})  # each once, none resent
        stats = httpx.get(f"{sim}/smpp/stats").json()
        assert stats.get("query_sm", 0) == 0  # nothing to ask by: no SMSC id was kept

        listed = world.cli("unknown", "list", "--route", route["name"]).splitlines()
        assert len(listed) == in_flight
        assert all(line.split("\t")[2] in sent for line in listed)  # they did reach the SMSC
        keys = [line.split("\t")[0] for line in listed]
        said = world.cli("unknown", "resolve", *keys, "--as", "delivered",
                         "--reason", "in the SMSC's ledger", "--yes")
        assert f"resolved: {in_flight} of {in_flight}" in said
        assert world.states() == {"delivered": TOTAL}


def _settled(states: dict[str, int]) -> dict[str, int] | None:
    """The states once every row is final (delivered or unknown), else None."""
    final = {k: v for k, v in states.items() if v}
    return final if final.get("delivered", 0) + final.get("unknown", 0) == TOTAL else None
